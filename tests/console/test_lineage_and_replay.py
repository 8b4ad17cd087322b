"""Lineage page and replay (preview diff against Asana's current state, then run through the queue)."""

from __future__ import annotations

from django.urls import reverse

from audit.models import ApiCall, AuditEntry, SyncRun
from integrations.console import lineage
from integrations.flows import replay

from ..flows.documents.test_documents_support import *  # noqa: F403
from ..flows.documents.test_documents_support import D, F
from .support import *  # noqa: F403


def _edit_task_in_asana(link, amount):
    """Someone changes the task's amount by hand in Asana: our last payload no longer matches it."""
    from integrations.asana.client import client_for

    client_for(link.tenant.asana, rate_limiter=None).update_task(
        link.asana_task_gid, {"custom_fields": {F["amount"]: amount}}
    )


def test_lineage_page_shows_the_three_systems_and_a_merged_timeline(admin_client, synced_bill):
    page = admin_client.get(reverse("admin:integrations_recordlink_lineage", args=[synced_bill.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    permalink = f"https://app.asana.com/0/{D['ap_project']}/{synced_bill.asana_task_gid}"
    assert permalink in html
    items = lineage.timeline(synced_bill)
    kinds = {i.kind for i in items}
    assert {"audit", "api"} <= kinds
    assert any(i.title.startswith("create_task") for i in items)
    assert ApiCall.objects.filter(record_link=synced_bill).count() == sum(i.kind == "api" for i in items)
    assert "create_task" in html and "asana POST" in html
    # secrets never reach the page (the API-call rows are redacted when stored)
    assert D["pat"] not in html


def test_replay_preview_diffs_against_the_task_as_it_is_now_and_writes_nothing(synced_bill, asana):
    _edit_task_in_asana(synced_bill, 1.0)
    before = len(asana.requests)
    calls = ApiCall.objects.count()

    preview = replay.preview(synced_bill)

    assert preview.action == "update" and preview.runnable
    assert preview.diff == {"Amount (Amount)": [1.0, 18450.0]}
    assert [r.method for r in asana.requests[before:]] and all(
        r.method == "GET" for r in asana.requests[before:]
    )
    assert ApiCall.objects.count() == calls


def test_replay_confirmed_runs_through_the_queue_as_the_operator(client, operator, synced_bill, asana):
    _edit_task_in_asana(synced_bill, 1.0)
    client.force_login(operator)
    url = reverse("admin:integrations_recordlink_replay", args=[synced_bill.pk])

    page = client.get(url)
    assert page.status_code == 200 and b"18450" in page.content and b"confirm-replay" in page.content
    assert asana.task_values(synced_bill.asana_task_gid)[F["amount"]] == 1.0  # preview wrote nothing

    done = client.post(url, {"post": "yes"})

    run = SyncRun.objects.get(trigger="replay")
    assert done.status_code == 302 and done.url == reverse("admin:audit_syncrun_progress", args=[run.pk])
    assert asana.task_values(synced_bill.asana_task_gid)[F["amount"]] == 18450.0
    assert (run.triggered_by, run.status, run.progress_done, run.progress_total) == (
        "operator",
        "succeeded",
        1,
        1,
    )
    entry = AuditEntry.objects.filter(run=run).get()
    original = AuditEntry.objects.filter(record_link=synced_bill, operation="create_task").get()
    assert (entry.operation, entry.actor, entry.replay_of_id) == ("update_task", "operator", original.pk)
    timeline = lineage.timeline(synced_bill)
    assert any(i.kind == "operator" and "Replayed record" in i.title for i in timeline)
    assert client.get(done.url).status_code == 200


def test_replay_of_an_audit_entry_from_the_audit_list(admin_client, synced_bill, asana):
    _edit_task_in_asana(synced_bill, 2.0)
    original = AuditEntry.objects.get(record_link=synced_bill)
    changelist = reverse("admin:audit_auditentry_changelist")
    form = {"action": "replay_entries_action", "_selected_action": [str(original.pk)]}

    confirm = admin_client.post(changelist, form)
    assert confirm.status_code == 200 and b"Amount (Amount)" in confirm.content

    admin_client.post(changelist, {**form, "post": "yes"})
    assert asana.task_values(synced_bill.asana_task_gid)[F["amount"]] == 18450.0
    assert AuditEntry.objects.filter(replay_of=original, actor="admin").exists()


def test_bulk_replay_shows_counts_before_it_runs(admin_client, make_sync, acu, asana):
    for number in ("000001", "000002"):
        make_sync().process("Bill", number)
    from integrations.models import RecordLink

    ids = [str(pk) for pk in RecordLink.objects.values_list("pk", flat=True)]
    changelist = reverse("admin:integrations_recordlink_changelist")
    form = {"action": "replay_selected", "_selected_action": ids}
    before = len(asana.requests)

    confirm = admin_client.post(changelist, form)

    html = confirm.content.decode()
    assert 'id="replayable-count">2<' in html
    assert len(asana.requests) == before  # counts only: no vendor read for a filtered set
    admin_client.post(changelist, {**form, "post": "yes"})
    run = SyncRun.objects.get(trigger="replay")
    assert (run.progress_done, run.progress_total, run.status) == (2, 2, "succeeded")


def test_replay_without_handler_is_refused_in_the_preview(synced_bill):
    from integrations.models import Flow

    # The roster re-runs whole passes: it has no per-record replay.
    Flow.objects.filter(pk=synced_bill.flow_id).update(kind="acumatica_employees")
    synced_bill.refresh_from_db()
    preview = replay.preview(synced_bill)
    assert not preview.runnable and "no replay handler" in preview.reason
    assert replay.enqueue([(synced_bill, None)], actor="x") is None


def test_connector_replay_prints_the_diff_then_queues_with_yes(synced_bill, asana):
    from io import StringIO

    from django.core.management import call_command

    _edit_task_in_asana(synced_bill, 3.0)
    out = StringIO()
    call_command("connector", "replay", "--record", str(synced_bill.pk), "--yes", stdout=out)
    text = out.getvalue()
    assert "Amount (Amount): 3 → 18450.0" in text and "Queued 1 replay(s)" in text
    assert asana.task_values(synced_bill.asana_task_gid)[F["amount"]] == 18450.0
    assert SyncRun.objects.get(trigger="replay").triggered_by.startswith("cli:")
