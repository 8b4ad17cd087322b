"""The demo installation `make run` starts: sandbox ports, the sandboxes' seed data, and a demo tenant
wired to them. The credentials below belong to the sandboxes only; they open nothing real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import acumatica as acu_sim
from . import asana as asana_sim

HOST = "127.0.0.1"
ACUMATICA_PORT = 8101
ASANA_PORT = 8102
SAGE_PORT = 8103
TENANT_SLUG = "demo"
SAGE_API_KEY = "sandbox-sage-agent-api-key-0001"
SAGE_HMAC_SECRET = "sandbox-sage-agent-hmac-secret-0000000000001"
PUSH_SECRET = "sandbox-acumatica-push-secret-0001"


def acumatica_url(host: str = HOST, port: int = ACUMATICA_PORT) -> str:
    return f"http://{host}:{port}/AcumaticaERP"


def asana_url(host: str = HOST, port: int = ASANA_PORT) -> str:
    return f"http://{host}:{port}/api/1.0"


def sage_url(host: str = HOST, port: int = SAGE_PORT) -> str:
    return f"http://{host}:{port}"


def sage_agent_config(state_dir: Path, port: int = SAGE_PORT) -> dict[str, Any]:
    return {
        "agent": {
            "backend": "simulated",
            "ledger_path": str(state_dir / "sage-ledger.sqlite3"),
            "company": "ABC",
        },
        "server": {"host": HOST, "port": port, "allow_plain_http": True},
        "simulated": {"state_path": str(state_dir / "sage-sim.sqlite3"), "seed_demo": True},
        "auth": {
            "clients": [{"name": "connector", "api_key": SAGE_API_KEY, "hmac_secret": SAGE_HMAC_SECRET}]
        },
    }


def tenant_document() -> dict[str, Any]:
    """The demo tenant as a `connector config apply` document."""
    d = asana_sim.DEMO
    f = d["fields"]
    return {
        "tenant": {"slug": TENANT_SLUG, "name": "Ridgeline Builders (demo)", "active": True},
        "acumatica": {
            "instance_url": acumatica_url(),
            "endpoint_name": "Default",
            "endpoint_version": "24.200.001",
            "auth_mode": "oauth_password",
            "client_id": acu_sim.DEMO_CLIENT_ID,
            "client_secret": acu_sim.DEMO_CLIENT_SECRET,
            "username": acu_sim.DEMO_USER,
            "password": acu_sim.DEMO_PASSWORD,
            "tenant_login_name": "Ridgeline",
            "push_header_name": "X-ML-Connector-Secret",
            "push_secret": PUSH_SECRET,
            "uses_approval_maps": True,
        },
        "asana": {
            "api_base_url": asana_url(),
            "auth_mode": "pat",
            "personal_access_token": d["pat"],
            "workspace_gid": d["workspace"],
            "connector_user_gid": d["connector_user"],
            "requests_per_minute": 1500,
            "max_writes_in_flight": 10,
        },
        "sage100": {
            "agent_url": sage_url(),
            "api_key": SAGE_API_KEY,
            "signing_secret": SAGE_HMAC_SECRET,
            "company_code": "ABC",
            "default_ap_division": "00",
            "sage_user": "connector",
        },
        "value_mappings": purchase_request_value_mappings(),
        "flows": [
            {
                "name": "AP bills",
                "kind": "acumatica_bills",
                "asana_project_gid": d["ap_project"],
                "asana_section_gid": d["ap_sections"]["awaiting_approval"],
                "erp_reference_field_gid": f["erp_reference"],
                "status_filter": ["Balanced", "On Hold", "Pending Approval"],
                "task_name_template": "Bill {ReferenceNbr} · {Vendor} · {Amount}",
                "field_mappings": [
                    {
                        "source_path": "Amount",
                        "asana_field_gid": f["amount"],
                        "cached_name": "Amount",
                        "cached_type": "number",
                        "precision": 2,
                    },
                    {
                        "source_path": "DueDate",
                        "asana_field_gid": f["due_date"],
                        "cached_name": "Due date",
                        "cached_type": "date",
                    },
                    {
                        "source_path": "Vendor",
                        "asana_field_gid": f["vendor"],
                        "cached_name": "Vendor",
                        "cached_type": "text",
                    },
                    # "ERP reference" is not mapped: it is the flow's natural key (erp_reference_field_gid),
                    # which the connector fills with Type/Number, e.g. Bill/000123.
                ],
            },
            {
                "name": "Bill approvals",
                "kind": "asana_approvals",
                "asana_project_gid": d["ap_project"],
                "approval_rule": "enum_option",
                "approval_field_gid": f["approval_status"],
                "approval_option_gid": d["options"]["approval_status"]["Approved"],
            },
            purchase_requests_flow(),
            {
                "name": "Sage PO status",
                "kind": "sage100_po_status",
                "asana_project_gid": d["pr_project"],
                "poll_interval_minutes": 2,
                "options": {"overlap_seconds": 300, "reconcile_hours": 24},
            },
            {
                "name": "Employees",
                "kind": "acumatica_employees",
                "enabled": True,
                "poll_interval_minutes": 60,
            },
        ],
    }


# ---- Purchase requests → Sage 100 (issue 6): mappings matching the agent's seed_demo() company -------
DEMO_PR_TASK_NAME = "Ready-mix concrete for the north footings"


def purchase_requests_flow() -> dict[str, Any]:
    """Vendor (text) + Cost code (enum) + Amount → a Sage PO; PO number, vendor name, status back."""
    d = asana_sim.DEMO
    f, status = d["fields"], d["options"]["sage_status"]

    def to_erp(path: str, key: str, type_: str, name: str) -> dict[str, Any]:
        return {
            "source_path": path,
            "asana_field_gid": f[key],
            "cached_name": name,
            "cached_type": type_,
            "direction": "to_erp",
        }

    def to_asana(path: str, key: str, type_: str, name: str, values=()) -> dict[str, Any]:
        return {
            "source_path": path,
            "asana_field_gid": f[key],
            "cached_name": name,
            "cached_type": type_,
            "direction": "to_asana",
            "value_mappings": [
                {"kind": "enum_option", "source_value": s, "target_value": t} for s, t in values
            ],
        }

    created, error = status["PO created"], status["Error"]
    return {
        "name": "Purchase requests",
        "kind": "asana_purchase_requests",
        "asana_project_gid": d["pr_project"],
        "approval_rule": "completed",
        "options": {"item_code": "/MISC", "gl_account_mask": "####-##-##"},
        "field_mappings": [
            to_erp("VendorNo", "vendor", "text", "Vendor"),
            to_erp("CostCode", "cost_code", "enum", "Cost code"),
            to_erp("Amount", "amount", "number", "Amount"),
            to_asana("PurchaseOrderNo", "po_number", "text", "PO number"),
            to_asana("VendorName", "vendor", "text", "Vendor"),
            to_asana(
                "OrderStatus",
                "sage_status",
                "enum",
                "Sage status",
                [(code, created) for code in ("N", "O", "B", "C", "X")]
                + [("REFUSED", error), ("DELETED", error)],
            ),
        ],
    }


def purchase_request_value_mappings() -> list[dict[str, Any]]:
    """Vendor names as requesters type them → Sage vendors; cost-code options → GL accounts (seed_demo)."""
    cost = asana_sim.DEMO["options"]["cost_code"]
    vendors = [
        ("ABC Concrete", "00-0000001"),
        ("ABC Concrete Supply", "00-0000001"),
        ("Ridgeline Lumber", "00-0000002"),
        ("Ridgeline Lumber & Truss", "00-0000002"),
        ("Metro Equipment Rental", "00-0000150"),
        ("SteelCo", "00-STEELCO"),
        ("SteelCo Rebar Fabricators", "00-STEELCO"),
    ]
    codes = [("5000 Materials", "5000-01-00"), ("6000 Services", "6000-00-00"), ("7000 Travel", "6100-00-00")]
    return [{"kind": "vendor", "source_value": s, "target_value": t} for s, t in vendors] + [
        {"kind": "cost_code", "source_value": cost[name], "target_value": t, "note": name}
        for name, t in codes
    ]


def seed_purchase_request(asana: Any) -> str:
    """One approved purchase request in the demo Asana: `make run` turns it into a Sage PO."""
    d = asana_sim.DEMO
    f = d["fields"]
    gid = asana.add_task(
        d["pr_project"],
        DEMO_PR_TASK_NAME,
        section=d["pr_sections"]["approved"],
        custom_fields={
            f["vendor"]: "ABC Concrete",
            f["amount"]: 1850.0,
            f["cost_code"]: d["options"]["cost_code"]["5000 Materials"],
        },
        user=d["users"]["bob"],
    )
    asana.ui_update_task(gid, d["users"]["alice"], completed=True)
    return gid


def connect_sandboxes(
    tenant: Any,
    acumatica_url: str,
    asana_url: str,
    *,
    acumatica: dict[str, Any] | None = None,
    asana: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """The tenant's Acumatica and Asana connections, signed in with the sandboxes' own credentials.

    For suites and benchmarks that build their own tenant against sandboxes they serve; `acumatica` and
    `asana` add or override connection fields (push secret, rate budget, …).
    """
    from integrations.models import AcumaticaConnection, AsanaConnection

    acu_conn = AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url=acumatica_url,
        client_id=acu_sim.DEMO_CLIENT_ID,
        client_secret=acu_sim.DEMO_CLIENT_SECRET,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
        **(acumatica or {}),
    )
    d = asana_sim.DEMO
    asana_conn = AsanaConnection.objects.create(
        tenant=tenant,
        api_base_url=asana_url,
        personal_access_token=d["pat"],
        workspace_gid=d["workspace"],
        **(asana or {}),
    )
    return acu_conn, asana_conn
