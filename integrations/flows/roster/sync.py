"""Acumatica employees → the Asana workspace roster (flow kind `acumatica_employees`).

Matched by lower-cased e-mail (Employee `ContactInfo/Email`, reference/acumatica.md §9; Asana users
joined with their workspace memberships, reference/asana.md §7):
- an Active employee with no active Asana membership is added to the workspace (and the configured team);
- an employee who is not Active is removed from the workspace only when the operator turned removal on,
  never after a partial or failed read of either side, never beyond the per-run maximum (more candidates
  than that refuses every removal: a mass departure usually means a bad read), never the connector's own
  user and never a protected e-mail;
- dry run is the default: the plan is shown and nothing changes in Asana;
- `UserMapping` (e-mail ↔ Asana user ↔ employee) is kept current after every complete read, dry run or not
  (it is our own lookup for assignees and changes nothing anywhere else).

Flow.options: team_gid, removal_enabled (false), max_removals_per_run (3), protected_emails ([]),
apply_on_schedule (false: the daily run only reports).
With a PAT, a removed user's resources transfer to the token's owner (§7): removal stays opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from audit.models import SyncRun
from audit.recorder import audit_context, record_entry
from integrations.base import errors
from integrations.models import Flow
from mappings.models import UserMapping

DEFAULT_MAX_REMOVALS = 3


@dataclass
class Person:
    email: str
    name: str = ""
    employee_id: str = ""
    asana_gid: str = ""


@dataclass
class RosterPlan:
    add: list[Person] = field(default_factory=list)
    remove: list[Person] = field(default_factory=list)
    keep: list[Person] = field(default_factory=list)  # matched on both sides
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (who, why)
    removal_refused: str = ""

    def lines(self) -> list[str]:
        out = [f"+ add    {p.email} ({p.name}, {p.employee_id})" for p in self.add]
        out += [f"- remove {p.email} ({p.name}, Asana {p.asana_gid})" for p in self.remove]
        out += [f"  skip   {who}: {why}" for who, why in self.skipped]
        if self.removal_refused:
            out.append(f"! removals refused: {self.removal_refused}")
        return out

    def counts(self) -> dict[str, int]:
        return {
            "add": len(self.add),
            "remove": len(self.remove),
            "matched": len(self.keep),
            "skipped": len(self.skipped),
        }


def plan_roster(
    employees: list[dict[str, Any]],
    asana_users: list[dict[str, Any]],
    *,
    connector_user_gid: str = "",
    protected: set[str] | frozenset[str] = frozenset(),
    removal_enabled: bool = False,
    max_removals: int = DEFAULT_MAX_REMOVALS,
) -> RosterPlan:
    """The pure diff. `asana_users` as AsanaClient.roster() returns them (email, is_active, member…)."""
    plan = RosterPlan()
    protected = {e.strip().lower() for e in protected}
    members = {
        u["email"]: u for u in asana_users if u.get("email") and u.get("member") and u.get("is_active")
    }
    seen: set[str] = set()
    candidates: list[Person] = []
    for emp in employees:
        email = str(((emp.get("ContactInfo") or {}).get("Email")) or "").strip().lower()
        who = f"{emp.get('EmployeeID')} {emp.get('EmployeeName') or ''}".strip()
        if not email:
            plan.skipped.append((who, "no e-mail in ContactInfo"))
            continue
        if email in seen:
            plan.skipped.append((who, f"{email} belongs to another employee too"))
            continue
        seen.add(email)
        person = Person(email, str(emp.get("EmployeeName") or ""), str(emp.get("EmployeeID") or ""))
        user = members.get(email)
        active = emp.get("Status") == "Active"
        if user:
            person.asana_gid = str(user["gid"])
        if active and not user:
            plan.add.append(person)
        elif active:
            plan.keep.append(person)
        elif user:
            if person.asana_gid == connector_user_gid:
                plan.skipped.append((email, "the connector's own user is never removed"))
            elif email in protected:
                plan.skipped.append((email, "protected"))
            else:
                candidates.append(person)
    if candidates and not removal_enabled:
        plan.skipped += [(p.email, "inactive in Acumatica; removal is turned off") for p in candidates]
    elif len(candidates) > max_removals:
        plan.removal_refused = (
            f"{len(candidates)} removals exceed the maximum of {max_removals} per run; "
            "nothing removed (raise the maximum if this is intended)"
        )
        plan.skipped += [(p.email, "removal refused: over the per-run maximum") for p in candidates]
    else:
        plan.remove = candidates
    return plan


def _options(flow: Flow) -> dict[str, Any]:
    o = flow.options or {}
    return {
        "team_gid": str(o.get("team_gid") or ""),
        "removal_enabled": bool(o.get("removal_enabled", False)),
        "max_removals": int(o.get("max_removals_per_run", DEFAULT_MAX_REMOVALS)),
        "protected": frozenset(str(e).lower() for e in o.get("protected_emails") or []),
    }


@dataclass
class RosterResult:
    plan: RosterPlan | None
    applied: bool
    run: SyncRun
    error: str = ""
    done: list[str] = field(default_factory=list)


def sync_roster(flow: Flow, *, clients, apply: bool = False, actor: str = "system") -> RosterResult:
    """Read both sides completely, plan, keep UserMapping current, and (when `apply`) change Asana."""
    tenant = flow.tenant
    run = SyncRun.objects.create(
        tenant=tenant,
        flow=flow,
        triggered_by=actor,
        trigger=SyncRun.Trigger.MANUAL if apply else SyncRun.Trigger.DRY_RUN,
    )
    opts = _options(flow)
    with audit_context(run=run, tenant_id=tenant.pk, actor=actor):
        try:
            employees = list(clients.acumatica.iter_employees())
            users = clients.asana.roster()
        except (errors.ConnectorError, errors.ConfigurationError) as exc:
            # A partial or failed read never drives a change (a missing page would look like departures).
            _finish(run, SyncRun.Status.FAILED, {}, f"read failed, nothing changed: {exc}")
            return RosterResult(None, False, run, error=str(exc))
        plan = plan_roster(
            employees,
            users,
            connector_user_gid=tenant.asana.connector_user_gid,
            protected=opts["protected"],
            removal_enabled=opts["removal_enabled"],
            max_removals=opts["max_removals"],
        )
        _keep_user_mappings(tenant, plan, employees)
        result = RosterResult(plan, apply, run)
        if apply:
            failures = _apply(flow, plan, clients, opts["team_gid"], result)
        else:
            failures = 0
            for p in plan.add:
                record_entry(
                    tenant=tenant, flow=flow, operation="roster.add", status="planned", record_key=p.email
                )
            for p in plan.remove:
                record_entry(
                    tenant=tenant, flow=flow, operation="roster.remove", status="planned", record_key=p.email
                )
    status = SyncRun.Status.PARTIAL if failures else SyncRun.Status.SUCCEEDED
    _finish(run, status, plan.counts(), "\n".join(plan.lines())[:5000])
    return result


def _apply(flow: Flow, plan: RosterPlan, clients, team_gid: str, result: RosterResult) -> int:
    tenant, asana, failures = flow.tenant, clients.asana, 0
    for p in plan.add:
        try:
            user = asana.add_user_to_workspace(p.email)
            p.asana_gid = str(user["gid"])
            if team_gid:
                asana.add_user_to_team(team_gid, p.asana_gid)
            UserMapping.objects.filter(tenant=tenant, email=p.email).update(asana_user_gid=p.asana_gid)
            record_entry(
                tenant=tenant,
                flow=flow,
                operation="roster.add",
                status="succeeded",
                record_key=p.email,
                payload={"asana_user_gid": p.asana_gid, "team_gid": team_gid},
            )
            result.done.append(f"added {p.email}")
        except errors.ConnectorError as exc:
            failures += 1
            record_entry(
                tenant=tenant,
                flow=flow,
                operation="roster.add",
                status="failed",
                record_key=p.email,
                error=str(exc),
                error_class=type(exc).__name__,
            )
    for p in plan.remove:
        try:
            asana.remove_user_from_workspace(p.asana_gid)
            UserMapping.objects.filter(tenant=tenant, email=p.email).update(asana_user_gid="", active=False)
            record_entry(
                tenant=tenant,
                flow=flow,
                operation="roster.remove",
                status="succeeded",
                record_key=p.email,
                payload={"asana_user_gid": p.asana_gid},
            )
            result.done.append(f"removed {p.email}")
        except errors.ConnectorError as exc:
            failures += 1
            record_entry(
                tenant=tenant,
                flow=flow,
                operation="roster.remove",
                status="failed",
                record_key=p.email,
                error=str(exc),
                error_class=type(exc).__name__,
            )
    return failures


def _keep_user_mappings(tenant, plan: RosterPlan, employees: list[dict[str, Any]]) -> None:
    status = {
        str(((e.get("ContactInfo") or {}).get("Email")) or "").strip().lower(): e.get("Status")
        for e in employees
    }
    for p in [*plan.keep, *plan.add, *plan.remove]:
        defaults = {
            "display_name": p.name,
            "acumatica_employee_id": p.employee_id,
            "active": status.get(p.email) == "Active",
        }
        if p.asana_gid:
            defaults["asana_user_gid"] = p.asana_gid
        UserMapping.objects.update_or_create(tenant=tenant, email=p.email, defaults=defaults)


def _finish(run: SyncRun, status: str, counts: dict[str, int], message: str) -> None:
    SyncRun.objects.filter(pk=run.pk).update(
        status=status, counts=counts, message=message, finished_at=timezone.now()
    )
    run.refresh_from_db()
