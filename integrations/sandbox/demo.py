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
                    {
                        "source_path": "ReferenceNbr",
                        "asana_field_gid": f["erp_reference"],
                        "cached_name": "ERP reference",
                        "cached_type": "text",
                    },
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
            {
                "name": "Purchase requests",
                "kind": "asana_purchase_requests",
                "asana_project_gid": d["pr_project"],
                "approval_rule": "completed",
            },
            {
                "name": "Employees",
                "kind": "acumatica_employees",
                "enabled": True,
                "poll_interval_minutes": 60,
            },
        ],
    }
