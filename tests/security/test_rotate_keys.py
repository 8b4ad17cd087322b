"""`connector rotate-keys` end to end, over every encrypted field of every model.

tests/foundation/test_secrets.py checks one Acumatica password and one PAT; here: every secret the
connector stores (Acumatica OAuth client secret, password, tokens and push secret; Asana PAT, OAuth
client secret and tokens; the Sage agent's API key and signing secret; Asana webhook secrets) is read
back with only the new key after rotation, every raw column changed and holds no plaintext; and a
rotation that meets a value no configured key decrypts writes nothing at all (one transaction) and says
which model is at fault.
"""

from __future__ import annotations

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection
from fernet_fields.hkdf import derive_fernet_key

from integrations.models import (
    AcumaticaConnection,
    AsanaConnection,
    AsanaWebhook,
    Sage100Connection,
    Tenant,
)
from integrations.secrets import encrypted_fields

OLD_KEY = "test-fernet-key-one"  # settings_test's key: everything below is first written with it
NEW_KEY = "rotated-key-two-" + "n" * 24


def secret(name: str) -> str:
    return f"rotation-{name}-0123456789abcdef"


def make_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.create(slug=slug, name=slug.title())
    AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url=f"https://{slug}.acumatica.com",
        client_id=f"id@{slug}",
        client_secret=secret(f"{slug}-acu-client"),
        username="api",
        password=secret(f"{slug}-acu-password"),
        access_token=secret(f"{slug}-acu-access"),
        refresh_token=secret(f"{slug}-acu-refresh"),
        push_secret=secret(f"{slug}-acu-push"),
    )
    AsanaConnection.objects.create(
        tenant=tenant,
        workspace_gid="1200000000000001",
        personal_access_token=secret(f"{slug}-asana-pat"),
        client_secret=secret(f"{slug}-asana-client"),
        access_token=secret(f"{slug}-asana-access"),
        refresh_token=secret(f"{slug}-asana-refresh"),
    )
    Sage100Connection.objects.create(
        tenant=tenant,
        agent_url="https://sage.lan:8443",
        api_key=secret(f"{slug}-sage-key"),
        signing_secret=secret(f"{slug}-sage-signing"),
        company_code="ABC",
    )
    AsanaWebhook.objects.create(
        tenant=tenant,
        resource_gid="1200000000000100",
        secret=secret(f"{slug}-webhook"),
        state=AsanaWebhook.State.ACTIVE,
    )
    return tenant


def raw_columns() -> dict[tuple[str, int, str], bytes]:
    """Every encrypted column of every row, as stored."""
    out = {}
    with connection.cursor() as cursor:
        for model, fields in encrypted_fields():
            columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
            cursor.execute(f"SELECT id, {columns} FROM {model._meta.db_table}")  # noqa: S608
            for pk, *values in cursor.fetchall():
                for field, value in zip(fields, values, strict=True):
                    out[(model._meta.label, pk, field.name)] = bytes(value or b"")
    return out


def plaintexts() -> dict[tuple[str, int, str], str]:
    out = {}
    for model, fields in encrypted_fields():
        for obj in model._base_manager.order_by("pk"):
            for field in fields:
                out[(model._meta.label, obj.pk, field.name)] = getattr(obj, field.name)
    return out


def fernet(key: str) -> Fernet:
    return Fernet(derive_fernet_key(key))


@pytest.fixture
def stored(db):
    make_tenant("acme")
    make_tenant("ridgeline")
    values = plaintexts()
    assert len([v for v in values.values() if v]) == 2 * 12  # every secret field of every model, set
    return values


def test_rotation_rewrites_every_secret_and_the_old_key_can_go(stored, settings):
    before = raw_columns()
    settings.FERNET_KEYS = [NEW_KEY, OLD_KEY]
    out = StringIO()
    call_command("connector", "rotate-keys", stdout=out)
    text = out.getvalue()
    for label in ("AcumaticaConnection", "AsanaConnection", "Sage100Connection", "AsanaWebhook"):
        assert f"integrations.{label}: 2 row(s) re-encrypted" in text
    after = raw_columns()
    assert after.keys() == before.keys()
    for where, raw in after.items():
        assert raw != before[where], where
        plain = stored[where].encode()
        assert plain not in raw and plain not in base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        assert fernet(NEW_KEY).decrypt(raw) == plain
        with pytest.raises(InvalidToken):
            fernet(OLD_KEY).decrypt(raw)
    settings.FERNET_KEYS = [NEW_KEY]  # the old key removed from the settings
    assert plaintexts() == stored


def test_a_rotation_that_meets_an_undecryptable_value_writes_nothing(stored, settings):
    victim = AsanaWebhook.objects.get(tenant__slug="ridgeline")
    order = [model for model, _ in encrypted_fields()]
    assert order.index(AsanaWebhook) > 0  # rows of other models are re-encrypted before the failure
    settings.FERNET_KEYS = ["a-key-nobody-kept-" + "k" * 20]
    AsanaWebhook.objects.filter(pk=victim.pk).update(secret="written-with-a-lost-key-0123456789")
    settings.FERNET_KEYS = [NEW_KEY, OLD_KEY]
    before = raw_columns()
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("connector", "rotate-keys", stdout=StringIO(), stderr=err)
    assert f"integrations.AsanaWebhook #{victim.pk} " in err.getvalue()
    assert "nothing was re-encrypted" in err.getvalue()
    assert raw_columns() == before
    for (label, pk, name), raw in before.items():
        if (label, pk) != ("integrations.AsanaWebhook", victim.pk):
            assert fernet(OLD_KEY).decrypt(raw) == stored[(label, pk, name)].encode()
