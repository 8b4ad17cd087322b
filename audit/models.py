"""The audit trail: inbound events, sync runs, one entry per operation on a record, every API call.

AuditEntry and ApiCall are append-only: once written they cannot be changed or deleted through
the ORM. InboundEvent and SyncRun carry a lifecycle (status, counts) and are updated in place.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from integrations.models import Flow, RecordLink, Tenant


class AppendOnlyError(Exception):
    pass


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class InboundEvent(models.Model):
    class Source(models.TextChoices):
        ASANA_WEBHOOK = "asana_webhook", "Asana webhook"
        ASANA_HANDSHAKE = "asana_handshake", "Asana handshake"
        ACUMATICA_PUSH = "acumatica_push", "Acumatica push notification"

    class Verdict(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Invalid"
        MISSING = "missing", "Missing"
        NOT_APPLICABLE = "n/a", "Not applicable"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        QUEUED = "queued", "Queued"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        DUPLICATE = "duplicate", "Duplicate"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"
        # Authentic, but no row names a document in any spelling we know (acumatica/push_rows.py).
        UNREADABLE = "unreadable", "Unreadable (no row names a document)"

    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    endpoint_uuid = models.UUIDField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Redacted")
    raw_body = models.BinaryField(blank=True, default=b"")
    signature = models.CharField(max_length=10, choices=Verdict.choices, default=Verdict.NOT_APPLICABLE)
    dedupe_key = models.CharField(max_length=300, null=True, blank=True)
    duplicate_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    status_reason = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "dedupe_key"],
                condition=Q(dedupe_key__isnull=False),
                name="inboundevent_unique_dedupe",
            )
        ]
        indexes = [
            # The every-minute sweep and the dashboard's backlog read only the rows still waiting.
            models.Index(
                fields=["status", "received_at"],
                condition=Q(status__in=["received", "queued"]),
                name="inboundevent_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} #{self.pk} ({self.status})"

    @property
    def body_text(self) -> str:
        return bytes(self.raw_body or b"").decode("utf-8", errors="replace")


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        PUSH = "push", "Push notification"
        WEBHOOK = "webhook", "Webhook"
        MANUAL = "manual", "Manual"
        REPLAY = "replay", "Replay"
        BACKFILL = "backfill", "Backfill"
        DRY_RUN = "dry_run", "Dry run"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial (some records failed)"
        FAILED = "failed", "Failed"
        ABANDONED = "abandoned", "Abandoned (its worker stopped; see the message)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sync_runs")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    triggered_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Run #{self.pk} {self.flow or self.tenant} ({self.status})"


class AuditEntry(AppendOnlyModel):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        UNCHANGED = "unchanged", "Unchanged"
        SKIPPED = "skipped", "Skipped"
        QUARANTINED = "quarantined", "Quarantined"
        FAILED = "failed", "Failed"
        RETRYING = "retrying", "Failed, will retry"
        PLANNED = "planned", "Planned (dry run)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_entries")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="entries")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True)
    record_link = models.ForeignKey(
        RecordLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_entries"
    )
    inbound_event = models.ForeignKey(InboundEvent, on_delete=models.SET_NULL, null=True, blank=True)
    replay_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    operation = models.CharField(max_length=50)
    status = models.CharField(max_length=12, choices=Status.choices)
    record_key = models.CharField(max_length=200, blank=True, db_index=True, help_text="Natural key")
    idempotency_key = models.CharField(max_length=200, blank=True)
    source_snapshot = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    field_diff = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    actor = models.CharField(max_length=150, default="system")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.operation} {self.record_key} ({self.status})"


class ApiCall(AppendOnlyModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True)
    run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls"
    )
    record_link = models.ForeignKey(
        RecordLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls"
    )
    system = models.CharField(max_length=20, db_index=True)
    method = models.CharField(max_length=10)
    url = models.TextField(help_text="Redacted")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    attempt = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    request_excerpt = models.TextField(blank=True, help_text="Redacted, truncated")
    response_excerpt = models.TextField(blank=True, help_text="Redacted, truncated")
    started_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "API call"

    def __str__(self) -> str:
        return f"{self.system} {self.method} {self.url} → {self.status_code or self.error[:40]}"


class Alert(models.Model):
    """One operator alert, deduplicated by (tenant, kind, subject): repeats bump a counter, and a
    notification goes out again only after the cooldown
    (integrations/flows/operations/alerts.py). Also the model that carries
    the console's custom permissions (replay, run sync)."""

    class Kind(models.TextChoices):
        WEBHOOK_FAILING = "webhook_failing", "Asana webhook failing or gone"
        MAPPING_DRIFT = "mapping_drift", "Mapping drift"
        RECORD_FAILING = "record_failing", "Record failing repeatedly"
        AGENT_UNREACHABLE = "agent_unreachable", "Sage 100 agent unreachable"
        TOKEN_REFRESH = "token_refresh", "Token refresh failing"
        ACUMATICA_SEATS = "acumatica_seats", "Acumatica API seats exhausted"
        RECONCILIATION = "reconciliation", "Reconciliation: a class of difference appeared"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    subject = models.CharField(max_length=200, help_text="What it is about, e.g. the webhook or record")
    message = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True, help_text="Console page behind the alert")
    first_raised_at = models.DateTimeField(auto_now_add=True)
    last_raised_at = models.DateTimeField(db_index=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    count = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_task_gid = models.CharField(max_length=32, blank=True, help_text="Asana ops-project task")

    class Meta:
        ordering = ["-last_raised_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "subject"], name="alert_unique_subject")
        ]
        permissions = [
            ("replay_records", "Can replay records and audit entries"),
            ("run_sync", "Can run syncs and dry runs from the console"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


from .reports import EvidenceExport, ReconciliationDifference, ReconciliationRun  # noqa: E402,F401
