"""`connector --as USER`: a command runs within the user's tenant roles; without it, as the recorded
system actor. config export / apply, replay and check refuse another tenant and write nothing."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import SyncRun
from integrations.cli.actor import SYSTEM_ACTOR
from integrations.models import Tenant
from mappings.models import UserMapping
from tests.security.tenancy_world import MARK, build


@pytest.fixture
def world(db, django_user_model, settings):
    settings.HTTP_MAX_RETRIES = 0
    return build(django_user_model)


def test_export_is_refused_for_another_tenant_and_allowed_for_ones_own(world, capsys):
    a, b, users = world
    with pytest.raises(CommandError, match="may not view"):
        call_command("connector", "--as", "alpha-view", "config", "export", "--tenant", MARK)
    assert MARK not in capsys.readouterr().out
    call_command("connector", "--as", "alpha-view", "config", "export", "--tenant", "alpha")
    assert json.loads(capsys.readouterr().out)["tenant"]["slug"] == "alpha"


def test_apply_needs_administer_on_that_tenant_and_a_superuser_for_a_new_one(world, tmp_path):
    a, b, users = world
    doc = {"tenant": {"slug": MARK, "name": "renamed"}, "user_mappings": [{"email": "evil@x.example"}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CommandError, match="may not administer"):
        call_command("connector", "--as", "alpha-administer", "config", "apply", str(path))
    assert Tenant.objects.get(slug=MARK).name != "renamed"
    assert not UserMapping.objects.filter(email="evil@x.example").exists()
    path.write_text(json.dumps({"tenant": {"slug": "brand-new", "name": "New"}}))
    with pytest.raises(CommandError, match="may not create a tenant"):
        call_command("connector", "--as", "alpha-administer", "config", "apply", str(path))
    assert not Tenant.objects.filter(slug="brand-new").exists()
    path.write_text(json.dumps({"tenant": {"slug": "alpha", "name": "Alpha renamed"}}))
    with pytest.raises(CommandError, match="may not administer"):
        call_command("connector", "--as", "alpha-operate", "config", "apply", str(path))
    call_command("connector", "--as", "alpha-administer", "config", "apply", str(path))
    assert Tenant.objects.get(slug="alpha").name == "Alpha renamed"


def test_an_unknown_user_is_refused(world):
    with pytest.raises(CommandError, match="no active user"):
        call_command("connector", "--as", "nobody", "config", "export", "--tenant", "alpha")


def test_replay_of_another_tenants_record_is_refused(world):
    from integrations.models import RecordLink

    a, b, users = world
    runs = SyncRun.objects.count()
    with pytest.raises(CommandError, match="may not operate"):
        call_command(
            "connector", "--as", "alpha-operate", "replay", "--record", str(b[RecordLink].pk), "--yes"
        )
    with pytest.raises(CommandError, match="may not operate"):
        call_command("connector", "--as", "alpha-view", "replay", "--record", str(a[RecordLink].pk), "--yes")
    assert SyncRun.objects.count() == runs


def test_check_covers_only_the_users_tenants(world, capsys):
    a, b, users = world
    with pytest.raises(CommandError):
        call_command("connector", "--as", "alpha-operate", "check")  # the closed port fails the checks
    out = capsys.readouterr().out
    assert "alpha" in out and MARK not in out


def test_without_as_the_system_actor_is_recorded(world, monkeypatch):
    from integrations.flows import replay
    from integrations.models import RecordLink

    a, b, users = world
    seen = {}

    def enqueue(items, *, actor, message):
        seen.update(actor=actor, message=message)
        return None

    monkeypatch.setattr(replay, "enqueue", enqueue)
    monkeypatch.setattr(
        replay, "preview", lambda link, entry: replay.Preview(link.pk, "k", "update", runnable=True)
    )
    with pytest.raises(CommandError):
        call_command("connector", "replay", "--record", str(b[RecordLink].pk), "--yes")
    assert seen["actor"] == SYSTEM_ACTOR
    with pytest.raises(CommandError):
        call_command(
            "connector", "--as", "alpha-operate", "replay", "--record", str(a[RecordLink].pk), "--yes"
        )
    assert seen["actor"] == "alpha-operate"
