"""Webhooks: create with the real handshake, list, read, delete, and event fan-out (§6.1–6.4)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from ..core import SimRequest, SimResponse, control
from .helpers import (
    DUPLICATE_WEBHOOK,
    HANDSHAKE_FAILED,
)
from .helpers import err as _err
from .helpers import passes as _passes


class WebhooksMixin:
    # ---- webhooks (§6) ---------------------------------------------------------------------------
    def h_webhooks(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        workspace = req.arg("workspace")
        if not workspace:
            raise _err(400, "workspace: Missing input")
        resource = req.arg("resource")
        items = [
            self.render_webhook(g)
            for g, w in sorted(self.webhooks.items())
            if w["owner"] == me
            and w["workspace"] == workspace
            and (resource is None or w["resource"] == resource)
        ]
        return self._list(req, items, "webhook")

    @control
    def list_webhooks(self) -> list[dict]:
        """Every webhook, whoever owns it: resource, target, whether it is active, its last success and
        failure, and the events waiting to be delivered (read-only)."""
        return [
            {
                "gid": gid,
                "resource": w["resource"],
                "resource_type": w["resource_type"],
                "target": w["target"],
                "active": w["active"],
                "created_at": w["created_at"],
                "last_success_at": w["last_success_at"],
                "last_failure_at": w["last_failure_at"],
                "last_failure_content": w["last_failure_content"],
                "queued_events": len(w["queue"]),
            }
            for gid, w in sorted(self.webhooks.items())
        ]

    def h_webhook(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if self.webhooks.get(gid, {}).get("owner") != me:
            raise _err(404, f"webhook: Unknown object: {gid}")
        return self._one(req, self.render_webhook(gid))

    def h_delete_webhook(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if self.webhooks.get(gid, {}).get("owner") != me:
            raise _err(404, f"webhook: Unknown object: {gid}")
        del self.webhooks[gid]
        return SimResponse.json({"data": {}})

    def h_create_webhook(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        data = self._data(req)
        resource, target = str(data.get("resource") or ""), str(data.get("target") or "")
        if not resource:
            raise _err(400, "resource: Missing input")
        if not target:
            raise _err(400, "target: Missing input")
        if resource in self.projects:
            kind, workspace = "project", self.projects[resource]["workspace"]
        elif resource in self.tasks:
            kind, workspace = "task", self.tasks[resource]["workspace"]
        else:
            raise _err(404, f"resource: Unknown object: {resource}")
        self._require_member(workspace, me)
        host = (urlsplit(target).hostname or "").lower()
        if (
            not host
            or (host == "localhost" and not self.allow_localhost)
            or urlsplit(target).scheme not in ("http", "https")
        ):
            raise _err(403, "Invalid webhook target: the hostname is not allowed.")
        if any(
            w["resource"] == resource and w["target"] == target and w["owner"] == me
            for w in self.webhooks.values()
        ):
            raise _err(403, DUPLICATE_WEBHOOK)
        # The handshake happens while this request is open (§6.2).
        secret = secrets.token_hex(32)
        status, headers, _body = self.deliver(target, {"X-Hook-Secret": secret}, b"")
        echoed = next((v for k, v in (headers or {}).items() if k.lower() == "x-hook-secret"), None)
        self.deliveries.append(("handshake", status, b""))
        if status not in (200, 204) or echoed != secret:
            raise _err(400, HANDSHAKE_FAILED)
        gid = self.new_gid()
        self.webhooks[gid] = {
            "resource": resource,
            "resource_type": kind,
            "workspace": workspace,
            "target": target,
            "owner": me,
            "filters": [dict(f) for f in data.get("filters") or []],
            "secret": secret,
            "active": False,
            "created_at": self.now_iso(),
            "last_success_at": None,
            "last_failure_at": None,
            "last_failure_content": None,
            "delivery_retry_count": 0,
            "next_attempt_after": None,
            "failure_deletion_timestamp": None,
            "queue": [],
            "heartbeat_due": True,
            "first_failure": None,
        }
        return self._one(req, self.render_webhook(gid), 201, extra={"X-Hook-Secret": secret})

    def _emit(
        self,
        gid: str,
        user: str | None,
        action: str,
        *,
        resource_type: str = "task",
        subtype: str | None = None,
        parent: dict | None = None,
        change: dict | None = None,
        task_gid: str | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        """Queue one event on every webhook that watches it and whose filters let it through."""
        task_gid = task_gid or gid
        task = self.tasks.get(task_gid, {})
        subtype = subtype or task.get("resource_subtype")
        event = {
            "user": {"gid": user, "resource_type": "user"} if user else None,
            "created_at": self.now_iso(),
            "action": action,
            "resource": {"gid": gid, "resource_type": resource_type, "resource_subtype": subtype},
            "parent": parent,
        }
        if change:
            event["change"] = change
        for webhook in self.webhooks.values():
            # "A webhook on a project will be notified of all changes that occur in all of its tasks,
            # subtasks of those tasks, and comments" (reference/asana.md §6, [DD:webhooks]).
            parent_projects = self.tasks.get(task.get("parent") or "", {}).get("projects", [])
            watched = (task_gid, *task.get("projects", []), *parent_projects, *also)
            if webhook["resource"] not in watched:
                continue
            if webhook["filters"] and not any(_passes(f, event) for f in webhook["filters"]):
                continue
            webhook["queue"].append(event)
