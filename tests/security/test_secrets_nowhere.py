"""No secret in plaintext after a realistic run: not in the database, the logs, the audit trail or an
exported configuration.

The run: a tenant applied with `connector config apply` (secrets from the environment) holding an
Acumatica OAuth password-grant connection with a push secret, an Asana PAT, and a Sage 100 agent
(a real one on loopback) with its API key and signing secret; `connector check`; bills synced, one of
them failing on an Asana 500; an Acumatica token endpoint and an Asana endpoint that *echo the
credentials back* in their error bodies; Asana webhooks registered with the real handshake and
signed deliveries; Acumatica pushes with the right and a wrong secret; a purchase request turned into
a Sage PO and a call signed with the wrong secret; the alert sweep; `connector config export`.

Then every secret the connector held — the configured ones, the Asana webhook secret from the
handshake and the Acumatica tokens it obtained — is searched for, plain, base64, URL-encoded and
JSON-escaped: in every column of every table (raw SQL over `introspection.table_names()`, django-q's
signed and compressed task payloads unpacked, the cache table), in Redis when it is the cache/broker,
in every log record (raw, and as the production handler with its redaction filter writes it), in the
audit rows, and in the export.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import zlib
from io import StringIO
from urllib.parse import quote, quote_plus

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import Alert, ApiCall, AuditEntry, InboundEvent
from integrations.base.errors import ConfigurationError, ConnectorError
from integrations.base.redaction import RedactingFilter, redact_body
from integrations.models import AcumaticaConnection, AsanaWebhook, Flow, Sage100Connection, Tenant
from integrations.sage100.client import client_for as sage_client_for
from sage100_agent.server import create_app, start_in_thread
from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import ACU_URL, ASANA_URL, D
from tests.flows.inbound.harness import django_deliverer
from tests.sage100.conftest import agent_config
from tests.sage100.flow_harness import configure as configure_purchase_requests

ACU_CLIENT_ID = "5A1B2C3D-0000-4000-8000-00000000CAFE@Ridgeline"
ACU_CLIENT_SECRET = "acu-client-secret-Zq8#x!Lm2"
ACU_USER = "ml-connector-svc"
ACU_PASSWORD = "acu-p@ss w0rd&=+/Ridgeline"  # characters that URL-encode and JSON-escape
PUSH_SECRET = "acu-push-secret-7Hk9Qw2Rt5"
PUSH_HEADER = "X-Ridgeline-Hook"  # a header name the redaction does not know by name
ASANA_PAT = "2/1200000000000001/1209999999999999:5f3e9a1c0b7d4e2f8a6c"
SAGE_API_KEY = "sage-agent-api-key-Vb6Nm3Xc1"
SAGE_SIGNING_SECRET = "sage-agent-hmac-secret-Pl0Ok9Ij8Uh7"


# ---- the tenant and the systems (fixtures of tests/flows/documents/test_documents_support, overridden) ----


@pytest.fixture
def acu(now):
    sim = acu_sim.build_demo(ACU_URL, strict_contract=True, clock=now.dt)
    sim.add_oauth_client(ACU_CLIENT_ID, ACU_CLIENT_SECRET)
    sim.add_user(ACU_USER, ACU_PASSWORD)
    return sim


@pytest.fixture
def asana(now, client):
    sim = asana_sim.build_demo(ASANA_URL, strict_contract=True, clock=now)
    sim.add_pat(D["connector_user"], ASANA_PAT)
    sim.deliver = django_deliverer(client)
    return sim


@pytest.fixture
def sage_agent(tmp_path, mounted):
    config = agent_config(tmp_path, api_key=SAGE_API_KEY, hmac_secret=SAGE_SIGNING_SECRET)
    agent = start_in_thread(create_app(config), port=0)
    mounted.add_passthru(agent.url)
    yield agent
    agent.stop()


@pytest.fixture
def docs_tenant(db, tmp_path, monkeypatch, sage_agent) -> Tenant:
    for name, value in {
        "RIDGELINE_ACU_CLIENT_SECRET": ACU_CLIENT_SECRET,
        "RIDGELINE_ACU_PASSWORD": ACU_PASSWORD,
        "RIDGELINE_ACU_PUSH_SECRET": PUSH_SECRET,
        "RIDGELINE_ASANA_PAT": ASANA_PAT,
        "RIDGELINE_SAGE_API_KEY": SAGE_API_KEY,
        "RIDGELINE_SAGE_SIGNING_SECRET": SAGE_SIGNING_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    doc = {
        "tenant": {"slug": "ridgeline", "name": "Ridgeline Builders"},
        "acumatica": {
            "instance_url": ACU_URL,
            "auth_mode": "oauth_password",
            "client_id": ACU_CLIENT_ID,
            "client_secret": {"env": "RIDGELINE_ACU_CLIENT_SECRET"},
            "username": ACU_USER,
            "password": {"env": "RIDGELINE_ACU_PASSWORD"},
            "tenant_login_name": "Ridgeline",
            "push_header_name": PUSH_HEADER,
            "push_secret": {"env": "RIDGELINE_ACU_PUSH_SECRET"},
        },
        "asana": {
            "api_base_url": ASANA_URL,
            "personal_access_token": {"env": "RIDGELINE_ASANA_PAT"},
            "workspace_gid": D["workspace"],
            "connector_user_gid": D["connector_user"],
        },
        "sage100": {
            "agent_url": sage_agent.url,
            "api_key": {"env": "RIDGELINE_SAGE_API_KEY"},
            "signing_secret": {"env": "RIDGELINE_SAGE_SIGNING_SECRET"},
            "company_code": "ABC",
        },
    }
    path = tmp_path / "ridgeline.json"
    path.write_text(json.dumps(doc))
    call_command("connector", "config", "apply", str(path), stdout=StringIO())
    return Tenant.objects.get(slug="ridgeline")


# ---- the run --------------------------------------------------------------------------------------------


def attempt(step, *args):
    """Run one step of the run; a vendor failure is part of the scenario (it is recorded and logged)."""
    try:
        step(*args)
    except (ConnectorError, ConfigurationError) as exc:
        logging.getLogger("tests.security").info("step failed as staged: %s", exc)


def run_everything(tenant, acu, asana, make_sync, client, sage_agent) -> str:
    """The realistic run; returns the `connector config export` output."""
    quiet = StringIO()

    def command(*args):
        # A failing check is part of the run: what matters is what it left behind.
        with contextlib.suppress(CommandError):
            call_command("connector", *args, stdout=quiet, stderr=quiet)

    command("check", "--tenant", "ridgeline")
    sync = make_sync()
    sync.process("Bill", "000001")
    asana.faults.add("status", method="POST", path=r"^/tasks$", status=500)
    attempt(sync.process, "Bill", "000002")  # unknown outcome: recorded, reconciled later
    # Acumatica's token endpoint answers with the credentials echoed back (a misconfigured proxy)
    acu.expire_access_tokens()
    AcumaticaConnection.objects.filter(tenant=tenant).update(access_token="", refresh_token="")
    acu.faults.add(
        "status",
        path=r"/identity/connect/token",
        status=400,
        body={
            "error": "invalid_grant",
            "error_description": f"user {ACU_USER} password {ACU_PASSWORD} client_secret {ACU_CLIENT_SECRET}",
        },
    )
    attempt(make_sync().process, "Bill", "000003")  # AuthFailed, quoting the echo
    attempt(make_sync().process, "Bill", "000003")  # the next attempt gets fresh tokens
    # Asana refuses the token and quotes it
    asana.faults.add(
        "status", path=r"^/users/me$", status=401, body={"errors": [{"message": f"bad token {ASANA_PAT}"}]}
    )
    command("check", "--tenant", "ridgeline")
    # Webhooks: the real handshake through the view, then a heartbeat and a task change
    command("webhooks", "ensure", "--tenant", "ridgeline")
    asana.deliver_pending_events()
    task_gid = next(iter(tasks_in_project(asana)))  # noqa: F405
    asana.ui_update_task(task_gid, D["users"]["alice"], completed=True)
    asana.deliver_pending_events()
    # Acumatica pushes: one authentic, one with a wrong secret
    push_uuid = AcumaticaConnection.objects.get(tenant=tenant).push_uuid
    body = json.dumps(
        {
            "Query": "ML Bills",
            "Id": "a1",
            "Inserted": [{"DocType": "Bill", "RefNbr": "000004"}],
            "Deleted": [],
        }
    ).encode()
    for secret in (PUSH_SECRET, PUSH_SECRET[::-1]):
        client.post(
            f"/hooks/acumatica/{push_uuid}/",
            data=body,
            content_type="application/json",
            headers={PUSH_HEADER: secret},
        )
    # Sage 100: a purchase request becomes a PO; a call signed with the wrong secret is refused
    from integrations.asana.client import client_for as asana_client_for
    from integrations.flows.purchase_requests.orders import process_purchase_request

    flow = configure_purchase_requests(tenant)
    gid = asana.add_task(
        D["pr_project"],
        "Rebar for footings",
        custom_fields={
            D["fields"]["vendor"]: "ABC Concrete",
            D["fields"]["amount"]: 1500.0,
            D["fields"]["cost_code"]: D["options"]["cost_code"]["5000 Materials"],
        },
        user=D["users"]["bob"],
    )
    asana.ui_update_task(gid, D["users"]["alice"], completed=True)
    sage = Sage100Connection.objects.get(tenant=tenant)
    process_purchase_request(
        flow,
        gid,
        asana=asana_client_for(tenant.asana, rate_limiter=None),
        sage=sage_client_for(sage, sleep=lambda s: None),
    )
    sage.signing_secret = SAGE_SIGNING_SECRET[::-1]
    attempt(sage_client_for(sage, sleep=lambda s: None, max_retries=0).ping)  # AuthFailed
    from integrations.flows.operations import alerts

    alerts.sweep()
    out = StringIO()
    call_command("connector", "config", "export", "--tenant", "ridgeline", stdout=out)
    return out.getvalue()


# ---- where secrets could hide ---------------------------------------------------------------------------


def forms_of(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    } - {""}


B64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{16,}={0,2}")


def unpacked(data: bytes) -> list[bytes]:
    """`data` and what a base64 / zlib layer inside it hides (django-q's signed task payloads)."""
    views = [data]
    for run in B64_RUN.findall(data):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                decoded = decode(run + b"=" * (-len(run) % 4))
            except ValueError:
                continue
            views.append(decoded)
            with contextlib.suppress(zlib.error):
                views.append(zlib.decompress(decoded))
    return views


def as_bytes(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def database_dump() -> dict[str, list[bytes]]:
    tables = connection.introspection.table_names()
    assert "django_q_ormq" in tables and "audit_apicall" in tables
    if not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        assert "ml_connector_cache" in tables
    dump = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            dump[table] = [as_bytes(v) for row in cursor.fetchall() for v in row]
    return dump


def redis_dump() -> list[bytes]:
    if not getattr(settings, "REDIS_URL", ""):
        return []
    import redis

    r = redis.Redis.from_url(settings.REDIS_URL)
    values = []
    for key in r.scan_iter(count=500):
        values.append(key)
        if r.type(key) == b"string":
            values.append(r.get(key) or b"")
        elif r.type(key) == b"list":
            values.extend(r.lrange(key, 0, -1))
        elif r.type(key) == b"hash":
            values.extend(b for kv in r.hgetall(key).items() for b in kv)
    return values


def leaks(secrets: dict[str, str], haystacks: dict[str, list[bytes]]) -> list[str]:
    found = []
    for where, blobs in haystacks.items():
        for blob in blobs:
            for view in unpacked(blob):
                for name, secret in secrets.items():
                    if any(form.encode() in view for form in forms_of(secret)):
                        found.append(f"{name} in {where}")
    return sorted(set(found))


class ProductionFormattedLog(logging.Handler):
    """What the console handler writes: the production formatter behind the redaction filter."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(RedactingFilter())
        self.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_secret_in_plaintext_after_a_realistic_run(
    docs_tenant, bills_flow, make_sync, acu, asana, client, sage_agent, caplog
):
    Flow.objects.create(
        tenant=docs_tenant,
        name="Bill approvals",
        kind=Flow.Kind.ASANA_APPROVALS,
        asana_project_gid=D["ap_project"],
    )
    handler = ProductionFormattedLog()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            exported = run_everything(docs_tenant, acu, asana, make_sync, client, sage_agent)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    # The run did what it says (otherwise "nothing leaked" proves nothing).
    hook = AsanaWebhook.objects.get(tenant=docs_tenant)
    acumatica = AcumaticaConnection.objects.get(tenant=docs_tenant)
    assert hook.state == AsanaWebhook.State.ACTIVE and hook.secret
    assert acumatica.access_token and acumatica.refresh_token
    assert ApiCall.objects.filter(system="acumatica", status_code=400, url__contains="token").exists()
    assert ApiCall.objects.filter(system="asana", status_code=401).exists()
    assert ApiCall.objects.filter(system="sage100", status_code=401).exists()
    assert AuditEntry.objects.exclude(status=AuditEntry.Status.SUCCEEDED).exists()  # failures recorded
    assert Alert.objects.exists()
    statuses = set(InboundEvent.objects.values_list("source", "status"))
    assert ("asana_handshake", "processed") in statuses
    # The push with the wrong secret is refused without a row, logged (its excerpt went through the
    # same leak check below).
    assert ("acumatica_push", "rejected") not in statuses
    assert any("refused with 401" in r.getMessage() for r in caplog.records)
    assert Sage100Connection.objects.get(tenant=docs_tenant).last_check_ok is not None
    assert sage_agent.backend.count_pos() == 1
    assert len(caplog.records) > 20 and handler.lines

    secrets = {
        "Acumatica client secret": ACU_CLIENT_SECRET,
        "Acumatica password": ACU_PASSWORD,
        "Acumatica access token": acumatica.access_token,
        "Acumatica refresh token": acumatica.refresh_token,
        "Acumatica push secret": PUSH_SECRET,
        "Asana PAT": ASANA_PAT,
        "Asana webhook secret": hook.secret,
        "Sage API key": SAGE_API_KEY,
        "Sage signing secret": SAGE_SIGNING_SECRET,
    }
    # (a) every table, django-q and the cache included; Redis when it is the broker and the cache
    assert leaks(secrets, database_dump()) == []
    assert leaks(secrets, {"redis": redis_dump()}) == []
    # (b) the logs: every record as emitted (message and arguments), and as the console writes it
    raw_records = {
        "log record": [as_bytes(r.getMessage()) + b" " + as_bytes(r.exc_text or "") for r in caplog.records]
    }
    assert leaks(secrets, raw_records) == []
    assert leaks(secrets, {"formatted log": [line.encode() for line in handler.lines]}) == []
    # (c) the audit rows, read through the ORM as the console shows them
    audit_rows = {
        "AuditEntry": [as_bytes(json.dumps(list(AuditEntry.objects.values()), default=str))],
        "ApiCall": [as_bytes(json.dumps(list(ApiCall.objects.values()), default=str))],
        "InboundEvent": [
            as_bytes(json.dumps(list(InboundEvent.objects.values("headers", "status_reason")), default=str)),
            *(bytes(e.raw_body) for e in InboundEvent.objects.all()),
        ],
        "Alert": [as_bytes(json.dumps(list(Alert.objects.values()), default=str))],
        "connection check messages": [
            as_bytes(m)
            for model in (AcumaticaConnection, Sage100Connection)
            for m in model.objects.values_list("last_check_message", flat=True)
        ],
    }
    assert leaks(secrets, audit_rows) == []
    # (d) the exported configuration: secrets as environment references only
    assert leaks(secrets, {"config export": [exported.encode()]}) == []
    assert json.loads(exported)["sage100"]["signing_secret"] == {"env": "ML_RIDGELINE_SAGE100_SIGNING_SECRET"}


def test_form_fields_given_as_a_dict_are_redacted_field_by_field():
    """The defect the run above found: an OAuth token request's form (a dict) was excerpted through
    its repr(); a password containing & and = made it look like a form, and re-encoding it hid the
    client secret from the known-secret masking and stored both in the ApiCall row."""
    excerpt = redact_body(
        {
            "grant_type": "password",
            "username": ACU_USER,
            "password": ACU_PASSWORD,
            "client_secret": ACU_CLIENT_SECRET,
        }
    )
    assert json.loads(excerpt) == {
        "grant_type": "password",
        "username": ACU_USER,
        "password": "[redacted]",
        "client_secret": "[redacted]",
    }
    assert (
        redact_body([("password", ACU_PASSWORD), ("scope", "api")])
        == '{"password": "[redacted]", "scope": "api"}'
    )
