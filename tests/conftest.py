"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from integrations.base.redaction import keep_only_secrets, known_secrets


@pytest.fixture
def tenant(db):
    from integrations.models import Tenant

    return Tenant.objects.create(slug="acme", name="Acme Construction")


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture(autouse=True)
def _isolated_var_dir(tmp_path, settings):
    """Each test gets its own var/ (rate-limit files, agent state)."""
    settings.VAR_DIR = tmp_path / "var"
    yield


@pytest.fixture(autouse=True)
def _fresh_receivers():
    """The webhook receivers' per-process state (endpoint cache, slowed addresses) starts empty."""
    from integrations.base.refusals import refusals
    from integrations.flows.inbound import receivers

    for state in (receivers.acumatica_push, receivers.asana):
        state.invalidate()
    refusals.reset()
    yield


@pytest.fixture(autouse=True)
def _forget_registered_secrets():
    before = known_secrets()
    yield
    keep_only_secrets(before)


@pytest.fixture(autouse=True)
def _forget_asanas_clock():
    """Each test's sandbox Asana has a clock of its own: what an earlier test taught the client about
    Asana's time (from Date headers) must not carry over."""
    from integrations.asana import client

    client._clock_offsets.clear()
    yield
    client._clock_offsets.clear()
