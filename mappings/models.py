"""How ERP values land in Asana custom fields (and back): always by GID, never by name."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from integrations.models import Flow, Tenant
from integrations.validators import validate_gid


class FieldMapping(models.Model):
    class FieldType(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        ENUM = "enum", "Single-select"
        MULTI_ENUM = "multi_enum", "Multi-select"
        DATE = "date", "Date"
        PEOPLE = "people", "People"

    class Direction(models.TextChoices):
        TO_ASANA = "to_asana", "ERP → Asana"
        TO_ERP = "to_erp", "Asana → ERP"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        BROKEN = "broken", "Broken"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="field_mappings")
    source_path = models.CharField(
        max_length=200, help_text="Path in the ERP record, e.g. Amount, VendorID, custom/Document/UsrJob"
    )
    asana_field_gid = models.CharField(max_length=32, validators=[validate_gid])
    cached_name = models.CharField(max_length=200, blank=True, help_text="For display only")
    cached_type = models.CharField(max_length=20, choices=FieldType.choices, blank=True)
    precision = models.PositiveSmallIntegerField(null=True, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.TO_ASANA)
    transform = models.CharField(max_length=50, blank=True, help_text="Optional named conversion")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK)
    status_reason = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["flow", "source_path"]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "asana_field_gid", "direction"], name="fieldmapping_unique_target"
            )
        ]

    def __str__(self) -> str:
        arrow = "→" if self.direction == self.Direction.TO_ASANA else "←"
        return f"{self.source_path} {arrow} {self.cached_name or self.asana_field_gid}"


class ValueMapping(models.Model):
    """One source value → one target value (an enum option GID, a Sage vendor, a GL account…)."""

    class Kind(models.TextChoices):
        ENUM_OPTION = "enum_option", "Enum option"
        VENDOR = "vendor", "Vendor"
        COST_CODE = "cost_code", "Cost code → GL account"
        OTHER = "other", "Other"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="value_mappings")
    field_mapping = models.ForeignKey(
        FieldMapping, on_delete=models.CASCADE, null=True, blank=True, related_name="value_mappings"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ENUM_OPTION)
    source_value = models.CharField(max_length=300)
    target_value = models.CharField(max_length=300)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["tenant", "kind", "source_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind", "field_mapping", "source_value"],
                name="valuemapping_unique_source",
            ),
            models.UniqueConstraint(
                fields=["tenant", "kind", "source_value"],
                condition=Q(field_mapping__isnull=True),
                name="valuemapping_unique_source_tenantwide",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.source_value} → {self.target_value}"


class UserMapping(models.Model):
    """One person across systems, matched by lower-cased e-mail."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="user_mappings")
    email = models.EmailField()
    display_name = models.CharField(max_length=200, blank=True)
    asana_user_gid = models.CharField(max_length=32, blank=True, validators=[validate_gid])
    acumatica_employee_id = models.CharField(max_length=30, blank=True)
    sage_user = models.CharField(max_length=50, blank=True)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "email"]
        constraints = [models.UniqueConstraint(fields=["tenant", "email"], name="usermapping_unique_email")]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)
