"""Step 4, the fit report: the customer's real documents planned, read-only on both sides."""

from __future__ import annotations

from audit.models import AuditEntry
from integrations.models import Flow, RecordLink, SetupProgress
from integrations.setup import steps

from .conftest import writes

VENDOR_LIST = "1200000000000390"


def test_the_fit_report_writes_nothing_to_either_system(set_up, acu, asana):
    tenant = set_up(vendor_field=VENDOR_LIST)
    acu_before, asana_before = len(acu.request_log), len(asana.request_log)
    tasks_before = len(asana.tasks)

    report = steps.run_fit_report(tenant)

    # the sandboxes saw reads only (sign-in / sign-out aside), and they did see the reads
    assert not writes(acu, acu_before), writes(acu, acu_before)
    assert not writes(asana, asana_before), writes(asana, asana_before)
    assert any(p.endswith("/Bill") or "/Bill?" in p for _m, p, _s in acu.request_log[acu_before:])
    assert len(asana.tasks) == tasks_before
    assert all(m == "GET" for m, _p, _s in asana.request_log[asana_before:])
    # and nothing of ours moved either: no link, no audit entry, the flows still off
    assert not RecordLink.objects.exists() and not AuditEntry.objects.exists()
    assert not Flow.objects.filter(tenant=tenant, enabled=True).exists()
    assert SetupProgress.objects.get(tenant=tenant).fit_report == report


def test_the_fit_report_shows_each_task_the_skips_and_the_vendor_gaps(set_up):
    tenant = set_up(vendor_field=VENDOR_LIST)
    report = steps.run_fit_report(tenant)

    (bills,) = report["flows"]
    docs = {d["key"]: d for d in bills["documents"]}
    assert len(docs) == 5  # the demo ledger's five bills (fewer than 20)
    first = docs["Bill/000001"]
    assert first["action"] == "create"
    preview = dict(first["task"])
    assert preview["Task name"] == "Bill 000001 · ABCCONCRETE · 18450.00"
    assert preview["Amount"] == "18450.00" and preview["Vendor (list)"] == "ABC Concrete Supply"
    assert preview["Due date"] == first["task"][2][1] and len(preview["Due date"]) == 10  # YYYY-MM-DD
    assert preview["ERP reference"] == "Bill/000001"
    # HEAVYRENT has no option in the enum: its bill is held back, and the vendor is listed
    heavy = next(d for d in docs.values() if "HEAVYRENT" in str(d["task"]) or "HEAVYRENT" in d["reason"])
    assert heavy["action"] == "quarantine" and "HEAVYRENT" in heavy["reason"]
    assert [v["vendor_id"] for v in bills["vendors_without_option"]] == ["HEAVYRENT"]
    assert report["fits"] is False
    assert any("HEAVYRENT" in p or "vendor(s) have no option" in p for p in report["problems"])


def test_the_fit_report_lists_actions_and_budgets(set_up):
    tenant = set_up()
    report = steps.run_fit_report(tenant)
    assert "ReleaseBill" in report["actions"]["offered"]["Bill"]
    assert report["actions"]["needed"]["Bill"] == ["ReleaseBill"] and not report["actions"]["missing"]
    budgets = report["budgets"]
    assert budgets["asana_requests_per_minute"] == 1500
    assert budgets["acumatica_seats"] == "one shared OAuth session (one API seat)"
    creates = report["flows"][0]["counts"].get("create", 0)
    assert creates >= 1 and budgets["first_pass_calls"] == 2 * creates
    skipped = [d for d in report["flows"][0]["documents"] if d["action"] == "skip"]
    for doc in skipped:
        assert doc["reason"]  # every skip says why
    assert report["fits"] is True, report["problems"]
