"""The finance controls in the tenant JSON: `config apply` validates them (a clear error naming the field,
nothing written) and `config export` carries them."""

import json

import pytest
from django.core.management import CommandError, call_command

from integrations.models import Flow
from tests.foundation.test_config_io import secrets_env, snapshot, tenant_doc, write  # noqa: F401

PM, CONTROLLER = "1200000000000400", "1200000000000401"

CONTROLS = {
    "segregation_of_duties": {"enabled": True, "allowed_approvers": [PM, CONTROLLER]},
    "tiers": {
        "enabled": True,
        "tiers": [
            {"name": "small", "above": 0, "up_to": 5000, "levels": [{"name": "PM", "approvers": [PM]}]},
            {
                "name": "large",
                "above": 50000,
                "levels": [
                    {"name": "PM", "approvers": [PM]},
                    {"name": "Controller", "approvers": [CONTROLLER]},
                ],
            },
        ],
    },
    "duplicates": {"enabled": True, "window_days": 45},
    "escalation": {"enabled": True, "recipients": ["ap@acme.example"], "holidays": ["2026-12-25"]},
}


def doc_with(controls):
    doc = tenant_doc()
    doc["flows"][0]["options"] = {"controls": controls}
    doc["user_mappings"].append({"email": "controller@acme.example", "asana_user_gid": CONTROLLER})
    return doc


@pytest.mark.django_db
def test_controls_apply_and_export(tmp_path, secrets_env, capsys):  # noqa: F811
    call_command("connector", "config", "apply", str(write(tmp_path, doc_with(CONTROLS))))
    assert Flow.objects.get(name="AP bills").options["controls"] == CONTROLS
    capsys.readouterr()
    call_command("connector", "config", "export", "--tenant", "acme")
    exported = json.loads(capsys.readouterr().out)
    assert exported["flows"][0]["options"]["controls"] == CONTROLS


BAD = [
    (
        "unknown-user",
        {"segregation_of_duties": {"enabled": True, "allowed_approvers": ["1200000000009999"]}},
        "flows[0].options.controls.segregation_of_duties.allowed_approvers[0]: "
        "unknown Asana user 1200000000009999",
    ),
    (
        "overlapping-tiers",
        {
            "tiers": {
                "enabled": True,
                "tiers": [
                    {"name": "a", "above": 0, "up_to": 10000, "levels": [{"name": "PM", "approvers": [PM]}]},
                    {"name": "b", "above": 5000, "levels": [{"name": "C", "approvers": [CONTROLLER]}]},
                ],
            }
        },
        "flows[0].options.controls.tiers.tiers[1]: overlaps controls.tiers.tiers[0]",
    ),
    (
        "tier-without-approver",
        {"tiers": {"enabled": True, "tiers": [{"name": "a", "levels": [{"name": "PM"}]}]}},
        "flows[0].options.controls.tiers.tiers[0].levels[0]: no approver",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("case,controls,message", BAD, ids=[b[0] for b in BAD])
def test_bad_controls_name_the_field_and_write_nothing(
    tmp_path,
    secrets_env,  # noqa: F811
    capsys,
    case,
    controls,
    message,
):  # noqa: F811
    before = snapshot()
    with pytest.raises(CommandError):
        call_command("connector", "config", "apply", str(write(tmp_path, doc_with(controls))))
    err = capsys.readouterr().err
    assert message in err and "Nothing was written" in err
    assert snapshot() == before


@pytest.mark.django_db
def test_a_purchase_request_flow_takes_segregation_of_duties_only(tmp_path, secrets_env, capsys):  # noqa: F811
    doc = doc_with({"segregation_of_duties": CONTROLS["segregation_of_duties"], "tiers": CONTROLS["tiers"]})
    doc["flows"][0]["kind"] = "asana_purchase_requests"
    before = snapshot()
    with pytest.raises(CommandError):
        call_command("connector", "config", "apply", str(write(tmp_path, doc)))
    err = capsys.readouterr().err
    assert (
        "flows[0].options.controls.tiers: a purchase-request flow applies segregation of duties only" in err
    )
    assert snapshot() == before
    doc["flows"][0]["options"]["controls"].pop("tiers")
    call_command("connector", "config", "apply", str(write(tmp_path, doc)))
    flow = Flow.objects.get(name="AP bills")
    assert flow.kind == "asana_purchase_requests"
    assert flow.options["controls"] == {"segregation_of_duties": CONTROLS["segregation_of_duties"]}
