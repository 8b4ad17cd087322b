"""Invoice files onto the task (issue 21), through both sandboxes with the strict contract: files a
person attached to a bill in Acumatica end up on its Asana task once each, whatever happens."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEntry
from integrations.base import errors
from integrations.models import Flow, RecordLink, TaskAttachment

from .test_documents_support import *  # noqa: F403

PDF_A = b"%PDF-1.7\n" + b"invoice A " * 300
PDF_B = b"%PDF-1.7\n" + b"delivery note B " * 200


def _enable(flow: Flow, **opts) -> Flow:
    flow.options = {**(flow.options or {}), "attachments": {"enabled": True, **opts}}
    flow.full_clean()
    flow.save()
    return flow


def _attach(acu, name: str, content: bytes, nbr: str = "000001") -> dict:
    return acu.control(
        "person_attach_file",
        kind="bill",
        type="Bill",
        nbr=nbr,
        filename=name,
        content_base64=base64.b64encode(content).decode(),
    )


def _task(nbr: str = "000001") -> str:
    return RecordLink.objects.get(acumatica_type="Bill", acumatica_ref=nbr).asana_task_gid


def _uploads(asana, since: int = 0) -> int:
    return sum(1 for r in asana.requests[since:] if r.method == "POST" and r.path == "/attachments")


def _file_reads(acu) -> int:
    return sum(1 for m, p, _s in acu.request_log if m == "GET" and "/files/" in p)


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_a_new_bill_with_two_pdfs_gets_both_once_and_a_resync_uploads_none(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    _attach(acu, "delivery-note.pdf", PDF_B)
    outcome = make_sync().process("Bill", "000001")
    assert outcome.status == "succeeded"
    held = asana.control("attachments_of", task_gid=_task())
    assert sorted((a["name"], a["sha256"]) for a in held) == sorted(
        [("invoice.pdf", _sha(PDF_A)), ("delivery-note.pdf", _sha(PDF_B))]
    )
    rows = TaskAttachment.objects.filter(state="uploaded")
    assert sorted(r.sha256 for r in rows) == sorted([_sha(PDF_A), _sha(PDF_B)])
    assert {r.asana_attachment_gid for r in rows} == {a["gid"] for a in held}
    assert AuditEntry.objects.filter(operation="upload_attachment", status="succeeded").count() == 2

    mark = len(asana.requests)
    make_sync().process("Bill", "000001")  # a re-sync: same files, same content
    make_sync().process("Bill", "000001")
    assert _uploads(asana, mark) == 0
    assert len(asana.control("attachments_of", task_gid=_task())) == 2
    assert TaskAttachment.objects.count() == 2


def test_a_replaced_file_is_uploaded_again_and_the_old_one_is_left_and_noted(
    make_sync, bills_flow, acu, asana
):
    _enable(bills_flow)
    first = _attach(acu, "invoice.pdf", PDF_A)
    make_sync().process("Bill", "000001")
    old_gid = TaskAttachment.objects.get().asana_attachment_gid

    corrected = PDF_A.replace(b"invoice A", b"invoice C")
    again = _attach(acu, "invoice.pdf", corrected)  # same name: Acumatica keeps the file id
    assert again["id"] == first["id"] and again["revision"] == 2
    make_sync().process("Bill", "000001")

    held = asana.control("attachments_of", task_gid=_task())
    assert [(a["name"], a["sha256"]) for a in held] == [
        ("invoice.pdf", _sha(PDF_A)),
        ("invoice.pdf", _sha(corrected)),
    ]
    states = dict(TaskAttachment.objects.values_list("sha256", "state"))
    assert states == {_sha(PDF_A): "replaced", _sha(corrected): "uploaded"}
    comments = [
        s["text"] for s in asana.stories.values() if s["task"] == _task() and s["subtype"] == "comment_added"
    ]
    assert any("invoice.pdf was replaced" in c and old_gid in c for c in comments)
    mark = len(asana.requests)
    make_sync().process("Bill", "000001")
    assert _uploads(asana, mark) == 0


def test_an_oversize_or_unwanted_file_is_skipped_with_its_reason_and_the_task_still_made(
    make_sync, bills_flow, acu, asana
):
    _enable(bills_flow, max_bytes=4000, allowed_types=["application/pdf"])
    _attach(acu, "invoice.pdf", PDF_A)  # 3009 bytes
    _attach(acu, "scan-of-everything.pdf", b"%PDF-1.7\n" + b"x" * 5000)
    _attach(acu, "macro.xlsm", b"PK\x03\x04 not an invoice")
    outcome = make_sync().process("Bill", "000001")
    assert RecordLink.objects.get().state == "linked" and outcome.status == "succeeded"
    held = asana.control("attachments_of", task_gid=_task())
    assert [a["name"] for a in held] == ["invoice.pdf"]
    skipped = {r.file_name: r.reason for r in TaskAttachment.objects.filter(state="skipped")}
    assert "over the flow's limit of 4000 bytes" in skipped["scan-of-everything.pdf"]
    assert "not among the flow's allowed types" in skipped["macro.xlsm"]
    assert AuditEntry.objects.filter(operation="upload_attachment", status="skipped").count() == 2
    make_sync().process("Bill", "000001")  # said once: no second row, no second entry
    assert TaskAttachment.objects.filter(state="skipped").count() == 2
    assert AuditEntry.objects.filter(operation="upload_attachment", status="skipped").count() == 2


def test_asanas_own_limit_is_a_recorded_skip(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    asana.control("set_attachment_limit", max_bytes=1000)
    _attach(acu, "invoice.pdf", PDF_A)
    make_sync().process("Bill", "000001")
    assert asana.control("attachments_of", task_gid=_task()) == []
    row = TaskAttachment.objects.get()
    assert row.state == "skipped" and "Asana refused the upload" in row.reason and "too large" in row.reason


def test_a_429_mid_upload_is_retried_with_a_fresh_stream_and_ends_with_one_attachment(
    make_sync, bills_flow, acu, asana
):
    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    asana.faults.add("status", method="POST", path="^/attachments$", status=429, retry_after=1, times=1)
    make_sync().process("Bill", "000001")
    held = asana.control("attachments_of", task_gid=_task())
    assert [(a["name"], a["sha256"]) for a in held] == [("invoice.pdf", _sha(PDF_A))]
    assert _uploads(asana) == 2  # the 429, then the one that was applied
    assert _file_reads(acu) == 2  # each attempt streamed the file from Acumatica afresh
    assert TaskAttachment.objects.get().state == "uploaded"


def test_a_lost_upload_answer_is_reconciled_by_listing_not_uploaded_again(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    asana.faults.add("drop_after_write", method="POST", path="^/attachments$")
    make_sync().process("Bill", "000001")
    held = asana.control("attachments_of", task_gid=_task())
    assert len(held) == 1
    row = TaskAttachment.objects.get()
    assert (row.state, row.asana_attachment_gid, row.sha256) == ("uploaded", held[0]["gid"], _sha(PDF_A))
    assert "adopted after a lost answer" in row.reason
    assert _uploads(asana) == 1
    assert any(r.method == "GET" and r.path == "/attachments" for r in asana.requests)


def test_an_upload_that_never_arrived_is_looked_for_then_sent_once_more(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    asana.faults.add("timeout", method="POST", path="^/attachments$")  # not applied, answer lost
    with pytest.raises(errors.RetryableError):
        make_sync().process("Bill", "000001")
    assert TaskAttachment.objects.get().state == "uploading"  # the claim, kept for the next attempt
    make_sync().process("Bill", "000001")
    assert len(asana.control("attachments_of", task_gid=_task())) == 1
    assert TaskAttachment.objects.get().state == "uploaded"


def test_attachments_are_off_unless_the_flow_says_so(make_sync, acu, asana):
    _attach(acu, "invoice.pdf", PDF_A)
    make_sync().process("Bill", "000001")
    assert asana.control("attachments_of", task_gid=_task()) == []
    assert not any("/files" in p for _m, p, _s in acu.request_log)


@pytest.mark.parametrize(
    "bad, says",
    [
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"max_bytes": 200 * 1024 * 1024}, "Asana's limit"),
        ({"allowed_types": ["pdf"]}, "not a media type: pdf"),
        ({"max_size": 5}, "unknown key(s) max_size"),
    ],
)
def test_bad_attachment_options_are_refused(bills_flow, bad, says):
    bills_flow.options = {"attachments": bad}
    with pytest.raises(ValidationError) as exc:
        bills_flow.full_clean()
    assert says in str(exc.value)


def test_another_workers_upload_in_flight_is_left_alone_and_a_dead_ones_is_taken_over(
    make_sync, bills_flow, acu, asana
):
    from datetime import timedelta

    from django.utils import timezone

    _enable(bills_flow)
    make_sync().process("Bill", "000001")  # the task, before the file
    link = RecordLink.objects.get()
    file = _attach(acu, "invoice.pdf", PDF_A)
    claim = TaskAttachment.objects.create(
        link=link, file_id=file["id"], file_name="invoice.pdf", attempt_started_at=timezone.now()
    )
    make_sync().process("Bill", "000001")
    assert _uploads(asana) == 0 and TaskAttachment.objects.get().state == "uploading"

    claim.attempt_started_at = timezone.now() - timedelta(minutes=20)  # its worker died mid-upload
    claim.save()
    make_sync().process("Bill", "000001")
    assert len(asana.control("attachments_of", task_gid=_task())) == 1
    assert _uploads(asana) == 1
    assert TaskAttachment.objects.get().state == "uploaded"


def test_a_non_ascii_file_name_arrives_as_it_was_named(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    _attach(acu, "Facture été n°7.pdf", PDF_A)
    make_sync().process("Bill", "000001")
    assert [a["name"] for a in asana.control("attachments_of", task_gid=_task())] == ["Facture été n°7.pdf"]


def test_a_poll_pass_uploads_new_tasks_files_and_rereads_none_for_unchanged_bills(
    make_sync, bills_flow, acu, asana
):
    from integrations.flows.documents.poll import poll

    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    poll(make_sync())  # creates the tasks: bill 000001's file goes with its task
    assert len(asana.control("attachments_of", task_gid=_task())) == 1
    reads = _file_reads(acu)
    poll(make_sync())  # the overlap window re-reads the same versions: no file is read again
    assert _file_reads(acu) == reads
    assert len(asana.control("attachments_of", task_gid=_task())) == 1


def test_a_file_put_back_to_an_earlier_version_uploads_nothing(make_sync, bills_flow, acu, asana):
    _enable(bills_flow)
    _attach(acu, "invoice.pdf", PDF_A)
    make_sync().process("Bill", "000001")
    _attach(acu, "invoice.pdf", PDF_B)
    make_sync().process("Bill", "000001")
    mark = len(asana.requests)
    _attach(acu, "invoice.pdf", PDF_A)  # the person puts the first version back
    make_sync().process("Bill", "000001")
    assert _uploads(asana, mark) == 0
    assert len(asana.control("attachments_of", task_gid=_task())) == 2
    states = dict(TaskAttachment.objects.values_list("sha256", "state"))
    assert states == {_sha(PDF_A): "uploaded", _sha(PDF_B): "replaced"}
