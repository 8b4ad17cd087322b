"""`connector setup`: the same steps from a JSON answers file, non-interactive, against the sandboxes."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.models import Flow, SetupProgress, Tenant
from mappings.models import ValueMapping
from sandbox import acumatica as acu_sim

from ..flows.inbound.harness import django_deliverer
from .conftest import ACU_URL, ASANA_URL, D, writes


def answers(tmp_path, **extra) -> str:
    doc = {
        "company": {
            "name": "Ridgeline Builders",
            "slug": "ridgeline",
            "instance_url": ACU_URL,
            "client_id": acu_sim.DEMO_CLIENT_ID,
            "client_secret": {"env": "RIDGELINE_CLIENT_SECRET"},
            "username": acu_sim.DEMO_USER,
            "password": {"env": "RIDGELINE_PASSWORD"},
            "tenant_login_name": "Ridgeline",
        },
        "asana": {
            "api_base_url": ASANA_URL,
            "token": {"env": "RIDGELINE_ASANA_TOKEN"},
            "workspace": "ML Demo Workspace",
        },
        "flows": {
            "bills": {
                "project": "AP Approvals",
                "section": "Awaiting approval",
                "fields": {"vendor": "Vendor (list)"},
                "vendors": {"HEAVYRENT": ""},
            },
            "purchase_orders": None,
        },
        **extra,
    }
    path = tmp_path / "ridgeline.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("RIDGELINE_CLIENT_SECRET", acu_sim.DEMO_CLIENT_SECRET)
    monkeypatch.setenv("RIDGELINE_PASSWORD", acu_sim.DEMO_PASSWORD)
    monkeypatch.setenv("RIDGELINE_ASANA_TOKEN", D["pat"])


def test_setup_from_an_answers_file_stops_before_the_switch(
    db, mounted, acu, asana, tmp_path, capsys, secrets_env
):
    report_path = tmp_path / "fit.json"
    call_command(
        "connector", "setup", "--answers", answers(tmp_path), "--report-out", str(report_path), "--no-input"
    )

    printed = capsys.readouterr().out
    assert "Verified — authentication" in printed and "the token acts as ML Connector Bot" in printed
    assert (
        "AP bills: vendor → Vendor (list)" in printed
        and "vendor ABCCONCRETE → ABC Concrete Supply" in printed
    )
    assert "Bill/000001" in printed and "SM302000 → address" in printed and "flows stay off" in printed
    tenant = Tenant.objects.get(slug="ridgeline")
    assert f"X-ML-Connector-Secret: {tenant.acumatica.push_secret}  (shown this once)" in printed
    tenant = Tenant.objects.get(slug="ridgeline")
    assert SetupProgress.objects.get(tenant=tenant).step == 5
    assert not Flow.objects.filter(tenant=tenant, enabled=True).exists()
    assert json.loads(report_path.read_text())["flows"][0]["flow"] == "AP bills"
    assert "HEAVYRENT" not in set(ValueMapping.objects.values_list("source_value", flat=True))
    assert not writes(acu) and not writes(asana)  # nothing written anywhere before the switch


def test_setup_switch_on_registers_the_webhook(db, mounted, asana, tmp_path, client, settings, secrets_env):
    settings.PUBLIC_BASE_URL, settings.ALLOWED_HOSTS = "https://connector.ridgeline.test", ["*"]
    asana.deliver = django_deliverer(client)
    call_command("connector", "setup", "--answers", answers(tmp_path, switch_on=True), "--no-input")
    assert set(Flow.objects.values_list("enabled", flat=True)) == {True}
    assert len(asana.webhooks) == 1


def test_missing_answers_are_listed_and_nothing_is_done(db, mounted, capsys):
    with pytest.raises(
        CommandError, match=r"missing answers: company.name, company.instance_url, asana.token"
    ):
        call_command("connector", "setup", "--slug", "acme", "--no-input")
    assert not Tenant.objects.exists()


def test_a_refused_password_stops_at_step_one(db, mounted, tmp_path, capsys, secrets_env, monkeypatch):
    monkeypatch.setenv("RIDGELINE_PASSWORD", "wrong")
    with pytest.raises(CommandError):
        call_command("connector", "setup", "--answers", answers(tmp_path), "--no-input")
    err = capsys.readouterr().err
    assert "Not verified — authentication" in err and "What to do" in err
    assert SetupProgress.objects.get(tenant__slug="ridgeline").step == 1
