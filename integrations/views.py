"""Health endpoint. Webhook and push views live in asana/webhooks.py and acumatica/push.py."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

log = logging.getLogger(__name__)


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001 - health must report, not raise
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__}


def _check_broker() -> dict:
    from django_q.brokers import get_broker

    kind = "redis" if settings.Q_CLUSTER.get("redis") else "orm"
    try:
        broker = get_broker()
        ok = bool(broker.ping())
        return {"ok": ok, "kind": kind}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "kind": kind, "error": type(exc).__name__}


def _check_cluster() -> dict:
    if settings.Q_CLUSTER.get("sync"):
        return {"ok": True, "mode": "sync", "clusters": 0}
    from django_q.conf import Conf
    from django_q.status import Stat

    try:
        stats = [s for s in Stat.get_all() if s.status != Conf.STOPPED]
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__, "clusters": 0}
    return {
        "ok": bool(stats),
        "clusters": len(stats),
        "workers": sum(len(s.workers) for s in stats),
        "hosts": sorted({s.host for s in stats}),
        **({} if stats else {"error": "no django-q2 cluster heartbeat: start `python manage.py qcluster`"}),
    }


def _check_work() -> dict:
    """Queue age, stalled workers, runs past their deadline, waiting inbound events, failing webhooks
    (integrations/flows/operations/health.py): each red item makes the service unavailable, with its
    reason."""
    from integrations.flows.operations.health import system_health
    from integrations.flows.operations.rules import RED

    try:
        items = system_health()
    except Exception as exc:  # noqa: BLE001 - health must report, not raise
        log.exception("healthz: the work checks failed")
        return {"ok": False, "error": type(exc).__name__}
    red = {k: h.reason for k, h in items.items() if h.level == RED}
    return {
        "ok": not red,
        "items": {k: {"level": h.level, "value": h.value, "reason": h.reason} for k, h in items.items()},
        **({"error": "; ".join(f"{k}: {r}" for k, r in red.items())} if red else {}),
    }


@require_GET
def healthz(request):
    """The whole picture (503 when anything is red). `?scope=process` checks only this process's
    database and broker, for a load balancer's liveness probe that must not drain every web process
    because a webhook fails."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    if request.GET.get("scope") != "process":
        checks["cluster"] = _check_cluster()
        checks["work"] = _check_work()
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )
