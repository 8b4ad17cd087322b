"""What the auditor and reconciliation features keep: each evidence export (its parameters and the
SHA-256 of its content, so a file handed to an auditor can be verified later) and each reconciliation
run with the differences it found (so the trend per class is visible run over run).

Imported at the end of audit/models.py: these are models of the audit app.
"""

from __future__ import annotations

from django.db import models

from integrations.models import Flow, RecordLink, Tenant


class EvidenceExport(models.Model):
    """One evidence export (integrations/flows/evidence). Only the hash and the parameters are kept: the
    file itself goes to whoever asked for it, and `verify` recomputes its hash against this row."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV (one row per document)"
        PDF = "pdf", "PDF report"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="evidence_exports")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Inclusive")
    format = models.CharField(max_length=3, choices=Format.choices)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.PositiveIntegerField(default=0)
    documents = models.PositiveIntegerField(default=0)
    exceptions = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("export_evidence", "Can export auditor evidence")]

    def __str__(self) -> str:
        return f"Evidence {self.tenant.slug} {self.period_start}…{self.period_end} ({self.format})"


class ReconciliationRun(models.Model):
    """One three-way reconciliation of a tenant (integrations/flows/reconciliation)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial (a system could not be read)"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reconciliation_runs")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    # {class: {"count": n, "amount": "123.45"}} for every class compared (zeros included: a trend).
    totals = models.JSONField(default=dict, blank=True)
    skipped = models.JSONField(default=list, blank=True, help_text="Classes not compared, with why")
    triggered_by = models.CharField(max_length=150, default="schedule")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Reconciliation #{self.pk} {self.tenant.slug} ({self.status})"

    @property
    def difference_count(self) -> int:
        return sum(int(v.get("count", 0)) for v in (self.totals or {}).values())


class ReconciliationDifference(models.Model):
    """One thing that fell between the systems, found by one run."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="differences")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reconciliation_differences")
    flow = models.ForeignKey(Flow, on_delete=models.SET_NULL, null=True, blank=True)
    difference = models.CharField(max_length=30, db_index=True)
    record_link = models.ForeignKey(RecordLink, on_delete=models.SET_NULL, null=True, blank=True)
    key = models.CharField(max_length=200, help_text="The document, task or PO it is about")
    acumatica_type = models.CharField(max_length=30, blank=True)
    acumatica_ref = models.CharField(max_length=30, blank=True)
    asana_task_gid = models.CharField(max_length=32, blank=True)
    sage_po_number = models.CharField(max_length=20, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    detail = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    fix_run = models.ForeignKey(
        "audit.SyncRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["difference", "key", "pk"]

    def __str__(self) -> str:
        return f"{self.difference}: {self.key}"
