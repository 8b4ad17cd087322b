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

from audit.models import AuditEntry, EvidenceExport
from integrations.flows import evidence
from integrations.flows.evidence.rows import COLUMNS, RELEASE_OPERATIONS, canonical_json, sha256_of
from integrations.flows.inbound import watchdog
from integrations.models import RecordLink
from mappings.models import UserMapping
from tests.flows.inbound.harness import DEMO, World, world  # noqa: F401

from .period import build_period

PDFTOPPM = shutil.which("pdftoppm")


@pytest.fixture
def period(world: World):  # noqa: F811
    """The four cases, each through the real webhook → queue → worker path."""
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    return build_period(world, deliver=lambda gid: world.asana.deliver_pending_events())


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
