"""The setup wizard's suites: both sandboxes mounted in-process (strict contract), an empty database."""

from __future__ import annotations

import pytest
import responses

from integrations.flows.documents.settings import forget_field_specs
from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim

ACU_URL = "https://erp.ridgeline.test/AcumaticaERP"
ASANA_URL = "https://app.asana.com/api/1.0"
D = asana_sim.DEMO
F = D["fields"]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# Signing in and out is how a read is allowed (OAuth token, cookie session): not a write to the ledger.
SIGN_IN_OUT = ("/identity/connect/token", "/entity/auth/login", "/entity/auth/logout")


@pytest.fixture(autouse=True)
def _fresh_spec_cache():
    forget_field_specs()
    yield
    forget_field_specs()


@pytest.fixture
def acu():
    return acu_sim.build_demo(ACU_URL, strict_contract=True)


@pytest.fixture
def asana():
    sim = asana_sim.build_demo(ASANA_URL, strict_contract=True)
    # A vendor list as an enum field on the AP project: the wizard matches Acumatica's vendors to it.
    sim.add_custom_field(
        "Vendor (list)",
        "enum",
        gid="1200000000000390",
        options=[
            ("1200000000000391", "ABC Concrete Supply", True),
            ("1200000000000392", "STEELWORKS", True),
            ("1200000000000393", "River Valley Lumber", True),
            ("1200000000000394", "Summit Electrical", True),
        ],
        projects=(D["ap_project"],),
    )
    return sim


@pytest.fixture
def mounted(acu, asana):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        acu.mount(rsps)
        asana.mount(rsps)
        yield rsps


def company_answers(**overrides):
    from integrations.setup.steps import CompanyAnswers

    fields = dict(
        name="Ridgeline Builders",
        slug="ridgeline",
        instance_url=ACU_URL,
        endpoint_version="",
        auth_mode="oauth_password",
        client_id=acu_sim.DEMO_CLIENT_ID,
        client_secret=acu_sim.DEMO_CLIENT_SECRET,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
        tenant_login_name="Ridgeline",
    )
    fields.update(overrides)
    return CompanyAnswers(**fields)


def writes(sim, since: int = 0) -> list[tuple[str, str, int]]:
    """Requests that could have changed the system's data (sign-in and sign-out excepted)."""
    return [
        (m, p, s)
        for m, p, s in sim.request_log[since:]
        if m in WRITES and not any(p.startswith(x) for x in SIGN_IN_OUT)
    ]


@pytest.fixture
def set_up(db, mounted):
    """Steps 1–3 done through the step functions: the tenant, both connections, the bills flow."""
    from integrations.setup import steps

    def run(vendor_field: str = F["vendor"]):
        tenant, verdicts = steps.save_company(None, company_answers())
        assert all(v.ok for v in verdicts), [v.sentence for v in verdicts]
        steps.save_asana(tenant, ASANA_URL, D["pat"], D["workspace"])
        steps.save_flow(
            tenant,
            "bills",
            D["ap_project"],
            D["ap_sections"]["awaiting_approval"],
            {
                "amount": F["amount"],
                "due_date": F["due_date"],
                "vendor": vendor_field,
                "reference": F["erp_reference"],
            },
        )
        steps.save_flow(tenant, "purchase_orders", "", "", {}, enabled=False)
        return tenant

    return run
