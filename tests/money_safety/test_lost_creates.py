"""Money safety II, as the sequences that happen: a create's answer is lost (a timeout, a 5xx after the
write, a worker killed before it stored the GID, a create outliving its lease) and before the next
attempt the clocks disagree, the search index lags, or a person renames, moves or edits the new task.
Every test asserts the effect in the sandbox Asana: how many open tasks carry the document."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from integrations.base import errors
from integrations.flows.documents import parked
from integrations.flows.documents.sync import DocumentSync
from integrations.models import Flow, RecordLink, Tenant
from sandbox.demo import connect_sandboxes
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import ACU_URL, ASANA_URL, D, F

KEY = "Bill/000001"


def our_tasks(asana) -> list[str]:
    """Every task anywhere in the workspace the connector made for bill 000001 (any project, renamed or
    not): its identity line names the document."""
    return [
        gid
        for gid, t in asana.tasks.items()
        if f"· {KEY} ·" in (t.get("notes") or "") and not t.get("deleted")
    ]


def open_tasks(asana) -> list[str]:
    return [g for g in our_tasks(asana) if not asana.tasks[g]["completed"]]


def killed_after_create(monkeypatch):
    """The worker dies after Asana made the task, before the GID was stored."""

    def crash(self, *args, **kwargs):
        raise SystemExit("worker killed after the create")

    monkeypatch.setattr(DocumentSync, "store_created", crash)


def run(make_sync, **kwargs):
    return make_sync(**kwargs).process("Bill", "000001")


def settle(now, seconds: float = 900) -> None:
    """The retry comes after the lease and after Asana's search index caught up."""
    now.advance(seconds)


@pytest.mark.parametrize("skew", [-900, -180, 180, 900])
def test_a_lost_answer_is_found_whatever_the_connectors_clock_says(make_sync, asana, now, skew):
    asana.control("set_clock_offset", seconds=skew)
    asana.faults.add("drop_after_write", method="POST", path="^/tasks$")
    outcome = run(make_sync)
    assert len(our_tasks(asana)) == 1
    link = RecordLink.objects.get()
    assert (link.state, link.asana_task_gid) == ("linked", our_tasks(asana)[0])
    assert "adopted task" in " ".join(outcome.notes)


@pytest.mark.parametrize("skew", [-900, 180])
def test_a_killed_worker_and_skewed_clocks_end_with_one_task(make_sync, asana, now, monkeypatch, skew):
    asana.control("set_clock_offset", seconds=skew)
    with monkeypatch.context() as m:
        killed_after_create(m)
        with pytest.raises(SystemExit):
            run(make_sync)
    settle(now)
    run(make_sync)
    assert len(our_tasks(asana)) == 1
    assert RecordLink.objects.get().asana_task_gid == our_tasks(asana)[0]


@pytest.mark.parametrize(
    "person_does",
    [
        {"name": "Concrete pour, level 3 (renamed)"},
        {"custom_fields": {F["erp_reference"]: "PO-4471 per site manager"}},
        {"name": "renamed", "custom_fields": {F["erp_reference"]: "typed over"}},
    ],
    ids=["renamed", "reference-overwritten", "both"],
)
def test_a_person_editing_the_new_task_before_the_retry_does_not_cause_a_second(
    make_sync, asana, now, monkeypatch, person_does
):
    with monkeypatch.context() as m:
        killed_after_create(m)
        with pytest.raises(SystemExit):
            run(make_sync)
    (gid,) = our_tasks(asana)
    now.advance(30)
    asana.control("person_edit_task", gid=gid, **person_does)
    settle(now)
    run(make_sync)
    assert our_tasks(asana) == [gid]
    link = RecordLink.objects.get()
    assert (link.state, link.asana_task_gid) == ("linked", gid)


def test_a_task_moved_to_another_project_is_found_by_search_once_the_index_caught_up(
    make_sync, asana, now, monkeypatch
):
    asana.control("set_search_lag", seconds=300)
    with monkeypatch.context() as m:
        killed_after_create(m)
        with pytest.raises(SystemExit):
            run(make_sync)
    (gid,) = our_tasks(asana)
    now.advance(20)
    asana.control("person_move_task", gid=gid, project=D["pr_project"])
    now.advance(130)  # after the lease, before the index shows the task
    with pytest.raises(errors.RetryableError):
        run(make_sync)  # not found yet is only "unknown": nothing is created
    assert our_tasks(asana) == [gid]
    now.advance(600)
    run(make_sync)
    assert our_tasks(asana) == [gid]
    assert RecordLink.objects.get().asana_task_gid == gid


def test_a_task_nobody_can_prove_ours_parks_the_link_for_a_person(make_sync, asana, now, monkeypatch):
    with monkeypatch.context() as m:
        killed_after_create(m)
        with pytest.raises(SystemExit):
            run(make_sync)
    (gid,) = our_tasks(asana)
    asana.control(
        "person_edit_task",
        gid=gid,
        name="something else",
        notes="rewritten by the PM",
        custom_fields={F["erp_reference"]: "n/a"},
    )
    settle(now)
    tasks_before = len(asana.tasks)
    run(make_sync)
    link = RecordLink.objects.get()
    assert link.state == RecordLink.State.NEEDS_PERSON
    assert [c["gid"] for c in link.review["candidates"]] == [gid]
    assert len(asana.tasks) == tasks_before  # nothing created
    settle(now)
    run(make_sync)  # still waiting: never a silent second task
    assert RecordLink.objects.get().state == RecordLink.State.NEEDS_PERSON
    parked.resolve(link.pk, adopt_gid=gid, actor="operator")
    run(make_sync)
    link.refresh_from_db()
    assert (link.state, link.asana_task_gid) == ("linked", gid)
    assert asana.tasks[gid]["name"].startswith("Bill 000001")  # the next sync wrote the document back
    assert AuditEntry.objects.filter(operation="resolve_unknown_create", actor="operator").count() == 1


def test_a_create_that_outlives_its_lease_leaves_one_open_task_and_reports_the_orphan(
    make_sync, asana, now, monkeypatch
):
    """Worker A's create hangs past its lease; worker B takes over and creates; A's answer finally comes."""
    from integrations.asana.client import AsanaClient

    real_create = AsanaClient.create_task
    state = {"b_ran": False}

    def slow_create(self, **kwargs):
        if not state["b_ran"]:  # A's POST is in flight (not applied yet) past its lease …
            state["b_ran"] = True
            now.advance(600)
            run(make_sync)  # … worker B takes the document over, finds nothing, creates and stores
        return real_create(self, **kwargs)  # then A's POST lands: its task is the orphan

    monkeypatch.setattr(AsanaClient, "create_task", slow_create)
    run(make_sync)
    assert len(open_tasks(asana)) == 1
    link = RecordLink.objects.get()
    assert link.asana_task_gid == open_tasks(asana)[0]
    orphans = [g for g in our_tasks(asana) if g != link.asana_task_gid]
    assert len(orphans) == 1 and asana.tasks[orphans[0]]["completed"]
    assert any(link.asana_task_gid in s["text"] for s in asana.stories.values() if s["task"] == orphans[0])
    assert AuditEntry.objects.filter(error__contains=f"orphan task {orphans[0]} closed").count() == 1


def test_two_tenants_on_one_project_never_adopt_each_others_tasks(
    make_sync, asana, acu, now, monkeypatch, bills_flow
):
    other = Tenant.objects.create(slug="ridgeline-west", name="Ridgeline West")
    connect_sandboxes(
        other,
        ACU_URL,
        ASANA_URL,
        acumatica={"tenant_login_name": "Ridgeline"},
        asana={"connector_user_gid": D["connector_user"]},
    )
    west = Flow.objects.create(
        tenant=other,
        name="AP bills",
        kind="acumatica_bills",
        asana_project_gid=D["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
        task_name_template="Bill {ReferenceNbr} · {Vendor} · {Amount}",
        options={"share_project_with_other_tenants": True},
    )
    for m in bills_flow.field_mappings.exclude(source_path="Status"):  # its value mappings stay with A
        m.pk, m.flow = None, west
        m.save()
    run(make_sync)  # tenant A's bill 000001 → its task
    a_task = RecordLink.objects.get(tenant=bills_flow.tenant).asana_task_gid
    with monkeypatch.context() as m:
        killed_after_create(m)
        with pytest.raises(SystemExit):
            run(make_sync, flow=west)  # tenant B's bill 000001: created, answer lost
    settle(now)
    run(make_sync, flow=west)
    b_link = RecordLink.objects.get(tenant=other)
    assert b_link.asana_task_gid and b_link.asana_task_gid != a_task
    assert RecordLink.objects.filter(asana_task_gid=a_task).count() == 1
