"""The pure rules behind approvals and reconciliation: what an approval binds to, and which task a lost
create made. Each case is a situation a person or a clock can cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.flows.common import binding
from integrations.flows.documents import reconcile
from integrations.flows.documents.plan import BILL, FlowSettings
from integrations.models import RecordLink

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def link(**kw) -> RecordLink:
    base = dict(
        kind=RecordLink.Kind.BILL,
        state=RecordLink.State.LINKED,
        acumatica_type="Bill",
        acumatica_ref="000123",
        acumatica_id="guid-1",
        guarded_values={"Amount": "1000.00", "Vendor": "ACME"},
        guarded_written_at=T0,
    )
    base.update(kw)
    return RecordLink(**base)


class Doc(dict):
    id = "guid-1"


def approval(seconds: float) -> binding.ApprovalMoment:
    return binding.ApprovalMoment(T0 + timedelta(seconds=seconds), "alice", "story")


VALUES = {"Amount": "1000.00", "Vendor": "ACME"}


def test_an_approval_after_the_last_guarded_write_of_unchanged_values_binds():
    assert binding.binding_problems(link(), approval(5), VALUES, Doc(), VALUES) == []


def test_an_approval_given_before_the_connector_wrote_the_current_values_does_not_bind():
    problems = binding.binding_problems(link(), approval(-60), VALUES, Doc(), VALUES)
    assert len(problems) == 1 and "before the connector wrote the current values" in problems[0]


def test_an_approval_at_the_same_instant_as_the_write_does_not_bind():
    assert binding.binding_problems(link(), approval(0), VALUES, Doc(), VALUES)


def test_figures_typed_into_the_task_or_changed_in_the_erp_do_not_bind():
    on_task = binding.binding_problems(link(), approval(5), {**VALUES, "Amount": "10.00"}, Doc(), VALUES)
    assert "the task shows other figures" in on_task[0] and "Amount 1000.00 → 10.00" in on_task[0]
    in_erp = binding.binding_problems(link(), approval(5), VALUES, Doc(), {**VALUES, "Amount": "19000.00"})
    assert "changed after approval in the ERP" in in_erp[0] and "1000.00 → 19000.00" in in_erp[0]


def test_a_number_entered_again_is_another_document_even_with_the_same_values():
    other = Doc()
    other.id = "guid-2"
    problems = binding.binding_problems(link(), approval(5), VALUES, other, VALUES)
    assert any("entered again" in p for p in problems)


@pytest.mark.parametrize("state", [RecordLink.State.DELETED, RecordLink.State.CLOSED])
def test_an_ended_link_binds_nothing(state):
    problems = binding.binding_problems(link(state=state), approval(5), VALUES, Doc(), VALUES)
    assert problems and "acts on nothing" in problems[0]


def test_unknown_approval_time_or_unrecorded_write_does_not_bind():
    assert binding.binding_problems(link(), binding.ApprovalMoment(None), VALUES, Doc(), VALUES)
    assert binding.binding_problems(link(guarded_values={}), approval(5), VALUES, Doc(), VALUES)


def test_normalise_reads_both_sides_alike():
    assert binding.normalise(1000, 2) == binding.normalise("1000.0", 2) == "1000.00"
    assert binding.normalise("2026-12-31T00:00:00+00:00") == binding.normalise("2026-12-31") == "2026-12-31"
    assert binding.normalise(" ACME ") == "ACME" and binding.normalise("") is None


# ---- reconcile.decide ---------------------------------------------------------------------------------

SETTINGS = FlowSettings(doc=BILL, project_gid="1", erp_reference_field_gid="99")
WHO = reconcile.Identity(
    key="Bill/000123",
    name="Bill 000123 · ACME · 1000.00",
    marker=reconcile.identity_marker("ridgeline", "Bill/000123", 1, 7),
    generation=1,
    link_id=7,
    connector_user="100",
)


def task(gid: str, *, name=WHO.name, ref="Bill/000123", notes=WHO.marker, user="100", at=T0) -> dict:
    return {
        "gid": gid,
        "name": name,
        "notes": notes,
        "created_at": at.isoformat(),
        "created_by": {"gid": user},
        "custom_fields": [{"gid": "99", "text_value": ref}],
    }


def decide(tasks, *, linked=(), settled=True):
    return reconcile.decide(
        tasks,
        SETTINGS,
        WHO,
        window_start=T0 - timedelta(minutes=2),
        linked_elsewhere=set(linked),
        settled=settled,
        settle_in=42,
    )


def test_a_renamed_task_with_its_reference_overwritten_is_still_found_by_its_identity_line():
    verdict = decide([task("5", name="Concrete pour — renamed", ref="typed over")])
    assert verdict.task["gid"] == "5" and not verdict.ambiguous


def test_a_task_linked_elsewhere_or_naming_another_document_is_never_adopted():
    other = reconcile.identity_marker("otherco", "Bill/000123", 1, 9)
    verdict = decide([task("5"), task("6", notes=other)], linked=["5"])
    assert verdict.task is None and not verdict.ambiguous


def test_a_task_of_ours_with_every_marker_erased_parks_the_link_for_a_person():
    verdict = decide([task("5", name="x", ref="y", notes="edited")])
    assert verdict.task is None and [c["gid"] for c in verdict.ambiguous] == ["5"]


def test_tasks_by_other_users_or_older_than_the_attempt_are_not_candidates():
    verdict = decide([task("5", user="200"), task("6", at=T0 - timedelta(hours=1))])
    assert verdict.task is None and not verdict.ambiguous and not verdict.undecided


def test_nothing_found_before_the_search_index_settles_is_only_unknown():
    verdict = decide([], settled=False)
    assert verdict.undecided and verdict.retry_after == 42 and verdict.task is None
    assert not decide([], settled=True).undecided


def test_two_proven_tasks_adopt_the_earliest_and_report_the_other():
    verdict = decide([task("6", at=T0 + timedelta(seconds=5)), task("5")])
    assert verdict.task["gid"] == "5" and verdict.duplicates == ["6"]


# ---- approval_moment: the best source Asana offers, never a time later than the approval -----------


class NoStories:
    def iter_stories(self, gid):
        from integrations.base import errors

        raise errors.NotFound("no stories here", system="asana")


class Event:
    def __init__(self, body: dict):
        import json

        self.raw_body = json.dumps(body).encode()


def enum_flow():
    from integrations.models import Flow

    return Flow(
        approval_rule=Flow.ApprovalRule.ENUM_OPTION, approval_field_gid="77", approval_option_gid="78"
    )


def change(at: str, source: str | None = None) -> dict:
    event = {
        "action": "changed",
        "created_at": at,
        "resource": {"gid": "5", "resource_type": "task"},
        "user": {"gid": "alice"},
        "change": {"field": "custom_fields", "action": "changed", "new_value": {"gid": "77"}},
    }
    if source:
        event["source"] = source
    return event


def test_without_stories_the_delivered_events_time_is_the_approvals():
    moment = binding.approval_moment(
        NoStories(), enum_flow(), {"gid": "5"}, Event({"events": [change("2026-12-03T09:00:05.000Z")]})
    )
    assert (moment.at, moment.by, moment.source) == (T0 + timedelta(seconds=5), "alice", "event")


def test_a_polled_events_time_is_never_taken_for_the_approvals():
    polled = Event(change("2026-12-03T09:30:00.000Z", source="poll"))
    assert binding.approval_moment(NoStories(), enum_flow(), {"gid": "5"}, polled).at is None
