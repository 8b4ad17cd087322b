# ruff: noqa: F811  (pytest fixtures imported from the harness)
"""Auditor evidence over a real period driven through the sandboxes: a plain approval and release, a bill
changed in Acumatica after its approval (reset, approved again, released), a refused release, and a
failed release an operator replayed. Every CSV row is checked against the audit trail; the PDF is
rendered to PNG with pdftoppm; the export's recorded SHA-256 verifies (and an altered file does not)."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit import replay
from audit.models import AuditEntry, EvidenceExport
from integrations.asana import watchdog
from integrations.flows import evidence
from integrations.flows.acumatica_documents import DocumentSync
from integrations.flows.evidence.rows import COLUMNS, RELEASE_OPERATIONS, canonical_json, sha256_of
from integrations.models import AcumaticaConnection, RecordLink
from mappings.models import UserMapping
from tests.asana_webhooks.harness import DEMO, World, world  # noqa: F401

PDFTOPPM = shutil.which("pdftoppm")


def deliver(w: World, gid: str) -> None:
    w.clock.now += 1
    w.approve(gid)
    w.asana.deliver_pending_events()


@pytest.fixture
def period(world: World):  # noqa: F811
    """The four cases, each through the real webhook → queue → worker path."""
    w = world
    UserMapping.objects.create(
        tenant=w.tenant,
        email="alice@ridgeline.test",
        display_name="Alice Approver",
        asana_user_gid=DEMO["users"]["alice"],
    )
    watchdog.ensure_webhooks(w.tenant, w.clients.asana)
    w.asana.deliver_pending_events()
    cases = {}
    # 1. approved and released
    bill = w.acumatica.add_bill("ABCCONCRETE", 1200.50, vendor_ref="INV-1")
    gid, cases["released"] = w.bill_task(bill)
    deliver(w, gid)
    # 2. approved; the amount changes in Acumatica before the release; the documents flow resets the
    #    approval; approved again and released at the new amount
    bill = w.acumatica.add_bill("STEELWORKS", 500.00, vendor_ref="SW-7", status="Pending Approval")
    gid, cases["changed"] = w.bill_task(bill)
    deliver(w, gid)  # fails: Pending Approval without approval maps (the approval stands)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Amount=650.00, Status="Balanced")
    sync = DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana)
    sync.process("Bill", bill["ReferenceNbr"])
    assert AuditEntry.objects.filter(
        operation="changed_after_approval", record_link=cases["changed"]
    ).exists()
    w.asana.deliver_pending_events()
    deliver(w, gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    # 3. refused: approved at 1000.00, changed to 1900.00 in Acumatica before the event arrives
    bill = w.acumatica.add_bill("RIVERLUMBER", 1000.00, vendor_ref="RL-3")
    gid, cases["refused"] = w.bill_task(bill)
    w.clock.now += 1
    w.approve(gid)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Amount=1900.00)
    w.asana.deliver_pending_events()
    assert (
        AuditEntry.objects.get(record_link=cases["refused"], operation="bill.release").status == "quarantined"
    )
    # 4. failed (Pending Approval, no approval maps), then the tenant turns approval maps on and an
    #    operator replays the release entry
    bill = w.acumatica.add_bill("SUMMITELEC", 800.00, status="Pending Approval")
    gid, cases["replayed"] = w.bill_task(bill)
    deliver(w, gid)
    failed = AuditEntry.objects.get(record_link=cases["replayed"], operation="bill.release")
    assert failed.status == "failed"
    AcumaticaConnection.objects.filter(tenant=w.tenant).update(uses_approval_maps=True)
    link = RecordLink.objects.get(pk=cases["replayed"].pk)
    assert replay.enqueue([(link, failed)], actor="olivia") is not None  # django-q2 sync mode: runs now
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    w.cases = {k: RecordLink.objects.get(pk=v.pk) for k, v in cases.items()}
    return w


def today_range():
    today = timezone.localdate()
    return today - timedelta(days=1), today + timedelta(days=1)


def check_row_against_audit_trail(row: dict) -> None:
    """Every cell recomputed from the AuditEntry rows of the record (independently of the builder)."""
    link = RecordLink.objects.get(pk=int(row["link_id"]))
    entries = list(AuditEntry.objects.filter(record_link=link).order_by("created_at", "id"))
    assert row["audit_entries"].split() == [str(e.pk) for e in entries]
    releases = [e for e in entries if e.operation in RELEASE_OPERATIONS]
    names = {u.asana_user_gid: u.display_name for u in UserMapping.objects.filter(tenant=link.tenant)}
    approvals = {
        f"{e.source_snapshot['approved_by']}"
        + (
            f" ({names[e.source_snapshot['approved_by']]})"
            if e.source_snapshot["approved_by"] in names
            else ""
        )
        + f" at {e.source_snapshot['approved_at']}"
        for e in releases
        if e.source_snapshot.get("approved_at")
    }
    assert set(filter(None, row["approvals"].split("; "))) == approvals
    ok = [e for e in releases if e.status in ("succeeded", "unchanged")]
    if ok:
        assert row["outcome"] == "released"
        assert row["released_at"] == ok[0].source_snapshot["released_at"]
        assert row["approved_values"] == canonical_json(ok[0].source_snapshot["values"])
        assert row["released_values"] == canonical_json(ok[0].source_snapshot["document_values"])
        assert row["approved_values_sha256"] == sha256_of(ok[0].source_snapshot["values"])
        assert Decimal(row["amount"]) == Decimal(str(ok[0].source_snapshot["document_values"]["Amount"]))
    refused = [e for e in releases if e.status == "quarantined"]
    assert len(list(filter(None, row["refusals"].split("; ")))) == len(refused)
    for e in refused:
        assert e.error in row["refusals"]
    changed = [e for e in entries if e.operation == "changed_after_approval"]
    assert len(list(filter(None, row["changed_after_approval"].split("; ")))) == len(changed)
    replays = [e for e in entries if e.replay_of_id]
    assert len(list(filter(None, row["replays"].split("; ")))) == len(replays)
    for e in replays:
        assert f"by {e.actor} (replay of #{e.replay_of_id})" in row["replays"]
    assert row["payload_hash"] == link.payload_hash
    assert row["document"] == f"{link.acumatica_type} {link.acumatica_ref}"
    assert bool(row["exceptions"]) == bool(refused or changed or replays or (ok and not approvals))


def test_csv_rows_match_the_audit_trail(period: World):
    w = period
    start, end = today_range()
    result = evidence.produce(w.tenant, start, end, fmt="csv", actor="aud")
    rows = list(csv.DictReader(io.StringIO(result.content.decode())))
    assert list(rows[0].keys()) == COLUMNS
    by_link = {int(r["link_id"]): r for r in rows}
    assert set(by_link) == {link.pk for link in w.cases.values()}
    for row in rows:
        check_row_against_audit_trail(row)
    c = {k: by_link[v.pk] for k, v in w.cases.items()}
    assert c["released"]["outcome"] == "released" and c["released"]["exceptions"] == ""
    assert f"{DEMO['users']['alice']} (Alice Approver) at " in c["released"]["approvals"]
    assert c["released"]["approved_values"] == '{"Amount":"1200.50","Vendor":"ABCCONCRETE"}'
    assert "Amount 500.00 → 650.00" in c["changed"]["changed_after_approval"]
    assert c["changed"]["outcome"] == "released" and c["changed"]["amount"] == "650.00"
    assert "(approval reset)" in c["changed"]["guarded_writes"]
    assert c["refused"]["outcome"] == "refused" and "release refused" in c["refused"]["exceptions"]
    assert "by olivia" in c["replayed"]["replays"] and c["replayed"]["outcome"] == "released"
    # The export is recorded: its row, its hash, and an audit entry naming who made it.
    record = EvidenceExport.objects.get(pk=result.record.pk)
    assert record.sha256 == hashlib.sha256(result.content).hexdigest()
    assert (record.documents, record.exceptions) == (4, 3)
    entry = AuditEntry.objects.get(operation="evidence.export")
    assert entry.actor == "aud" and entry.payload["sha256"] == record.sha256
    # A period with nothing in it has a header and no row; another flow's filter narrows.
    empty = evidence.produce(
        w.tenant, start - timedelta(days=30), start - timedelta(days=20), fmt="csv", actor="aud"
    )
    assert empty.content.decode().strip() == ",".join(COLUMNS)
    only_approvals = evidence.produce(w.tenant, start, end, fmt="csv", actor="aud", flow=w.approvals_flow)
    assert len(only_approvals.content.decode().strip().splitlines()) == 1


def test_pdf_has_summary_then_a_page_per_exception_and_renders(period: World, tmp_path):
    w = period
    start, end = today_range()
    result = evidence.produce(w.tenant, start, end, fmt="pdf", actor="aud")
    assert result.content.startswith(b"%PDF")
    assert evidence.verify(result.content) == result.record
    pdf = tmp_path / "evidence.pdf"
    pdf.write_bytes(result.content)
    if not PDFTOPPM:
        pytest.skip(
            "pdftoppm (Debian poppler-utils) is not installed: the PDF was produced and verified, "
            "not rendered"
        )
    subprocess.run([PDFTOPPM, "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 1 + 3  # the summary, then one page per exception (changed, refused, replayed)
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 2000 for p in pages)
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    pages_text = text.split("\f")
    assert "Approval and release evidence" in pages_text[0] and "4" in pages_text[0]
    for key in ("changed", "refused", "replayed"):
        link = w.cases[key]
        assert any(f"Exception: Bill {link.acumatica_ref}" in p for p in pages_text[1:])


def test_cli_exports_and_verifies_and_an_altered_file_fails(period: World, tmp_path):
    w = period
    start, end = today_range()
    out = tmp_path / "evidence.csv"
    call_command(
        "connector",
        "evidence",
        "--tenant",
        w.tenant.slug,
        "--from",
        str(start),
        "--to",
        str(end),
        "--format",
        "csv",
        "--out",
        str(out),
    )
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (tmp_path / "evidence.csv.sha256").read_text().split()[0] == digest
    assert EvidenceExport.objects.filter(sha256=digest, format="csv").exists()
    call_command("connector", "evidence", "verify", str(out))  # exit 0
    assert AuditEntry.objects.filter(operation="evidence.verify").count() == 1
    out.write_bytes(out.read_bytes().replace(b"1200.50", b"1300.50"))
    with pytest.raises(CommandError) as refused:
        call_command("connector", "evidence", "verify", str(out))
    assert refused.value.returncode == 1
