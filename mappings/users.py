"""The Asana workspace roster → `UserMapping`, and person lookups through it.

`sync_asana_users(tenant, asana)` reads the whole roster (`AsanaClient.roster()`: users joined with their
workspace membership flags, reference/asana.md §7) and creates or updates one `UserMapping` per
lower-cased e-mail: `asana_user_gid`, `display_name`, `active` (an active workspace membership; guests
count, because a guest can file a request in a shared project). It never touches `sage_user` or
`acumatica_employee_id` (set by hand or by the Acumatica roster flow), and it never deactivates people
it did not see: a read that fails raises before anything is written, and a user missing from the
roster is left as it was.

`ensure_asana_users(tenant, asana, gids)` is what a flow calls before it maps people: it syncs only
when one of the GIDs is unknown and the last sync is older than `max_age` (a Cursor row remembers when),
so a busy flow does not page through the whole workspace for every task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.models import Cursor

from .models import UserMapping

STREAM = "asana-users"  # Cursor.stream: when the roster was last read (ISO-8601)
DEFAULT_MAX_AGE = timedelta(minutes=10)


@dataclass
class UserSyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (who, why)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, {self.unchanged} unchanged, "
            f"{len(self.skipped)} skipped"
        )


def sync_asana_users(tenant: Any, asana: Any) -> UserSyncResult:
    """Read the roster completely, then create/update UserMapping rows by lower-cased e-mail."""
    users = asana.roster()  # raises on any failed page: nothing below runs on a partial read
    result = UserSyncResult()
    seen: set[str] = set()
    existing = {m.email: m for m in UserMapping.objects.filter(tenant=tenant)}
    for user in users:
        email = str(user.get("email") or "").strip().lower()
        gid = str(user.get("gid") or "")
        if not email:
            result.skipped.append((gid, "no e-mail visible to the connector's user"))
            continue
        if email in seen:
            result.skipped.append((email, "two Asana users share this e-mail"))
            continue
        seen.add(email)
        values = {
            "asana_user_gid": gid,
            "display_name": str(user.get("name") or "")[:200],
            "active": bool(user.get("member")) and bool(user.get("is_active")),
        }
        row = existing.get(email)
        if row is None:
            UserMapping.objects.create(tenant=tenant, email=email, **values)
            result.created.append(email)
        elif any(getattr(row, k) != v for k, v in values.items()):
            UserMapping.objects.filter(pk=row.pk).update(**values, updated_at=timezone.now())
            result.updated.append(email)
        else:
            result.unchanged += 1
    Cursor.objects.update_or_create(
        tenant=tenant, stream=STREAM, defaults={"value": timezone.now().isoformat()}
    )
    return result


def last_synced(tenant: Any) -> datetime | None:
    cursor = Cursor.objects.filter(tenant=tenant, stream=STREAM).first()
    if cursor is None or not cursor.value:
        return None
    return datetime.fromisoformat(cursor.value)


def ensure_asana_users(
    tenant: Any, asana: Any, gids: Iterable[str], *, max_age: timedelta = DEFAULT_MAX_AGE
) -> UserSyncResult | None:
    """Sync when a GID has no UserMapping yet and the roster was not read within `max_age`."""
    wanted = {g for g in gids if g}
    if not wanted:
        return None
    known = set(
        UserMapping.objects.filter(tenant=tenant, asana_user_gid__in=wanted).values_list(
            "asana_user_gid", flat=True
        )
    )
    if wanted <= known:
        return None
    last = last_synced(tenant)
    if last is not None and timezone.now() - last < max_age:
        return None
    return sync_asana_users(tenant, asana)


def by_asana_gid(tenant: Any, gid: str) -> UserMapping | None:
    """The active mapping for an Asana user (the most recently updated, should two rows carry the GID)."""
    if not gid:
        return None
    rows = UserMapping.objects.filter(tenant=tenant, asana_user_gid=gid)
    return rows.filter(active=True).order_by("-updated_at").first() or rows.order_by("-updated_at").first()


# --- the people of a task ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    role: str  # requester | approver
    gid: str = ""
    name: str = ""  # as the task shows it (for messages when no mapping exists)
    sage_user: str = ""
    label: str = ""  # "Bob Buyer (bob@demo.example)" for messages


@dataclass(frozen=True)
class TaskPeople:
    requester: Person
    approver: Person
    notes: tuple[str, ...] = ()


def _from_task(task: dict[str, Any], role: str, field_gid: str, builtin: str) -> Person:
    """The person a people custom field names (its first user), else the task's own `builtin` user."""
    if field_gid:
        for entry in task.get("custom_fields") or []:
            if str(entry.get("gid")) == str(field_gid):
                people = entry.get("people_value") or []
                first = people[0] if people else {}
                return Person(role, str(first.get("gid") or ""), str(first.get("name") or ""))
        return Person(role)
    compact = task.get(builtin) or {}
    return Person(role, str(compact.get("gid") or ""), str(compact.get("name") or ""))


def requester_of(task: dict[str, Any], requester_field_gid: str = "") -> Person:
    """The request's requester as the purchase-request flow sees it: the people field it names, else (and
    when that field is empty) the task's `created_by`. No mapping is looked up."""
    person = _from_task(task, "requester", requester_field_gid, "created_by")
    return person if person.gid else _from_task(task, "requester", "", "created_by")


def task_people(
    tenant: Any,
    task: dict[str, Any],
    *,
    asana: Any,
    requester_field_gid: str = "",
    approver_field_gid: str = "",
) -> TaskPeople:
    """Requester (`created_by`, or a people field) and approver (`completed_by` — for an approval task the
    user who approved it — or a people field), each mapped through UserMapping to a Sage user.

    A person with no Sage user is not an error: the caller sends the PO without that name and shows the
    returned note. A roster read that fails is logged in the notes and mapping goes on with what is known."""
    from integrations.base import errors

    requester = _from_task(task, "requester", requester_field_gid, "created_by")
    approver = _from_task(task, "approver", approver_field_gid, "completed_by")
    notes: list[str] = []
    try:
        ensure_asana_users(tenant, asana, [requester.gid, approver.gid])
    except errors.ConnectorError as exc:
        notes.append(f"the Asana user list could not be read ({exc}); user mappings may be stale")
    out = []
    for person in (requester, approver):
        if not person.gid:
            out.append(person)
            continue
        row = by_asana_gid(tenant, person.gid)
        name = (row.display_name if row else "") or person.name or f"Asana user {person.gid}"
        label = f"{name} ({row.email})" if row else name
        sage_user = row.sage_user.strip() if row else ""
        if not sage_user:
            notes.append(f"{person.role} {label} has no Sage user in the user mappings")
        out.append(Person(person.role, person.gid, person.name, sage_user, label))
    return TaskPeople(out[0], out[1], tuple(notes))
