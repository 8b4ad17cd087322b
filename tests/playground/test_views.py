"""The playground's pages against served sandboxes: what they show is what the sandboxes hold and what
ml-connector recorded; each button changes the sandbox as the person would; faults are queued and bite
the vendor API; only users with a role on the demo tenant get in; and without SANDBOX_PLAYGROUND the
URLs do not exist."""

from __future__ import annotations

import json

import pytest
import requests

from audit.models import AuditEntry
from integrations.membership import TenantMembership
from integrations.models import Flow, RecordLink, Tenant
from sandbox import asana as asana_sim

D = asana_sim.DEMO
F = D["fields"]
URLS = ("/playground/", "/playground/state.json", "/playground/activity.json")


class Out:
    def write(self, text=""):
        pass

    success = warning = error = write


def _act(client, action, **params):
    return client.post(
        "/playground/act", data=json.dumps({"action": action, **params}), content_type="application/json"
    )


def _user(django_user_model, name, tenant=None, role=None):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-123456789", is_staff=True)
    if tenant is not None:
        TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.mark.django_db
def test_without_the_setting_the_playground_does_not_exist(admin_client, settings):
    from .conftest import reload_urls

    settings.SANDBOX_PLAYGROUND = False
    reload_urls()
    for url in (*URLS, "/playground/act"):
        assert admin_client.get(url).status_code == 404, url
    assert _act(admin_client, "fault", kind="clear").status_code == 404
    assert admin_client.get("/admin/").status_code == 200  # the console itself is there


def test_login_is_required(client, playground_on, served_demo):
    answer = client.get("/playground/")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    assert _act(client, "fault", kind="asana_429").status_code == 302
    assert served_demo["asana"].faults.pending == []


def test_the_page_is_marked_simulated_and_shows_the_sandboxes_and_what_the_connector_did(
    admin_client, playground_on, served_demo
):
    from integrations.cli.first_pass import first_pass

    tenant, acu = served_demo["tenant"], served_demo["acu"]
    page = admin_client.get("/playground/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "SIMULATED" in html and "Ridgeline Builders (demo)" in html and "Guided tour" in html

    first_pass(tenant, Out())  # the product's own first pass: the bills become tasks
    state = admin_client.get("/playground/state.json").json()
    assert state["errors"] == {}
    shown = {(b["type"], b["nbr"]): (b["vendor"], b["amount"], b["status"]) for b in state["bills"]}
    held = {k: (r["Vendor"], r["Amount"], r["Status"]) for k, r in acu.records["Bill"].items()}
    assert shown == held and len(shown) == 5
    assert {o["nbr"] for o in state["purchase_orders"]} == {k[1] for k in acu.records["PurchaseOrder"]}
    assert {v["id"] for v in state["vendors"]} >= {"SUMMITELEC", "ABCCONCRETE"}
    assert state["seats"]["limit"] >= 1
    ap = next(b for b in state["boards"] if b["gid"] == D["ap_project"])
    assert [s["name"] for s in ap["sections"]] == ["Inbox", "Awaiting approval", "Approved", "Rejected"]
    awaiting = next(s for s in ap["sections"] if s["name"] == "Awaiting approval")
    link = RecordLink.objects.get(tenant=tenant, acumatica_type="Bill", acumatica_ref="000001")
    card = next(t for t in awaiting["tasks"] if t["gid"] == link.asana_task_gid)
    assert card["fields"]["Amount"] == acu.records["Bill"][("Bill", "000001")]["Amount"]
    assert card["fields"]["ERP reference"] == "Bill/000001"
    assert {b["gid"] for b in state["boards"]} == {D["ap_project"], D["pr_project"]}

    activity = admin_client.get("/playground/activity.json").json()
    links = {(x["type"], x["nbr"]): x for x in activity["links"]}
    assert links[("Bill", "000001")]["task"] == link.asana_task_gid
    assert links[("Bill", "000001")]["lineage"] == f"/admin/integrations/recordlink/{link.pk}/lineage/"
    assert admin_client.get(links[("Bill", "000001")]["lineage"]).status_code == 200
    ops = {(e["operation"], e["status"]) for e in activity["entries"]}
    recorded = set(AuditEntry.objects.filter(tenant=tenant).values_list("operation", "status"))
    assert ops and ops <= recorded


def test_acting_as_people_changes_the_sandboxes(admin_client, playground_on, served_demo):
    from integrations.cli.first_pass import first_pass

    tenant, acu, asana = served_demo["tenant"], served_demo["acu"], served_demo["asana"]
    entered = _act(
        admin_client, "enter_bill", vendor="SUMMITELEC", amount="7450", description="Progress billing"
    )
    assert entered.status_code == 200, entered.content
    nbr = entered.json()["result"]["ReferenceNbr"]
    bill = acu.record("Bill", "Bill", nbr)
    assert (bill["Vendor"], bill["Amount"], bill["Description"]) == ("SUMMITELEC", 7450.0, "Progress billing")

    assert _act(admin_client, "edit_bill", type="Bill", nbr=nbr, amount="7500.5").status_code == 200
    assert acu.record("Bill", "Bill", nbr)["Amount"] == 7500.5
    refused = _act(admin_client, "enter_bill", vendor="NOSUCHVENDOR", amount="10")
    assert refused.status_code == 502 and "cannot be found" in refused.json()["error"]
    assert _act(admin_client, "enter_bill", vendor="SUMMITELEC", amount="-3").status_code == 400
    assert _act(admin_client, "delete_bill", type="Bill", nbr=nbr).status_code == 200
    assert acu.record("Bill", "Bill", nbr) is None

    first_pass(tenant, Out())
    gid = RecordLink.objects.get(tenant=tenant, acumatica_ref="000001").asana_task_gid
    approvals = Flow.objects.get(tenant=tenant, kind=Flow.Kind.ASANA_APPROVALS)
    assert approvals.approval_rule == Flow.ApprovalRule.ENUM_OPTION
    assert _act(admin_client, "approve_task", gid=gid).status_code == 200
    assert asana.task_values(gid)[F["approval_status"]] == D["options"]["approval_status"]["Approved"]
    assert _act(admin_client, "reject_task", gid=gid).status_code == 200
    assert asana.task_values(gid)[F["approval_status"]] == D["options"]["approval_status"]["Rejected"]
    assert _act(admin_client, "rename_task", gid=gid, name="Renamed by a person").status_code == 200
    assert asana.tasks[gid]["name"] == "Renamed by a person"
    inbox = D["ap_sections"]["inbox"]
    moved = _act(admin_client, "move_task", gid=gid, project=D["ap_project"], section=inbox)
    assert moved.status_code == 200, moved.content
    assert asana.tasks[gid]["sections"][D["ap_project"]] == D["ap_sections"]["inbox"]
    # A purchase request is approved the way its own flow reads it: by completing the task.
    request = asana.add_task(D["pr_project"], "Rebar ties", section=D["pr_sections"]["new"])
    assert _act(admin_client, "approve_task", gid=request, project=D["pr_project"]).status_code == 200
    assert asana.tasks[request]["completed"] is True
    assert F["approval_status"] not in asana.task_values(request)
    elsewhere = _act(admin_client, "move_task", gid=gid, project="1299999999999999", section="1")
    assert elsewhere.status_code == 400
    assert _act(admin_client, "no_such_action").status_code == 400


def test_deleting_the_webhook_deletes_it_in_asana(admin_client, playground_on, served_demo):
    asana = served_demo["asana"]
    # A webhook made through the vendor API; the receiver's handshake is answered here.
    asana.deliver = lambda url, headers, body: (200, {"X-Hook-Secret": headers.get("X-Hook-Secret", "")}, b"")
    made = requests.post(
        f"{asana.base_url}/webhooks",
        json={"data": {"resource": D["ap_project"], "target": "http://127.0.0.1:9/hooks/asana/x/"}},
        headers={"Authorization": f"Bearer {D['pat']}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    gid = made.json()["data"]["gid"]
    listed = admin_client.get("/playground/state.json").json()["webhooks"]
    assert [w["gid"] for w in listed] == [gid] and listed[0]["resource"] == D["ap_project"]
    assert _act(admin_client, "delete_webhook", gid=gid).status_code == 200
    assert gid not in asana.webhooks
    assert _act(admin_client, "delete_webhook", gid=gid).status_code == 400


def test_faults_are_queued_and_bite_the_vendor_api(admin_client, playground_on, served_demo):
    acu, asana = served_demo["acu"], served_demo["asana"]
    assert _act(admin_client, "fault", kind="asana_429").status_code == 200
    bearer = {"Authorization": f"Bearer {D['pat']}"}
    answer = requests.get(f"{asana.base_url}/users/me", headers=bearer, timeout=10)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "2"
    assert _act(admin_client, "fault", kind="lost_answer").status_code == 200
    lost = asana.faults.pending[-1]
    assert (lost.kind, lost.method, lost.path) == ("drop_after_write", "POST", "^/tasks$")
    assert _act(admin_client, "fault", kind="acumatica_429").status_code == 200
    assert acu.faults.pending[0].status == 429

    assert _act(admin_client, "fault", kind="seats").status_code == 200
    seats = acu.control("seats")
    assert seats["in_use"] >= seats["limit"]
    acu.faults.clear()
    from sandbox.acumatica.seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER

    token = requests.post(
        f"{acu.base_url}/identity/connect/token",
        data={
            "grant_type": "password",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "username": DEMO_USER,
            "password": DEMO_PASSWORD,
            "scope": "api",
        },
        timeout=10,
    )
    assert token.status_code != 200 and "API Login Limit" in token.text  # no seat for a new sign-in

    cleared = _act(admin_client, "fault", kind="clear")
    assert cleared.status_code == 200
    assert asana.faults.pending == [] and acu.faults.pending == []
    assert acu.control("seats")["other_integrations"] == 0
    assert _act(admin_client, "fault", kind="meteor").status_code == 400


def test_only_users_with_a_role_on_the_demo_tenant_get_in(
    client, django_user_model, playground_on, served_demo
):
    tenant = served_demo["tenant"]
    other = Tenant.objects.create(slug="other", name="Other Co")
    for owner, key in ((other, "OTHER-SECRET"), (tenant, "DEMO-1")):
        AuditEntry.objects.create(tenant=owner, operation="task.create", status="succeeded", record_key=key)

    stranger = _user(django_user_model, "stranger", other, "administer")
    client.force_login(stranger)
    for url in URLS:
        assert client.get(url).status_code == 404, url
    assert _act(client, "fault", kind="asana_429").status_code == 404
    nobody = _user(django_user_model, "nobody")
    client.force_login(nobody)
    assert client.get("/playground/").status_code == 404

    viewer = _user(django_user_model, "viewer", tenant, "view")
    client.force_login(viewer)
    page = client.get("/playground/")
    assert page.status_code == 200 and 'id="enter-bill"' not in page.content.decode()
    keys = {e["record_key"] for e in client.get("/playground/activity.json").json()["entries"]}
    assert "DEMO-1" in keys and "OTHER-SECRET" not in keys
    assert _act(client, "fault", kind="asana_429").status_code == 403
    assert served_demo["asana"].faults.pending == []

    operator = _user(django_user_model, "operator", tenant, "operate")
    client.force_login(operator)
    assert 'id="enter-bill"' in client.get("/playground/").content.decode()
    assert _act(client, "fault", kind="asana_429").status_code == 200
    assert len(served_demo["asana"].faults.pending) == 1


def test_a_tenant_pointed_at_a_real_system_has_no_sandbox_to_act_on(admin_client, playground_on, served_demo):
    from integrations.models import AcumaticaConnection

    AcumaticaConnection.objects.filter(tenant=served_demo["tenant"]).update(
        instance_url="https://ridgeline.acumatica.example/AcumaticaERP"
    )
    state = admin_client.get("/playground/state.json").json()
    assert "no sandbox connection" in state["errors"]["acumatica"] and state["bills"] == []
    answer = _act(admin_client, "enter_bill", vendor="SUMMITELEC", amount="10")
    assert answer.status_code == 502
    assert len(served_demo["acu"].records["Bill"]) == 5
