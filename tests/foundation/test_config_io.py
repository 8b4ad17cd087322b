"""`connector config apply/export`: round trip, secrets as env references, bad files write nothing."""

import json

import pytest
from django.core.management import CommandError, call_command

from integrations.models import AcumaticaConnection, AsanaConnection, Flow, Tenant
from mappings.models import FieldMapping, UserMapping, ValueMapping


def tenant_doc(**overrides):
    doc = {
        "tenant": {"slug": "acme", "name": "Acme Construction", "active": True},
        "acumatica": {
            "instance_url": "https://acme.acumatica.com/AcumaticaERP",
            "endpoint_name": "Default",
            "endpoint_version": "24.200.001",
            "auth_mode": "oauth_password",
            "client_id": "4D2B1A7C-0000-0000-0000-000000000000@Acme",
            "client_secret": {"env": "ACME_ACU_CLIENT_SECRET"},
            "username": "ml-connector",
            "password": {"env": "ACME_ACU_PASSWORD"},
            "push_secret": "literal-push-secret-123",
        },
        "asana": {
            "auth_mode": "pat",
            "personal_access_token": {"env": "ACME_ASANA_PAT"},
            "workspace_gid": "1200000000000001",
            "connector_user_gid": "1200000000000002",
        },
        "flows": [
            {
                "name": "AP bills",
                "kind": "acumatica_bills",
                "asana_project_gid": "1200000000000100",
                "status_filter": ["Balanced", "Pending Approval"],
                "field_mappings": [
                    {
                        "source_path": "Amount",
                        "asana_field_gid": "1200000000000201",
                        "cached_name": "Amount",
                        "cached_type": "number",
                        "precision": 2,
                    },
                    {
                        "source_path": "Status",
                        "asana_field_gid": "1200000000000202",
                        "cached_type": "enum",
                        "value_mappings": [
                            {
                                "kind": "enum_option",
                                "source_value": "Open",
                                "target_value": "1200000000000301",
                            }
                        ],
                    },
                ],
            }
        ],
        "value_mappings": [{"kind": "vendor", "source_value": "V000123", "target_value": "0000123"}],
        "user_mappings": [{"email": "PM@Acme.example", "asana_user_gid": "1200000000000400"}],
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("ACME_ACU_CLIENT_SECRET", "client-secret-from-env")
    monkeypatch.setenv("ACME_ACU_PASSWORD", "password-from-env")
    monkeypatch.setenv("ACME_ASANA_PAT", "2/123/456:pat-from-env")


def write(tmp_path, doc, name="tenant.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def snapshot():
    return (
        Tenant.objects.count(),
        AcumaticaConnection.objects.count(),
        AsanaConnection.objects.count(),
        Flow.objects.count(),
        FieldMapping.objects.count(),
        ValueMapping.objects.count(),
        UserMapping.objects.count(),
    )


@pytest.mark.django_db
def test_apply_then_export_round_trips(tmp_path, secrets_env, capsys):
    path = write(tmp_path, tenant_doc())
    call_command("connector", "config", "apply", str(path))
    acu = AcumaticaConnection.objects.get(tenant__slug="acme")
    assert acu.password == "password-from-env"
    assert acu.push_secret == "literal-push-secret-123"
    assert UserMapping.objects.get().email == "pm@acme.example"
    assert (
        FieldMapping.objects.get(source_path="Status").value_mappings.get().target_value == "1200000000000301"
    )

    out = tmp_path / "export.json"
    call_command("connector", "config", "export", "--tenant", "acme", "-o", str(out))
    exported = json.loads(out.read_text())
    text = out.read_text()
    for plain in ("password-from-env", "client-secret-from-env", "pat-from-env", "literal-push-secret-123"):
        assert plain not in text
    assert exported["acumatica"]["password"] == {"env": "ML_ACME_ACUMATICA_PASSWORD"}
    assert exported["flows"][0]["field_mappings"][0]["source_path"] == "Amount"

    # Applying the export elsewhere (a fresh database) with the env set reproduces the tenant.
    before = export_without_ids()
    Tenant.objects.all().delete()
    for name in ("PASSWORD", "CLIENT_SECRET", "PUSH_SECRET"):
        import os

        os.environ[f"ML_ACME_ACUMATICA_{name}"] = {
            "PASSWORD": "password-from-env",
            "CLIENT_SECRET": "client-secret-from-env",
            "PUSH_SECRET": "literal-push-secret-123",
        }[name]
    os.environ["ML_ACME_ASANA_PERSONAL_ACCESS_TOKEN"] = "2/123/456:pat-from-env"
    try:
        call_command("connector", "config", "apply", str(out))
    finally:
        for key in [k for k in os.environ if k.startswith("ML_ACME_")]:
            del os.environ[key]
    assert export_without_ids() == before
    assert AcumaticaConnection.objects.get().password == "password-from-env"


def export_without_ids():
    from integrations.config_io import export_tenant

    return export_tenant("acme")


@pytest.mark.django_db
def test_reapply_is_idempotent_and_unset_env_keeps_stored_secret(tmp_path, secrets_env, monkeypatch):
    path = write(tmp_path, tenant_doc())
    call_command("connector", "config", "apply", str(path))
    counts = snapshot()
    monkeypatch.delenv("ACME_ACU_PASSWORD")
    call_command("connector", "config", "apply", str(path))
    assert snapshot() == counts
    assert AcumaticaConnection.objects.get().password == "password-from-env"


BAD_CASES = [
    ("malformed", '{"tenant": {"slug": "acme",', "line 1 column", "malformed JSON"),
    ("unknown-kind", {"flows": [{"name": "x", "kind": "netsuite_magic"}]}, "flows[0].kind", "not one of"),
    ("missing-field", {"asana": {"auth_mode": "pat"}}, "asana.workspace_gid", "cannot be blank"),
    (
        "http-url",
        {"acumatica": {"instance_url": "http://erp.acme.example", "auth_mode": "cookie"}},
        "acumatica.instance_url",
        "only https:// is allowed",
    ),
    (
        "bad-version",
        {"acumatica": {"instance_url": "https://a.example", "endpoint_version": "24.2"}},
        "acumatica.endpoint_version",
        "must look like 24.200.001",
    ),
    (
        "bad-gid",
        {"flows": [{"name": "x", "kind": "acumatica_bills", "asana_project_gid": "AP-Project"}]},
        "flows[0].asana_project_gid",
        "digits only",
    ),
    (
        "attachments-over-asanas-limit",
        {
            "flows": [
                {
                    "name": "x",
                    "kind": "acumatica_bills",
                    "options": {"attachments": {"enabled": True, "max_bytes": 500 * 1024 * 1024}},
                }
            ]
        },
        "flows[0].options",
        "Asana's limit per attachment",
    ),
    (
        "unknown-field",
        {"tenant": {"slug": "acme", "name": "A", "colour": "red"}},
        "tenant.colour",
        "unknown field",
    ),
    (
        "missing-env",
        {"asana": {"workspace_gid": "1", "personal_access_token": {"env": "NOPE_NOT_SET"}}},
        "asana.personal_access_token",
        "NOPE_NOT_SET is not set",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("case,change,where,reason", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_file_names_file_field_reason_and_writes_nothing(tmp_path, capsys, case, change, where, reason):
    if isinstance(change, str):
        doc = change
    else:
        doc = {"tenant": {"slug": "acme", "name": "Acme"}, **change}
        if "flows" in change or "asana" in change:
            doc.setdefault("tenant", {"slug": "acme", "name": "Acme"})
    path = write(tmp_path, doc, name=f"{case}.json")
    before = snapshot()
    with pytest.raises(CommandError) as exc_info:
        call_command("connector", "config", "apply", str(path))
    assert exc_info.value.returncode == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert where in err
    assert reason in err
    assert "Nothing was written" in err
    assert snapshot() == before


@pytest.mark.django_db
def test_one_bad_flow_rolls_back_the_good_parts(tmp_path, secrets_env, capsys):
    doc = tenant_doc()
    doc["flows"].append({"name": "bad", "kind": "acumatica_bills", "asana_project_gid": "nope"})
    path = write(tmp_path, doc)
    with pytest.raises(CommandError):
        call_command("connector", "config", "apply", str(path))
    assert snapshot() == (0, 0, 0, 0, 0, 0, 0)


@pytest.mark.django_db
def test_loopback_http_is_accepted_for_sandboxes(tmp_path, secrets_env):
    doc = tenant_doc()
    doc["acumatica"]["instance_url"] = "http://127.0.0.1:8101/AcumaticaERP"
    call_command("connector", "config", "apply", str(write(tmp_path, doc)))
    assert AcumaticaConnection.objects.get().instance_url.startswith("http://127.0.0.1")


@pytest.mark.django_db
def test_export_unknown_tenant_fails():
    with pytest.raises(CommandError, match="No tenant"):
        call_command("connector", "config", "export", "--tenant", "ghost")


@pytest.mark.django_db
def test_a_second_tenants_money_flow_on_the_same_project_is_refused_unless_stated(
    tmp_path, secrets_env, capsys
):
    call_command("connector", "config", "apply", str(write(tmp_path, tenant_doc())))
    other = tenant_doc()
    other["tenant"] = {"slug": "acme-west", "name": "Acme West", "active": True}
    with pytest.raises(CommandError):
        call_command("connector", "config", "apply", str(write(tmp_path, other, name="west.json")))
    err = capsys.readouterr().err
    assert "flows[0].asana_project_gid" in err and "already carries tenant acme's" in err
    assert not Tenant.objects.filter(slug="acme-west").exists()
    other["flows"][0]["options"] = {"share_project_with_other_tenants": True}
    call_command("connector", "config", "apply", str(write(tmp_path, other, name="west.json")))
    assert Flow.objects.filter(asana_project_gid="1200000000000100").count() == 2
