"""Where a tenant's setup stands: the wizard's saved state (integrations/setup/, console/wizard.py,
`connector setup`).

The tenant's own rows (connections, flows, mappings) hold what was decided; this row holds only what
the wizard needs to resume: the furthest step reached, the answers typed but not yet applied (never a
secret: secrets go straight to the encrypted connection fields), the last fit report as printed, and
when the flows were switched on.
"""

from __future__ import annotations

from django.db import models


class SetupProgress(models.Model):
    STEPS = (
        (1, "Company and Acumatica"),
        (2, "Asana"),
        (3, "Flows and field mappings"),
        (4, "Fit report"),
        (5, "Webhooks, push and switch on"),
    )

    tenant = models.OneToOneField("integrations.Tenant", on_delete=models.CASCADE, related_name="setup")
    step = models.PositiveSmallIntegerField(default=1, help_text="The furthest step reached (1–5).")
    answers = models.JSONField(default=dict, blank=True, help_text="Choices kept between steps (no secrets).")
    fit_report = models.JSONField(default=dict, blank=True, editable=False)
    fit_report_at = models.DateTimeField(null=True, blank=True, editable=False)
    switched_on_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "setup progress"
        verbose_name_plural = "setup progress"

    def __str__(self) -> str:
        return f"setup of {self.tenant.slug}: step {self.step}" + (
            " (flows on)" if self.switched_on_at else ""
        )

    @property
    def complete(self) -> bool:
        return self.switched_on_at is not None
