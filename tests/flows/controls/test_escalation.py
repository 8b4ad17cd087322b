"""Stuck-approval escalation through the sandboxes: an e-mail (Django's locmem backend) and a comment
mentioning the approver, once per threshold, with business days from the flow's holiday calendar; the
early-payment discount date read from Acumatica; nothing once the approval moves."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core import mail

from audit.models import AuditEntry
from integrations.flows.documents.sync import DocumentSync
from integrations.flows.inbound import watchdog
from integrations.flows.operations import escalation
from integrations.flows.registry import ensure_all
from integrations.models import RecordLink
from sandbox.asana import DEMO
from tests.flows.inbound.harness import World, world  # noqa: F401

PM = DEMO["users"]["alice"]
THU = date(2026, 12, 3)


@pytest.fixture
def w(world: World):  # noqa: F811
    world.clock.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()  # a Thursday, on Asana's clock
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    world.bills_flow.options = {
        "controls": {
            "escalation": {
                "enabled": True,
                "pending_business_days": 3,
                "due_within_days": 2,
                "recipients": ["ap-lead@ridgeline.example"],
                "holidays": ["2026-12-07"],  # Monday: a company holiday
            }
        }
    }
    world.bills_flow.save()
    return world


def comments(w: World, gid: str) -> list[str]:
    return [
        s["text"]
        for s in w.asana.stories.values()
        if s.get("task") == gid and s.get("subtype") == "comment_added"
    ]


def test_one_email_and_one_comment_per_threshold_on_business_days(w: World):
    bill = w.acumatica.add_bill(
        "SUBCO",
        62000.00,
        discount_date=date(2026, 12, 18),
        discount_amount=1240.00,
        due_date=date(2027, 1, 2),
    )
    ref = bill["ReferenceNbr"]
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process("Bill", ref)
    gid = RecordLink.objects.get(acumatica_ref=ref).asana_task_gid
    w.asana.ui_update_task(gid, PM, assignee=PM)

    # Fri 4, (Mon 7 is a holiday), Tue 8: two business days — nothing yet.
    escalation.sweep(today=date(2026, 12, 8))
    assert mail.outbox == [] and not any("Approval stuck" in c for c in comments(w, gid))
    # Wed 9: three business days.
    escalation.sweep(today=date(2026, 12, 9))
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ap-lead@ridgeline.example"]
    assert f"Bill {ref}" in message.subject and "pending for 3 business days" in message.subject
    stuck = [c for c in comments(w, gid) if "Approval stuck" in c]
    assert len(stuck) == 1 and f"profile/{PM}" in stuck[0]  # mentions the approver
    # Again the same day and the next: the same threshold is not sent again.
    escalation.sweep(today=date(2026, 12, 9))
    escalation.sweep(today=date(2026, 12, 10))
    assert len(mail.outbox) == 1
    # Wed 16: the early-payment discount (1,240.00 by Fri 18) is 2 days away: a second threshold, once.
    escalation.sweep(today=date(2026, 12, 16))
    escalation.sweep(today=date(2026, 12, 17))
    assert len(mail.outbox) == 2
    assert "early-payment discount date 2026-12-18 is in 2 days" in mail.outbox[1].subject
    assert "1240" in mail.outbox[1].body
    rows = AuditEntry.objects.filter(operation="controls.escalation").order_by("pk")
    assert [r.payload["threshold"] for r in rows] == ["pending-3bd", "discount-2026-12-18"]
    assert rows[1].payload["discount_amount"].startswith("1240") and rows[1].record_link.acumatica_ref == ref
    assert len([c for c in comments(w, gid) if "Approval stuck" in c]) == 2
    # The approval moves: no more alerts, whatever the date.
    w.approve(gid, user=PM)
    w.asana.deliver_pending_events()
    escalation.sweep(today=date(2026, 12, 30))
    assert len(mail.outbox) == 2


def test_without_the_holiday_the_third_business_day_is_tuesday(w: World):
    w.bills_flow.options["controls"]["escalation"]["holidays"] = []
    w.bills_flow.save()
    bill = w.acumatica.add_bill("SUBCO", 500.00, due_date=date(2027, 1, 2))
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process(
        "Bill", bill["ReferenceNbr"]
    )
    escalation.sweep(today=date(2026, 12, 8))
    assert len(mail.outbox) == 1


def test_the_sweep_is_scheduled(db):
    assert any("controls:escalation hourly" in line for line in ensure_all())


def test_a_sweep_reads_the_projects_open_tasks_once_not_one_read_per_pending_approval(w: World):
    refs = []
    for amount in (12000.00, 15000.00, 18000.00):
        bill = w.acumatica.add_bill("SUBCO", amount, due_date=date(2027, 1, 2))
        ref = bill["ReferenceNbr"]
        DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process("Bill", ref)
        refs.append(ref)
    gids = [RecordLink.objects.get(acumatica_ref=ref).asana_task_gid for ref in refs]
    w.approve(gids[0], user=PM)  # approved (the flow's rule: the approval status field)
    w.asana.ui_update_task(gids[1], PM, completed=True)  # completed, yet not approved under that rule
    seen = len(w.asana.requests)

    escalation.sweep(today=date(2026, 12, 9))  # three business days for every one of them

    reads = [(r.method, r.path) for r in w.asana.requests[seen:] if r.method == "GET"]
    task_reads = [path for _m, path in reads if path.startswith("/tasks/") and path.count("/") == 2]
    assert [path for _m, path in reads if path == "/tasks"] == ["/tasks"], reads  # the open tasks, once
    # the completed task is not among the open ones: it alone is read by itself
    assert task_reads == [f"/tasks/{gids[1]}"], task_reads
    stuck = {gid: [c for c in comments(w, gid) if "Approval stuck" in c] for gid in gids}
    assert [len(stuck[g]) for g in gids] == [0, 1, 1]  # the two not approved, once each
    assert len(mail.outbox) == 2
