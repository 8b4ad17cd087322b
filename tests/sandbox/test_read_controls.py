"""The read-only controls the playground shows the sandboxes with: Acumatica's records as a person sees
them on the list screens, Asana's project as a board, and every webhook. Controls bypass faults, seats
and the contract, so reading the sandbox never costs the connector anything."""

from __future__ import annotations

import pytest

from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from sandbox.core import SimError

D = asana_sim.DEMO
F = D["fields"]


def test_list_records_shows_every_bill_as_stored_and_follows_a_persons_changes():
    acu = acu_sim.build_demo("http://127.0.0.1:8101/AcumaticaERP")
    bills = acu.control("list_records", entity="Bill")
    assert [(b["Type"], b["ReferenceNbr"]) for b in bills] == sorted(acu.records["Bill"])
    assert {b["Status"] for b in bills} >= {"Balanced", "On Hold", "Pending Approval"}
    entered = acu.control("person_enter_bill", vendor="SUMMITELEC", amount=99.5)
    acu.control("hold_seats", n=acu.seat_limit)  # no seat left: a control still answers
    acu.faults.add("status", status=500, times=5)
    again = {b["ReferenceNbr"]: b for b in acu.control("list_records", entity="Bill")}
    assert again[entered["ReferenceNbr"]]["Amount"] == 99.5
    assert len(acu.faults.pending) == 1 and acu.faults.pending[0].times == 5  # untouched
    assert {v["VendorID"] for v in acu.control("list_records", entity="Vendor")} >= {"SUMMITELEC"}
    with pytest.raises(SimError):
        acu.control("list_records", entity="NoSuchEntity")


def test_project_board_lists_sections_in_order_with_tasks_and_field_values_by_name():
    asana = asana_sim.build_demo()
    gid = asana.add_task(
        D["ap_project"],
        "Bill 000009 · SUMMITELEC · 7450",
        section=D["ap_sections"]["awaiting_approval"],
        custom_fields={F["amount"]: 7450.0, F["approval_status"]: D["options"]["approval_status"]["Pending"]},
    )
    board = asana.control("project_board", project=D["ap_project"])
    assert board["name"] == "AP Approvals"
    assert [s["gid"] for s in board["sections"]] == list(D["ap_sections"].values())
    awaiting = board["sections"][1]
    (card,) = awaiting["tasks"]
    assert card["gid"] == gid and card["fields"] == {"Amount": 7450.0, "Approval status": "Pending"}
    approval = next(f for f in board["fields"] if f["gid"] == F["approval_status"])
    assert [o["name"] for o in approval["options"]] == ["Pending", "Approved", "Rejected"]
    asana.control("person_move_task", gid=gid, project=D["ap_project"], section=D["ap_sections"]["approved"])
    moved = asana.control("project_board", project=D["ap_project"])
    assert [t["gid"] for t in moved["sections"][2]["tasks"]] == [gid] and not moved["sections"][1]["tasks"]
    with pytest.raises(SimError):
        asana.control("project_board", project="1299999999999999")


def test_list_webhooks_shows_each_webhook_until_it_is_deleted():
    asana = asana_sim.build_demo(allow_localhost=True)
    asana.deliver = lambda url, headers, body: (200, {"X-Hook-Secret": headers.get("X-Hook-Secret", "")}, b"")
    assert asana.control("list_webhooks") == []
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        asana.mount(rsps)
        import requests

        made = requests.post(
            f"{asana.base_url}/webhooks",
            json={
                "data": {"resource": D["ap_project"], "target": "https://connector.example/hooks/asana/1/"}
            },
            headers={"Authorization": f"Bearer {D['pat']}"},
            timeout=5,
        )
    assert made.status_code == 201, made.text
    (hook,) = asana.control("list_webhooks")
    assert hook["resource"] == D["ap_project"] and hook["target"].startswith("https://connector.example/")
    assert hook["queued_events"] == 0
    asana.control("delete_webhook_silently", gid=hook["gid"])
    assert asana.control("list_webhooks") == []
