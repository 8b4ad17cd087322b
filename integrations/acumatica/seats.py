"""The seat governor: never more Acumatica sessions than the tenant allows, none left behind, and a
pause instead of a retry storm after "API Login Limit".

Facts (reference/acumatica.md):
- every REST login and every OAuth grant holds an "API user" seat; a trial licence has two and other
  integrations share them; one sign-in too many is refused with "API Login Limit" (§2.3, §6.3);
- an OAuth session holds its seat until it is signed out (`POST /entity/auth/logout` with the Bearer
  header) or its token expires, up to an hour; the documented remedies for the limit are "sign out
  using the old token", "wait up to 1 h", restart the site (§2.1 "Sessions under OAuth");
- an unclosed cookie session ends after a 10-minute timeout (§2.2).

What the connector does with them:
- `SeatGovernor`: a budget shared by every worker process (integrations.base.ratelimit, Redis or a
  lock file) with `max_api_sessions` slots. A cookie login takes a slot before it signs in and gives
  it back at logout; OAuth workers share one grant (auth.py), which is one session. A worker finding
  no free slot waits (up to the client's max_inline_wait) and then gets a retryable SeatsExhausted:
  it never signs in past the setting. The slot is a lease renewed by the holder process's heartbeat
  (integrations.base.ratelimit): a killed worker's slot frees itself, as the server frees its idle
  session, while a long unit of work keeps its own.
- `SessionHolders`: who is inside a unit of work on the shared OAuth session, so `close()` signs the
  session out only when no other worker still uses it.
- `pause()`: "API Login Limit" stores `seats_paused_until` (an hour under OAuth, 10 minutes for
  cookie sessions) and raises one alert; until then no sign-in is attempted (`ensure_not_paused`),
  tasks are rescheduled for that time. A `connector check` tries once anyway and, if it signs in,
  resumes the tenant (`resume()`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone

from audit.alerting import record_alert, resolve_alerts
from integrations.base import errors

log = logging.getLogger(__name__)

ALERT_KIND = "acumatica_seats"
ALERT_SUBJECT = "Acumatica API Login Limit"
# How long a seat someone else forgot can stay taken (§2.1: OAuth up to 1 h; §2.2: cookie 10 min).
OAUTH_SESSION_HOLD = 3600.0
COOKIE_SESSION_HOLD = 600.0
SEAT_POLL = 0.5
HOLDERS = 1024  # slots of the holders budget (a count, not a limit)


def hold_seconds(auth_mode: str) -> float:
    return COOKIE_SESSION_HOLD if auth_mode == "cookie" else OAUTH_SESSION_HOLD


def advice(auth_mode: str) -> str:
    if auth_mode == "cookie":
        wait = "idle cookie sessions end after 10 minutes"
    else:
        wait = (
            "an OAuth session holds its seat until it is signed out or up to an hour after its token "
            "was issued, so waiting can take an hour"
        )
    return (
        "all API user seats of the Acumatica license are in use: sign out other API sessions "
        f"({wait}), lower other integrations' sessions, or raise 'Maximum Number of Web Services API "
        "Users' on the license; then run `connector check` to resume at once"
    )


def pause_message(auth_mode: str, until: Any) -> str:
    return (
        f"API Login Limit: {advice(auth_mode)}. The connector pauses this tenant's Acumatica work "
        f"until {until:%Y-%m-%d %H:%M} UTC instead of signing in again."
    )


def _seconds_left(until: Any) -> float:
    return max(1.0, (until - timezone.now()).total_seconds())


def ensure_not_paused(conn: Any) -> None:
    """Refuse a sign-in while the tenant is paused for seats (reads the row: other workers pause too)."""
    if conn.pk is None:
        return
    until = type(conn).objects.filter(pk=conn.pk).values_list("seats_paused_until", flat=True).first()
    if until is not None and until > timezone.now():
        raise errors.SeatsExhausted(
            f"Acumatica work for this tenant is paused until {until:%Y-%m-%d %H:%M} UTC after 'API Login "
            f"Limit': {advice(conn.auth_mode)}",
            system="acumatica",
            retry_after=_seconds_left(until),
        )


def pause(conn: Any, body: str, status: int | None) -> errors.SeatsExhausted:
    """The licence refused a sign-in: pause the tenant's Acumatica work and alert the operator once."""
    wait = hold_seconds(conn.auth_mode)
    until = timezone.now() + timedelta(seconds=wait)
    message = pause_message(conn.auth_mode, until)
    if conn.pk is not None:
        type(conn).objects.filter(pk=conn.pk).update(seats_paused_until=until)
        conn.seats_paused_until = until
        try:
            record_alert(conn.tenant, ALERT_KIND, ALERT_SUBJECT, message)  # notified by the alert sweep
        except Exception:  # noqa: BLE001 - an alert failing must not hide the seat error
            log.exception("acumatica: could not raise the seats alert")
    log.warning("acumatica: %s", message)
    return errors.SeatsExhausted(
        message, system="acumatica", status=status, body_excerpt=(body or "")[:500], retry_after=wait
    )


def resume(conn: Any) -> None:
    """A sign-in succeeded: lift a pause and resolve its alert."""
    if conn.pk is None or not type(conn).objects.filter(pk=conn.pk, seats_paused_until__isnull=False).update(
        seats_paused_until=None
    ):
        return
    conn.seats_paused_until = None
    resolve_alerts(conn.tenant, ALERT_KIND, set())
    log.info("acumatica: signed in again; the seats pause is lifted")


class SeatGovernor:
    """At most `max_api_sessions` sessions of this connection at once, across every worker."""

    def __init__(self, conn: Any, *, sleep: Any, max_wait: float):
        from integrations.base.ratelimit import budget_for

        self.limit = max(1, int(getattr(conn, "max_api_sessions", 1) or 1))
        self.budget = budget_for(f"acumatica-seats:{conn.push_uuid}", max_in_flight=self.limit)
        self.sleep, self.max_wait = sleep, max_wait
        self.held = 0

    def take(self) -> None:
        waited = 0.0
        while self.budget.acquire(write=False) > 0:
            if waited >= self.max_wait:
                raise errors.SeatsExhausted(
                    f"the connector's {self.limit} Acumatica session(s) for this tenant (max_api_sessions) "
                    "are all in use by its other workers",
                    system="acumatica",
                    retry_after=30.0,
                )
            self.sleep(SEAT_POLL)
            waited += SEAT_POLL
        self.held += 1

    def give_back(self) -> None:
        if self.held:
            self.held -= 1
            self.budget.release(write=False)

    def in_use(self) -> int:
        return self.budget.in_flight()


class SessionHolders:
    """Workers inside a unit of work on the shared OAuth session (a count across processes)."""

    def __init__(self, conn: Any):
        from integrations.base.ratelimit import budget_for

        self.budget = budget_for(f"acumatica-session-holders:{conn.push_uuid}", max_in_flight=HOLDERS)
        self.held = 0

    def enter(self) -> None:
        if self.budget.acquire(write=False) == 0:
            self.held += 1

    def leave(self) -> None:
        if self.held:
            self.held -= 1
            self.budget.release(write=False)

    def others(self) -> int:
        return self.budget.in_flight() - self.held
