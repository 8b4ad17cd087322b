"""/healthz and the connector command's shape."""

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_healthz_ok_in_sync_mode(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ok"
    assert data["checks"]["database"]["ok"] is True
    assert data["checks"]["broker"]["ok"] is True
    assert data["checks"]["cluster"]["mode"] == "sync"


@pytest.mark.django_db
def test_healthz_503_without_a_cluster_heartbeat(client, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    response = client.get("/healthz")
    assert response.status_code == 503
    cluster = response.json()["checks"]["cluster"]
    assert cluster["ok"] is False and "qcluster" in cluster["error"]


@pytest.mark.django_db
def test_healthz_ok_when_a_cluster_reports(client, settings, monkeypatch):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    from django_q.status import Stat

    class FakeStat:
        status = "Idle"
        workers = [1, 2]
        host = "worker-1"

    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: [FakeStat()]))
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["cluster"] == {
        "ok": True,
        "clusters": 1,
        "workers": 2,
        "hosts": ["worker-1"],
    }


def test_every_subcommand_has_help(capsys):
    from integrations.management.commands.connector import subcommands

    with pytest.raises(SystemExit) as exc:
        call_command("connector", "--help")
    assert exc.value.code == 0
    top = capsys.readouterr().out
    for module in subcommands():
        name = module.NAME
        assert name in top
        with pytest.raises(SystemExit) as exc:
            call_command("connector", name, "--help")
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


@pytest.mark.django_db
def test_check_unknown_tenant_exits_non_zero(capsys):
    with pytest.raises(CommandError) as exc:
        call_command("connector", "check", "--tenant", "ghost")
    assert exc.value.returncode == 2
    assert "No tenant" in capsys.readouterr().err


@pytest.mark.django_db
def test_check_reports_invalid_configuration(tenant, capsys):
    from integrations.models import AcumaticaConnection

    AcumaticaConnection.objects.create(
        tenant=tenant, instance_url="http://erp.acme.example", endpoint_version="24.200.001"
    )
    with pytest.raises(CommandError):
        call_command("connector", "check", "--tenant", "acme")
    captured = capsys.readouterr()
    assert "acumatica: FAILED" in captured.out
    assert "only https:// is allowed" in captured.err
    conn = AcumaticaConnection.objects.get()
    assert conn.last_check_ok is False and "https" in conn.last_check_message


@pytest.mark.django_db
def test_test_connections_action_reports_and_stores_the_verdict(admin_client, tenant):
    from django.urls import reverse

    from integrations.models import AcumaticaConnection

    AcumaticaConnection.objects.create(tenant=tenant, instance_url="http://erp.acme.example")
    from django.contrib.messages import get_messages

    response = admin_client.post(
        reverse("admin:integrations_tenant_changelist"),
        {"action": "test_connections", "_selected_action": [tenant.pk]},
    )
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert len(shown) == 1
    assert shown[0].startswith("acme · acumatica: FAILED") and "only https:// is allowed" in shown[0]
    conn = AcumaticaConnection.objects.get()
    assert conn.last_check_ok is False and conn.last_checked_at is not None


@pytest.mark.django_db
def test_schedules_command_creates_every_recurring_job(tenant, capsys):
    from django_q.models import Schedule

    from integrations.models import Flow

    Flow.objects.create(
        tenant=tenant, name="AP bills", kind=Flow.Kind.ACUMATICA_BILLS, asana_project_gid="1200000000000100"
    )
    call_command("connector", "schedules")
    names = set(Schedule.objects.values_list("func", flat=True))
    assert "integrations.flows.documents.tasks.poll_flow" in names
    assert any(n.startswith("integrations.flows.operations.alerts") for n in names)
    count = Schedule.objects.count()
    call_command("connector", "schedules")  # idempotent
    assert Schedule.objects.count() == count
    assert "schedule(s) in place" in capsys.readouterr().out
