"""The health rules: one pure function per dashboard tile and /healthz check (`*_health`) →
Health(level green|amber|red|grey, reason, url), unit-tested without a database. The console's dashboard
(integrations/console/dashboard.py) gathers the inputs and shows them; health.py applies them to the
whole installation for /healthz and the alert sweep.

Thresholds are in THRESHOLDS so an operator-facing change is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from integrations.models import AsanaWebhook, Flow

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
THRESHOLDS = {
    "poll_late_factor": 3,  # amber when the last good pass is older than 3 poll intervals
    "poll_dead_factor": 12,  # red past 12 intervals
    "backlog_amber_minutes": 5,
    "backlog_red_minutes": 30,
    "failures_red": 10,
    "heartbeat_stale_hours": 9,  # Asana sends a heartbeat every 8 hours (reference/asana.md §6)
    "pending_amber_minutes": 10,
    "rate_amber": 0.7,
    "rate_red": 0.9,
    "agent_stale_hours": 2,
}
DOCUMENT_KINDS = (
    Flow.Kind.ACUMATICA_BILLS,
    Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
    Flow.Kind.SAGE100_PO_STATUS,
    Flow.Kind.ACUMATICA_EMPLOYEES,
)


@dataclass(frozen=True)
class Health:
    level: str
    reason: str
    url: str = ""
    value: str = ""


def _age(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def poll_health(
    last_success: datetime | None,
    interval_minutes: int,
    enabled: bool,
    now: datetime,
    url: str = "",
    polled: bool = True,
    on_since: datetime | None = None,
) -> Health:
    """`on_since`: when the flow was switched on (or created); a flow younger than the late threshold
    that has not passed yet is waiting for its first pass, not failing."""
    if not enabled:
        return Health(GREY, "flow disabled", url, "—")
    if not polled:
        return Health(GREY, "event-driven flow (no polling pass)", url, "—")
    if last_success is None and on_since is not None:
        waited = now - on_since
        interval = timedelta(minutes=max(1, interval_minutes))
        if waited <= interval * THRESHOLDS["poll_late_factor"]:
            return Health(
                GREY,
                f"switched on {_age(now, on_since)}: the first pass runs within {interval_minutes} min",
                url,
                "first pass due",
            )
        if waited <= interval * THRESHOLDS["poll_dead_factor"]:
            return Health(
                AMBER,
                f"switched on {_age(now, on_since)} and no pass yet: check that the worker runs "
                "(Cluster above), or select the flow under Flows and run “Sync now”",
                url,
                "late",
            )
    if last_success is None:
        return Health(
            RED,
            "no successful pass yet: open the flow's runs for the error, or select the flow under "
            "Flows and run “Sync now” (a dry run shows the plan first)",
            url,
            "never",
        )
    late = now - last_success
    interval = timedelta(minutes=max(1, interval_minutes))
    value = _age(now, last_success)
    if late > interval * THRESHOLDS["poll_dead_factor"]:
        return Health(RED, f"last good pass {value}; polling every {interval_minutes} min", url, value)
    if late > interval * THRESHOLDS["poll_late_factor"]:
        return Health(AMBER, f"last good pass {value}; polling every {interval_minutes} min", url, value)
    return Health(GREEN, f"last good pass {value}", url, value)


def backlog_health(waiting: int, oldest: datetime | None, now: datetime, url: str = "") -> Health:
    if not waiting or oldest is None:
        return Health(GREEN, "nothing waiting", url, "0")
    age = now - oldest
    text = f"{waiting} event(s) waiting, oldest {_age(now, oldest)}"
    if age > timedelta(minutes=THRESHOLDS["backlog_red_minutes"]):
        return Health(RED, text + ": the workers are not keeping up or not running", url, str(waiting))
    if age > timedelta(minutes=THRESHOLDS["backlog_amber_minutes"]):
        return Health(AMBER, text, url, str(waiting))
    return Health(GREEN, text, url, str(waiting))


def unreadable_health(unreadable_7d: int, url: str = "") -> Health:
    """Authentic pushes none of whose rows name a document (acumatica/push_rows.py): answered 200 so
    Acumatica does not re-send them, so only this count tells the operator to fix the inquiry."""
    if not unreadable_7d:
        return Health(GREEN, "every push in the last 7 days was readable", url, "0")
    return Health(
        AMBER,
        f"{unreadable_7d} push notification(s) in the last 7 days named no document: check the "
        "generic inquiry's key columns",
        url,
        str(unreadable_7d),
    )


def approvals_health(
    needs_person: int, changed_7d: int, refused_7d: int, url: str, changed_url: str
) -> Health:
    """Money safety at a glance: records whose create outcome waits for a person (red: the document has
    no task until someone decides), documents changed after approval and releases refused (7 days)."""
    if needs_person:
        return Health(
            RED,
            f"{needs_person} record(s) wait for a person: a create's outcome is unknown and its candidate "
            "task cannot be proven the document's — adopt it or create anew",
            url,
            str(needs_person),
        )
    if changed_7d or refused_7d:
        return Health(
            AMBER,
            f"{changed_7d} document(s) changed after approval and {refused_7d} release(s) refused in 7 days: "
            "a new approval was asked for on each task",
            changed_url,
            str(changed_7d + refused_7d),
        )
    return Health(
        GREEN, "no approval changed or refused in 7 days; nothing waits for a person", changed_url, "0"
    )


def history_health(
    oldest_entry: datetime | None,
    oldest_call: datetime | None,
    now: datetime,
    url: str = "",
    days: dict[str, int] | None = None,
) -> Health:
    """How far back the audit trail goes after retention purges (audit/retention.py)."""
    days = days or {}
    if oldest_entry is None:
        return Health(GREY, "no audit history yet", url, "—")
    text = f"audit entries since {oldest_entry:%Y-%m-%d}"
    if "effects" in days:
        text += f" (effects kept {days['effects']} days)"
    if oldest_call is not None:
        text += f", API calls since {oldest_call:%Y-%m-%d}"
        if "api_calls" in days:
            text += f" (kept {days['api_calls']} days)"
    return Health(GREEN, text, url, f"{(now - oldest_entry).days} days")


def failures_health(failed_24h: int, url: str = "") -> Health:
    if not failed_24h:
        return Health(GREEN, "no failures in the last 24 h", url, "0")
    level = RED if failed_24h >= THRESHOLDS["failures_red"] else AMBER
    return Health(
        level,
        f"{failed_24h} failed operation(s) in the last 24 h: open them for each error, fix the cause, "
        "then replay the records",
        url,
        str(failed_24h),
    )


def setup_health(
    has_acumatica: bool,
    acumatica_ok: bool | None,
    acumatica_message: str,
    has_asana: bool,
    asana_ok: bool | None,
    setup_step: int | None,
    switched_on: bool,
    wizard_url: Any,
) -> Health:
    """Is the tenant set up and are its connections verified? Every red says which setup-wizard step
    fixes it and links there (`wizard_url(step)`)."""
    if not has_acumatica:
        return Health(
            RED, "no Acumatica connection: set it up in the setup wizard, step 1", wizard_url(1), "not set up"
        )
    if acumatica_ok is False:
        first = next((line[5:] for line in acumatica_message.splitlines() if line.startswith("FAIL ")), "")
        return Health(
            RED,
            f"the last Acumatica test failed ({first[:160]}): correct the credentials in the setup "
            "wizard, step 1",
            wizard_url(1),
            "check failed",
        )
    if not has_asana:
        return Health(
            RED, "no Asana connection: add the token in the setup wizard, step 2", wizard_url(2), "no Asana"
        )
    if asana_ok is False:
        return Health(
            RED,
            "the last Asana test failed: enter a new token in the setup wizard, step 2",
            wizard_url(2),
            "check failed",
        )
    if setup_step is not None and not switched_on:
        return Health(
            AMBER,
            f"setup stopped at step {setup_step}: resume it in the setup wizard (the flows are off "
            "until step 5)",
            wizard_url(setup_step),
            f"step {setup_step} of 5",
        )
    if acumatica_ok is None:
        return Health(
            AMBER, "Acumatica never tested: test it in the setup wizard, step 1", wizard_url(1), "untested"
        )
    return Health(GREEN, "Acumatica and Asana verified", wizard_url(setup_step or 1), "ready")


def quarantine_health(quarantined: int, url: str = "") -> Health:
    if not quarantined:
        return Health(GREEN, "no quarantined records", url, "0")
    return Health(AMBER, f"{quarantined} record(s) wait for a mapping fix", url, str(quarantined))


def webhook_health(hooks: list[Any], now: datetime, url: str = "") -> Health:
    """`hooks`: AsanaWebhook rows (or anything with their fields) of one tenant."""
    if not hooks:
        return Health(GREY, "no Asana webhooks registered", url, "—")
    gone = [h for h in hooks if h.state == AsanaWebhook.State.GONE]
    if gone:
        return Health(RED, f"{len(gone)} webhook(s) gone: Asana deleted them; re-register", url, "gone")
    doomed = [h for h in hooks if h.failure_deletion_timestamp]
    if doomed:
        when = min(h.failure_deletion_timestamp for h in doomed)
        return Health(
            RED,
            f"Asana will delete a failing webhook at {when:%Y-%m-%d %H:%M} UTC",
            url,
            "deletion scheduled",
        )
    failing = [
        h
        for h in hooks
        if h.state == AsanaWebhook.State.FAILING
        or h.last_failure_at
        and (not h.last_event_at or h.last_failure_at > h.last_event_at)
    ]
    if failing:
        return Health(RED, f"{len(failing)} webhook(s) failing deliveries", url, "failing")
    pending = [h for h in hooks if h.state == AsanaWebhook.State.PENDING]
    if pending and any(
        h.pending_since and now - h.pending_since > timedelta(minutes=THRESHOLDS["pending_amber_minutes"])
        for h in pending
    ):
        return Health(AMBER, "a webhook is still waiting for its handshake", url, "pending")
    beats = [h.last_heartbeat_at or h.last_event_at for h in hooks if h.state == AsanaWebhook.State.ACTIVE]
    known = [b for b in beats if b]
    if beats and len(known) == len(beats):
        oldest = min(known)
        if now - oldest > timedelta(hours=THRESHOLDS["heartbeat_stale_hours"]):
            return Health(AMBER, f"no heartbeat since {_age(now, oldest)}", url, _age(now, oldest))
        return Health(GREEN, f"last heartbeat {_age(now, max(known))}", url, _age(now, max(known)))
    return Health(
        GREEN if not pending else AMBER, f"{len(hooks)} webhook(s), no heartbeat yet", url, "active"
    )


def rate_health(calls_last_minute: int, per_minute: int | None, url: str = "") -> Health:
    if not per_minute:
        return Health(GREY, "no Asana connection", url, "—")
    used = calls_last_minute / per_minute
    value = f"{calls_last_minute}/{per_minute} per min"
    level = RED if used >= THRESHOLDS["rate_red"] else AMBER if used >= THRESHOLDS["rate_amber"] else GREEN
    return Health(level, f"{used:.0%} of the token's budget used in the last minute", url, value)


def seats_health(
    auth_mode: str | None,
    open_sessions: int,
    max_concurrency: int,
    url: str = "",
    paused_until: datetime | None = None,
    now: datetime | None = None,
) -> Health:
    """`max_concurrency` here is the connection's `max_api_sessions` (integrations/acumatica/seats.py)."""
    if auth_mode is None:
        return Health(GREY, "no Acumatica connection", url, "—")
    if paused_until is not None and now is not None and paused_until > now:
        return Health(
            RED,
            f"API Login Limit: sign-ins paused until {paused_until:%H:%M} UTC (Test connections resumes)",
            url,
            "paused",
        )
    if auth_mode != "cookie":
        return Health(GREY, "one OAuth session shared by every worker (one seat)", url, "n/a (OAuth)")
    value = f"{open_sessions}/{max_concurrency}"
    if open_sessions > max_concurrency:
        return Health(
            RED, f"{open_sessions} sessions open, more than the {max_concurrency} allowed", url, value
        )
    if open_sessions and open_sessions == max_concurrency:
        return Health(AMBER, "every allowed session is in use", url, value)
    return Health(GREEN, f"{open_sessions} session(s) open", url, value)


def agent_health(
    has_connection: bool,
    checked_at: datetime | None,
    ok: bool | None,
    message: str,
    now: datetime,
    url: str = "",
) -> Health:
    if not has_connection:
        return Health(GREY, "no Sage 100 connection", url, "—")
    if checked_at is None:
        return Health(AMBER, "never checked: run Test connection", url, "unknown")
    if not ok:
        return Health(
            RED, f"unreachable at the last check ({_age(now, checked_at)}): {message[:200]}", url, "down"
        )
    if now - checked_at > timedelta(hours=THRESHOLDS["agent_stale_hours"]):
        return Health(AMBER, f"reachable at the last check, {_age(now, checked_at)}", url, "stale")
    return Health(GREEN, f"reachable ({_age(now, checked_at)})", url, "up")
