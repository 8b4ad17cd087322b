"""The demo tenant's Asana: fixed GIDs a demo config can reference, and `build_demo()`."""

from __future__ import annotations

from typing import Any

from .simulator import AsanaSimulator

# ---- the demo tenant's Asana: fixed GIDs a demo config can reference ---------------------------------
DEMO = {
    "workspace": "1200000000000001",
    "connector_user": "1200000000000002",
    "users": {
        "alice": "1200000000000003",
        "bob": "1200000000000004",
        "carol": "1200000000000005",
        "gina_guest": "1200000000000006",
    },
    "team_finance": "1200000000000010",
    "pat": "sandbox-asana-pat-ml-connector-0001",
    "oauth_client_id": "1200000000000099",
    "oauth_client_secret": "sandbox-asana-oauth-client-secret",
    "ap_project": "1200000000000100",
    "ap_sections": {
        "inbox": "1200000000000101",
        "awaiting_approval": "1200000000000102",
        "approved": "1200000000000103",
        "rejected": "1200000000000104",
    },
    "pr_project": "1200000000000200",
    "pr_sections": {"new": "1200000000000201", "approved": "1200000000000202", "ordered": "1200000000000203"},
    "fields": {
        "amount": "1200000000000300",
        "due_date": "1200000000000301",
        "vendor": "1200000000000302",
        "erp_reference": "1200000000000303",
        "approval_status": "1200000000000304",
        "document_status": "1200000000000305",
        "cost_code": "1200000000000306",
        "po_number": "1200000000000307",
        "sage_status": "1200000000000308",
    },
    "options": {
        "approval_status": {
            "Pending": "1200000000000310",
            "Approved": "1200000000000311",
            "Rejected": "1200000000000312",
        },
        "document_status": {
            "Balanced": "1200000000000320",
            "Open": "1200000000000321",
            "Closed": "1200000000000322",
            "On Hold": "1200000000000323",
        },
        "cost_code": {
            "5000 Materials": "1200000000000330",
            "6000 Services": "1200000000000331",
            "7000 Travel": "1200000000000332",
            "9999 Retired": "1200000000000333",
        },
        "sage_status": {
            "Not sent": "1200000000000340",
            "PO created": "1200000000000341",
            "Error": "1200000000000342",
        },
    },
}
# Options seeded disabled, to exercise "disabled options are refused".
DEMO_DISABLED_OPTIONS = ("1200000000000323", "1200000000000333")


def build_demo(base_url: str = "https://app.asana.com/api/1.0", **kwargs: Any) -> AsanaSimulator:
    """An Asana with the demo tenant's workspace, people, projects, sections and custom fields."""
    sim = AsanaSimulator(base_url, **kwargs)
    d = DEMO
    ws = sim.add_workspace("ML Demo Workspace", gid=d["workspace"], email_domains=("demo.example",))
    bot = sim.add_user(
        "ML Connector Bot", "connector@demo.example", workspace=ws, gid=d["connector_user"], is_admin=True
    )
    u = d["users"]
    sim.add_user("Alice Approver", "alice@demo.example", workspace=ws, gid=u["alice"], is_admin=True)
    sim.add_user("Bob Buyer", "bob@demo.example", workspace=ws, gid=u["bob"])
    sim.add_user("Carol Controller", "carol@demo.example", workspace=ws, gid=u["carol"])
    sim.add_user("Gina Guest", "gina@partner.example", workspace=ws, gid=u["gina_guest"], is_guest=True)
    sim.add_team(ws, "Finance", (bot, u["alice"], u["carol"]), gid=d["team_finance"])
    sim.add_pat(bot, d["pat"])
    sim.default_person = u["alice"]  # who the person_* controls act as when no user is named
    sim.add_oauth_client(d["oauth_client_id"], d["oauth_client_secret"])
    ap = sim.add_project(ws, "AP Approvals", gid=d["ap_project"])
    for key, name in (
        ("inbox", "Inbox"),
        ("awaiting_approval", "Awaiting approval"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
    ):
        sim.add_section(ap, name, gid=d["ap_sections"][key])
    pr = sim.add_project(ws, "Purchase Requests", gid=d["pr_project"])
    for key, name in (("new", "New requests"), ("approved", "Approved"), ("ordered", "Ordered")):
        sim.add_section(pr, name, gid=d["pr_sections"][key])
    f, o = d["fields"], d["options"]

    def opts(key: str) -> list[tuple[str, str, bool]]:
        return [(gid, name, gid not in DEMO_DISABLED_OPTIONS) for name, gid in o[key].items()]

    sim.add_custom_field("Amount", "number", gid=f["amount"], precision=2, projects=(ap, pr))
    sim.add_custom_field("Due date", "date", gid=f["due_date"], projects=(ap, pr))
    sim.add_custom_field("Vendor", "text", gid=f["vendor"], projects=(ap, pr))
    sim.add_custom_field("ERP reference", "text", gid=f["erp_reference"], projects=(ap, pr))
    sim.add_custom_field(
        "Approval status",
        "enum",
        gid=f["approval_status"],
        options=opts("approval_status"),
        projects=(ap, pr),
    )
    sim.add_custom_field(
        "Document status", "enum", gid=f["document_status"], options=opts("document_status"), projects=(ap,)
    )
    sim.add_custom_field(
        "Cost code", "enum", gid=f["cost_code"], options=opts("cost_code"), projects=(ap, pr)
    )
    sim.add_custom_field("PO number", "text", gid=f["po_number"], projects=(pr,))
    sim.add_custom_field(
        "Sage status", "enum", gid=f["sage_status"], options=opts("sage_status"), projects=(pr,)
    )
    return sim
