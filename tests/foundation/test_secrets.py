"""Secrets are encrypted at rest, and rotate-keys re-encrypts them with the first key."""

import base64

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from fernet_fields.hkdf import derive_fernet_key

from integrations.models import AcumaticaConnection, AsanaConnection

PASSWORD = "Sup3r-Secret-Acumatica-Pw"
PAT = "2/1200000000000001/1209999999999999:abcdefabcdefabcdef"


@pytest.fixture
def connections(tenant):
    acu = AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url="https://acme.acumatica.com",
        client_id="abc@Acme",
        client_secret="client-secret-value-1",
        username="api",
        password=PASSWORD,
        push_secret="push-secret-xyz",
    )
    asana = AsanaConnection.objects.create(
        tenant=tenant, workspace_gid="1200000000000000", personal_access_token=PAT
    )
    return acu, asana


def raw_column(model, pk, column) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])  # noqa: S608
        value = cursor.fetchone()[0]
    return bytes(value)


def fernet_for(key: str) -> Fernet:
    return Fernet(derive_fernet_key(key))


def test_secrets_are_not_stored_in_plaintext(connections):
    acu, asana = connections
    for model, pk, column, plain in [
        (AcumaticaConnection, acu.pk, "password", PASSWORD),
        (AcumaticaConnection, acu.pk, "client_secret", "client-secret-value-1"),
        (AsanaConnection, asana.pk, "personal_access_token", PAT),
    ]:
        raw = raw_column(model, pk, column)
        assert plain.encode() not in raw
        assert plain.encode() not in base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        assert fernet_for("test-fernet-key-one").decrypt(raw).decode() == plain
    # and the ORM reads them back
    assert AcumaticaConnection.objects.get(pk=acu.pk).password == PASSWORD


@pytest.mark.django_db(transaction=True)
def test_secrets_not_in_database_file(connections, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the file-level scan applies to the SQLite file; the column checks cover PostgreSQL")
    # The test database may be in memory: copy it to a file and scan every byte.
    target = tmp_path / "copy.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(target)])
    data = target.read_bytes()
    for plain in (PASSWORD, PAT, "client-secret-value-1", "push-secret-xyz"):
        assert plain.encode() not in data


def test_rotate_keys_reencrypts_with_first_key(connections, settings):
    acu, asana = connections
    old_raw = raw_column(AcumaticaConnection, acu.pk, "password")
    settings.FERNET_KEYS = ["brand-new-key-two", "test-fernet-key-one"]
    call_command("connector", "rotate-keys")
    new_raw = raw_column(AcumaticaConnection, acu.pk, "password")
    assert new_raw != old_raw
    with pytest.raises(InvalidToken):
        fernet_for("test-fernet-key-one").decrypt(new_raw)
    assert fernet_for("brand-new-key-two").decrypt(new_raw).decode() == PASSWORD
    pat_raw = raw_column(AsanaConnection, asana.pk, "personal_access_token")
    with pytest.raises(InvalidToken):
        fernet_for("test-fernet-key-one").decrypt(pat_raw)
    # With only the new key configured, everything still reads.
    settings.FERNET_KEYS = ["brand-new-key-two"]
    assert AcumaticaConnection.objects.get(pk=acu.pk).password == PASSWORD
    assert AsanaConnection.objects.get(pk=asana.pk).personal_access_token == PAT


def test_old_key_alone_cannot_read_after_rotation(connections, settings):
    acu, _ = connections
    settings.FERNET_KEYS = ["brand-new-key-two", "test-fernet-key-one"]
    call_command("connector", "rotate-keys")
    settings.FERNET_KEYS = ["test-fernet-key-one"]
    with pytest.raises(InvalidToken):
        AcumaticaConnection.objects.get(pk=acu.pk)
