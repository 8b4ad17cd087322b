"""Tenants, their connections to each system, flows, cursors, record lineage and Asana webhooks.

Every row below `Tenant` belongs to one tenant and every query is tenant-scoped. Secrets and the
tokens the connector obtains are stored in Fernet-encrypted fields (keys from FERNET_KEYS).
"""

from __future__ import annotations

import uuid

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from fernet_fields import EncryptedTextField

from .validators import attachment_options, validate_endpoint_version, validate_gid, validate_outbound_url


class Tenant(models.Model):
    """One customer organisation."""

    slug = models.SlugField(unique=True, help_text="Short identifier used by commands, e.g. 'acme'.")
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class ConnectionCheck(models.Model):
    """Fields every connection keeps about its last `connector check` / "Test connection"."""

    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_ok = models.BooleanField(null=True, editable=False)
    last_check_message = models.TextField(blank=True, editable=False)

    class Meta:
        abstract = True


class AcumaticaConnection(ConnectionCheck):
    class AuthMode(models.TextChoices):
        OAUTH_PASSWORD = "oauth_password", "OAuth 2.0 password grant"
        OAUTH_CODE = "oauth_code", "OAuth 2.0 authorization code (refresh token)"
        COOKIE = "cookie", "Legacy cookie login"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="acumatica")
    instance_url = models.URLField(
        max_length=500,
        validators=[validate_outbound_url],
        help_text="Site URL including the instance path, e.g. https://acme.acumatica.com or "
        "https://erp.acme.com/AcumaticaERP",
    )
    endpoint_name = models.CharField(max_length=100, default="Default")
    endpoint_version = models.CharField(
        max_length=20, default="24.200.001", validators=[validate_endpoint_version]
    )
    auth_mode = models.CharField(max_length=20, choices=AuthMode.choices, default=AuthMode.OAUTH_PASSWORD)
    client_id = models.CharField(max_length=200, blank=True, help_text="OAuth client ID, e.g. GUID@Tenant")
    client_secret = EncryptedTextField(blank=True)
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True)
    tenant_login_name = models.CharField(max_length=200, blank=True, help_text="Acumatica tenant (company)")
    branch = models.CharField(max_length=100, blank=True)
    access_token = EncryptedTextField(blank=True, editable=False)
    refresh_token = EncryptedTextField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    push_header_name = models.CharField(max_length=100, default="X-ML-Connector-Secret")
    push_secret = EncryptedTextField(blank=True)
    push_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    uses_approval_maps = models.BooleanField(
        default=False, help_text="Bills pending approval are approved through Acumatica approval maps."
    )
    max_concurrency = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1)])
    build_version = models.CharField(max_length=50, blank=True, editable=False)
    # The seat governor (integrations/acumatica/seats.py, reference/acumatica.md §2.3, §6.3).
    max_api_sessions = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="API-user seats the connector may hold at once on this tenant's licence (other "
        "integrations share the licence's 'Maximum Number of Web Services API Users'). OAuth uses one.",
    )
    seats_paused_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="After 'API Login Limit' no sign-in is attempted before this time; a passing "
        "`connector check` resumes sooner.",
    )
    workflow_actions = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Actions the tenant's Acumatica offers per entity (`$adHocSchema` _workflowActions), "
        "read by `connector check`.",
    )

    SECRET_FIELDS = ("client_secret", "password", "access_token", "refresh_token", "push_secret")

    class Meta:
        verbose_name = "Acumatica connection"

    def __str__(self) -> str:
        return f"Acumatica {self.instance_url} ({self.endpoint_name}/{self.endpoint_version})"

    @property
    def endpoint_base_url(self) -> str:
        return f"{self.instance_url.rstrip('/')}/entity/{self.endpoint_name}/{self.endpoint_version}"


class AsanaConnection(ConnectionCheck):
    class AuthMode(models.TextChoices):
        PAT = "pat", "Personal or service account token"
        OAUTH = "oauth", "OAuth 2.0"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="asana")
    api_base_url = models.URLField(
        default="https://app.asana.com/api/1.0", validators=[validate_outbound_url], max_length=300
    )
    auth_mode = models.CharField(max_length=10, choices=AuthMode.choices, default=AuthMode.PAT)
    personal_access_token = EncryptedTextField(blank=True)
    client_id = models.CharField(max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True)
    access_token = EncryptedTextField(blank=True, editable=False)
    refresh_token = EncryptedTextField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    workspace_gid = models.CharField(max_length=32, validators=[validate_gid])
    connector_user_gid = models.CharField(
        max_length=32, blank=True, validators=[validate_gid], help_text="The Asana user the connector acts as"
    )
    requests_per_minute = models.PositiveIntegerField(
        default=1500, help_text="Rate budget for this token: 1500 on paid plans, 150 on free."
    )
    max_writes_in_flight = models.PositiveSmallIntegerField(default=10, validators=[MinValueValidator(1)])

    SECRET_FIELDS = ("personal_access_token", "client_secret", "access_token", "refresh_token")

    class Meta:
        verbose_name = "Asana connection"

    def __str__(self) -> str:
        return f"Asana workspace {self.workspace_gid}"


def _validate_agent_url(value: str) -> None:
    validate_outbound_url(value, allow_private=True)


class Sage100Connection(ConnectionCheck):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="sage100")
    agent_url = models.URLField(
        max_length=300, validators=[_validate_agent_url], help_text="https://sage-server:8443"
    )
    api_key = EncryptedTextField(blank=True)
    signing_secret = EncryptedTextField(blank=True, help_text="HMAC secret shared with the agent")
    tls_fingerprint_sha256 = models.CharField(
        max_length=95, blank=True, help_text="Pinned SHA-256 fingerprint of the agent certificate"
    )
    ca_certificate = models.TextField(blank=True, help_text="PEM of the CA that signed the agent cert")
    company_code = models.CharField(max_length=3)
    default_ap_division = models.CharField(max_length=2, default="00")
    sage_user = models.CharField(max_length=50, blank=True)
    agent_version = models.CharField(max_length=50, blank=True, editable=False)

    SECRET_FIELDS = ("api_key", "signing_secret")

    class Meta:
        verbose_name = "Sage 100 connection"

    def __str__(self) -> str:
        return f"Sage 100 {self.company_code} via {self.agent_url}"


# Every system a tenant connects, by the name used in the tenant JSON, `connector check` and the
# registry's CHECKS (integrations/ADDING_A_SYSTEM.md: a fourth system adds its line here).
CONNECTIONS: dict[str, type[ConnectionCheck]] = {
    "acumatica": AcumaticaConnection,
    "asana": AsanaConnection,
    "sage100": Sage100Connection,
}


class Flow(models.Model):
    class Kind(models.TextChoices):
        ACUMATICA_BILLS = "acumatica_bills", "Acumatica bills → Asana tasks"
        ACUMATICA_PURCHASE_ORDERS = "acumatica_purchase_orders", "Acumatica purchase orders → Asana tasks"
        ASANA_APPROVALS = "asana_approvals", "Asana approvals → Acumatica release"
        ACUMATICA_EMPLOYEES = "acumatica_employees", "Acumatica employees → Asana roster"
        ASANA_PURCHASE_REQUESTS = "asana_purchase_requests", "Asana purchase requests → Sage 100 POs"
        SAGE100_PO_STATUS = "sage100_po_status", "Sage 100 PO status → Asana tasks"

    # What each kind consumes, declared with the kind (integrations/flows/registry.py holds what runs for
    # it; tests/flows/test_registry.py checks the two agree).
    DOCUMENT_KINDS = frozenset({Kind.ACUMATICA_BILLS, Kind.ACUMATICA_PURCHASE_ORDERS})
    # Kinds whose Asana task changes (webhook deliveries, catch-up polls) are dispatched to the flow.
    TASK_EVENT_KINDS = frozenset({Kind.ASANA_APPROVALS, Kind.ASANA_PURCHASE_REQUESTS})

    class ApprovalRule(models.TextChoices):
        COMPLETED = "completed", "Task completed"
        APPROVAL_STATUS = "approval_status", "Approval task approved"
        ENUM_OPTION = "enum_option", "Custom field equals an option"

    class MappingStatus(models.TextChoices):
        OK = "ok", "OK"
        BROKEN = "broken", "Broken"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    asana_project_gid = models.CharField(max_length=32, blank=True, validators=[validate_gid])
    asana_section_gid = models.CharField(max_length=32, blank=True, validators=[validate_gid])
    approval_rule = models.CharField(
        max_length=20, choices=ApprovalRule.choices, default=ApprovalRule.COMPLETED
    )
    approval_field_gid = models.CharField(max_length=32, blank=True, validators=[validate_gid])
    approval_option_gid = models.CharField(max_length=32, blank=True, validators=[validate_gid])
    erp_reference_field_gid = models.CharField(
        max_length=32,
        blank=True,
        validators=[validate_gid],
        help_text="Text custom field holding the ERP reference: the natural key used to reconcile.",
    )
    status_filter = models.JSONField(default=list, blank=True, help_text='e.g. ["Balanced", "Open"]')
    poll_interval_minutes = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    task_name_template = models.CharField(max_length=300, blank=True)
    task_notes_template = models.TextField(blank=True)
    options = models.JSONField(default=dict, blank=True)
    mapping_status = models.CharField(
        max_length=10, choices=MappingStatus.choices, default=MappingStatus.OK, editable=False
    )
    mapping_status_reason = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="flow_unique_name")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"

    # Flows that turn tasks into money movements: two tenants' flows of one of these kinds on one Asana
    # project would each act on every task (one approval releasing a bill in two ERPs).
    PROJECT_EXCLUSIVE_KINDS = (
        Kind.ACUMATICA_BILLS,
        Kind.ACUMATICA_PURCHASE_ORDERS,
        Kind.ASANA_APPROVALS,
        Kind.ASANA_PURCHASE_REQUESTS,
    )

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        super().clean()
        attachment_options(self.options)  # issue 21: a bad options.attachments is refused here
        if not self.asana_project_gid or self.kind not in self.PROJECT_EXCLUSIVE_KINDS:
            return
        if (self.options or {}).get("share_project_with_other_tenants"):
            return  # stated on purpose; tasks are still never shared (one link per task)
        others = (
            Flow.objects.filter(kind=self.kind, asana_project_gid=self.asana_project_gid)
            .exclude(tenant_id=self.tenant_id)
            .select_related("tenant")
        )
        other = others.first()
        if other is not None:
            raise ValidationError(
                {
                    "asana_project_gid": (
                        f"project {self.asana_project_gid} already carries tenant {other.tenant.slug}'s "
                        f"{other.get_kind_display()} flow '{other.name}': two tenants' flows of one kind "
                        "on one project would act on each other's tasks. Use another project, or set "
                        'options {"share_project_with_other_tenants": true} if this is on purpose.'
                    )
                }
            )


class Cursor(models.Model):
    """A watermark per (tenant, stream). It moves only after the page it covers is processed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=200)
    value = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "stream"], name="cursor_unique_stream")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}:{self.stream}={self.value}"


class RecordLink(models.Model):
    """The lineage row of one business document across systems, and the lock for that document."""

    class Kind(models.TextChoices):
        BILL = "bill", "Acumatica bill"
        PURCHASE_ORDER = "purchase_order", "Acumatica purchase order"
        PURCHASE_REQUEST = "purchase_request", "Asana purchase request / Sage 100 PO"

    class State(models.TextChoices):
        CREATING = "creating", "Creating"
        LINKED = "linked", "Linked"
        QUARANTINED = "quarantined", "Quarantined"
        FAILED = "failed", "Failed"
        CLOSED = "closed", "Closed"
        DELETED = "deleted", "Deleted in source"
        NEEDS_PERSON = "needs_person", "Outcome unknown — needs a person"

    # A link in one of these states has ended for good: its document was deleted, voided or cancelled.
    # A new document under the same natural key starts a new generation (a new row, a new task), and
    # approvals of an ended link's task never act on anything.
    ENDED_STATES = ("deleted", "closed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="record_links")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="links")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    acumatica_type = models.CharField(max_length=30, blank=True, help_text="Bill Type / PO OrderType")
    acumatica_ref = models.CharField(max_length=30, blank=True, help_text="ReferenceNbr / OrderNbr")
    acumatica_id = models.CharField(max_length=40, blank=True, help_text="Acumatica record GUID")
    asana_task_gid = models.CharField(max_length=32, blank=True)
    sage_po_number = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CREATING)
    state_reason = models.TextField(blank=True)
    payload_hash = models.CharField(max_length=64, blank=True)
    last_payload = models.JSONField(default=dict, blank=True)
    approved_snapshot = models.JSONField(default=dict, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # Fencing: every claim (a create, a release) takes the next token; storing a result or clearing the
    # claim is a conditional UPDATE on the token, so a worker that lost its claim cannot overwrite.
    claim_token = models.PositiveBigIntegerField(default=0)
    # The create attempt's start on ASANA's clock (its Date header): reconcile windows never use ours.
    attempt_asana_started_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveIntegerField(
        default=1, help_text="1 for a document's first life; a re-used number after deletion is 2, 3…"
    )
    # What an approval binds to: the guarded values (amount, vendor, reference…) the connector last
    # wrote to the task, and Asana's time of the last write that changed one of them.
    guarded_values = models.JSONField(default=dict, blank=True)
    guarded_written_at = models.DateTimeField(null=True, blank=True)
    # A create whose outcome is unknown and whose candidates cannot be proven ours: what a person sees.
    review = models.JSONField(default=dict, blank=True)
    source_modified_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "acumatica_type", "acumatica_ref", "generation"],
                condition=~Q(acumatica_ref=""),
                name="recordlink_unique_acumatica_doc",
            ),
            # One live link per natural key; ended generations stay as history.
            models.UniqueConstraint(
                fields=["tenant", "kind", "acumatica_type", "acumatica_ref"],
                condition=~Q(acumatica_ref="") & ~Q(state__in=["deleted", "closed"]),
                name="recordlink_one_live_document",
            ),
            # One task belongs to at most one link in the whole installation (never across tenants).
            models.UniqueConstraint(
                fields=["asana_task_gid"],
                condition=~Q(asana_task_gid=""),
                name="recordlink_unique_asana_task",
            ),
            models.UniqueConstraint(
                fields=["tenant", "sage_po_number"],
                condition=~Q(sage_po_number=""),
                name="recordlink_unique_sage_po",
            ),
        ]
        # The natural-key lookups (`filter(tenant=…, acumatica_ref=…)`) cannot use the partial unique
        # indexes above on SQLite (a partial index serves only queries that repeat its WHERE clause), so
        # each lookup scanned every link of the tenant: a backfill went quadratic (docs/PERFORMANCE.md).
        indexes = [
            models.Index(fields=["tenant", "state"]),
            models.Index(
                fields=["tenant", "kind", "acumatica_type", "acumatica_ref"], name="recordlink_doc_lookup"
            ),
            models.Index(fields=["tenant", "asana_task_gid"], name="recordlink_task_lookup"),
            models.Index(fields=["tenant", "sage_po_number"], name="recordlink_po_lookup"),
        ]

    def __str__(self) -> str:
        if self.acumatica_ref:
            gen = f" (generation {self.generation})" if self.generation > 1 else ""
            return f"{self.get_kind_display()} {self.acumatica_type} {self.acumatica_ref}{gen}"
        if self.sage_po_number:
            return f"Sage PO {self.sage_po_number}"
        return f"{self.get_kind_display()} task {self.asana_task_gid}"

    @property
    def is_live(self) -> bool:
        return self.state not in self.ENDED_STATES


class GuardedWrite(models.Model):
    """Append-only history of the guarded values the connector wrote to a link's task, each with
    Asana's own time of the write: the evidence of what every approval was bound to."""

    link = models.ForeignKey(RecordLink, on_delete=models.CASCADE, related_name="guarded_writes")
    generation = models.PositiveIntegerField(default=1)
    operation = models.CharField(max_length=30, help_text="create, update, baseline")
    values = models.JSONField(default=dict)
    previous = models.JSONField(default=dict, blank=True)
    asana_time = models.DateTimeField(help_text="Asana's time of the write (its answer's modified_at)")
    approval_reset = models.BooleanField(default=False)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["link", "asana_time", "pk"]

    def __str__(self) -> str:
        return f"{self.link} {self.operation} at {self.asana_time:%Y-%m-%d %H:%M:%S}"


class TaskAttachment(models.Model):
    """One Acumatica file (by file id and content hash) put on a link's Asana task, or skipped with the
    reason: a re-sync finds it here and uploads nothing (integrations/flows/documents/attachments.py)."""

    class State(models.TextChoices):
        UPLOADING = "uploading", "Uploading"  # the claim: an answer lost from here is reconciled by listing
        UPLOADED = "uploaded", "Uploaded"
        SKIPPED = "skipped", "Skipped"
        REPLACED = "replaced", "Replaced in Acumatica (attachment left on the task)"

    link = models.ForeignKey(RecordLink, on_delete=models.CASCADE, related_name="attachments")
    file_id = models.CharField(max_length=64)
    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.UPLOADING)
    reason = models.TextField(blank=True)
    asana_attachment_gid = models.CharField(max_length=32, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["link", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["link", "file_id", "sha256"],
                condition=~models.Q(sha256=""),
                name="task_attachment_once_per_content",
            )
        ]

    def __str__(self) -> str:
        return f"{self.link} {self.file_name} ({self.state})"


class AsanaWebhook(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending handshake"
        ACTIVE = "active", "Active"
        FAILING = "failing", "Failing"
        GONE = "gone", "Gone"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="asana_webhooks")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhooks")
    resource_gid = models.CharField(max_length=32, validators=[validate_gid])
    resource_type = models.CharField(max_length=30, default="project")
    target_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook_gid = models.CharField(max_length=32, blank=True)
    secret = EncryptedTextField(blank=True, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    filters = models.JSONField(default=list, blank=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_content = models.TextField(blank=True)
    failure_deletion_timestamp = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    SECRET_FIELDS = ("secret",)

    class Meta:
        verbose_name = "Asana webhook"

    def __str__(self) -> str:
        return f"Asana webhook on {self.resource_type} {self.resource_gid} ({self.state})"


from .control_holds import ControlHold  # noqa: E402,F401  (a model of this app, in its own module)
from .membership import TenantMembership  # noqa: E402,F401  (a model of this app, in its own module)
from .setup_progress import SetupProgress  # noqa: E402,F401  (the setup wizard's state)
