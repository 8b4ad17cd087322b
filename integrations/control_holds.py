"""A finance control's hold on a document's release (issue 20): today the duplicate-invoice hold.

A hold is created by the documents flow when a bill's task is created and the bill looks like a
duplicate; the approvals flow releases nothing while an uncleared hold exists; an operator clears it in
the console with a reason (audited). Rows are kept (who cleared what, when and why is audit evidence).
"""

from __future__ import annotations

from django.db import models


class ControlHold(models.Model):
    class Kind(models.TextChoices):
        DUPLICATE = "duplicate", "Possible duplicate invoice"

    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, related_name="control_holds")
    link = models.ForeignKey(
        "integrations.RecordLink", on_delete=models.CASCADE, related_name="control_holds"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DUPLICATE)
    reason = models.TextField()
    duplicate_of = models.CharField(max_length=200, blank=True)  # "Bill 000123" (and its task, if any)
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.CharField(max_length=150, blank=True)
    clear_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "cleared_at"])]

    def __str__(self) -> str:
        state = "cleared" if self.cleared_at else "held"
        return f"{self.get_kind_display()} on {self.link} ({state})"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None
