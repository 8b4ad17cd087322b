"""Drift detection: the project's live custom fields against the flow's mappings, always by GID.

    renamed field        cached_name updated, noted in the audit trail; the mapping keeps working
    field removed        mapping broken ("removed from the project")
    type changed         mapping broken ("type changed from number to text")
    enum option gone or disabled for a mapped value
                         mapping broken, naming the value and the option
A broken mapping shows in the console (FieldMapping.status / Flow.mapping_status with reasons). The
records it affects are quarantined when they are processed (plan.py checks the same live definitions
per record), so only those records stop; the rest keep flowing. Nothing is ever written by name.
Runs on a schedule (tasks.documents.check_drift), at the start of every polling pass and in
`connector check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from integrations.models import Flow

from .models import FieldMapping, ValueMapping


@dataclass
class DriftReport:
    flow: Flow
    renamed: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.broken

    def summary(self) -> str:
        parts = [f"{self.checked} mapping(s) checked"]
        if self.renamed:
            parts.append("renamed: " + "; ".join(self.renamed))
        if self.broken:
            parts.append("BROKEN: " + "; ".join(self.broken))
        return ", ".join(parts)


def mapping_problems(mapping: FieldMapping, live: Any) -> list[str]:
    if live is None:
        return ["the custom field was removed from the project"]
    problems = []
    if mapping.cached_type and live.type != mapping.cached_type:
        problems.append(f"the field's type changed from {mapping.cached_type} to {live.type}")
    if live.is_formula_field or live.is_value_read_only:
        problems.append("the field became read-only (formula or locked value)")
    if live.type in ("enum", "multi_enum"):
        for value in mapping.value_mappings.all():
            if value.kind != ValueMapping.Kind.ENUM_OPTION:
                continue
            option = live.enum_options.get(value.target_value)
            if option is None:
                problems.append(
                    f"value {value.source_value!r} maps to {value.target_value}, not an option of it"
                )
            elif not option.enabled:
                problems.append(
                    f"value {value.source_value!r} maps to option {option.name!r} ({option.gid}), "
                    "now disabled"
                )
    return problems


def check_flow(flow: Flow, asana: Any, *, specs: Mapping[str, Any] | None = None) -> DriftReport:
    """Compare and record; `specs` saves the read when the caller has fresh definitions."""
    from audit.recorder import record_entry

    if specs is None:
        specs = asana.project_custom_fields(flow.asana_project_gid)
    report = DriftReport(flow)
    now = timezone.now()
    mappings = FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ASANA)
    for mapping in mappings.prefetch_related("value_mappings"):
        report.checked += 1
        live = specs.get(mapping.asana_field_gid)
        name = mapping.cached_name or mapping.asana_field_gid
        label = f"{mapping.source_path} → {name} ({mapping.asana_field_gid})"
        updates: dict[str, Any] = {"last_checked_at": now}
        if live is not None and live.name and live.name != mapping.cached_name:
            report.renamed.append(f"{label} is now called {live.name!r}")
            record_entry(
                tenant=flow.tenant,
                flow=flow,
                operation="mapping_renamed",
                status="succeeded",
                record_key=f"field:{mapping.asana_field_gid}",
                field_diff={"cached_name": [mapping.cached_name, live.name]},
                error=f"Asana field {mapping.asana_field_gid} renamed; the mapping follows its GID",
            )
            updates["cached_name"] = live.name
        problems = mapping_problems(mapping, live)
        if problems:
            report.broken.append(f"{label}: " + "; ".join(problems))
        updates["status"] = FieldMapping.Status.BROKEN if problems else FieldMapping.Status.OK
        updates["status_reason"] = "; ".join(problems)
        if live is not None and live.type == "number":
            updates["precision"] = live.precision
        FieldMapping.objects.filter(pk=mapping.pk).update(**updates)
    if flow.erp_reference_field_gid:
        ref = specs.get(flow.erp_reference_field_gid)
        if ref is None or ref.type != "text":
            report.broken.append(
                f"ERP reference field {flow.erp_reference_field_gid} is "
                + ("not on the project" if ref is None else f"a {ref.type} field, not text")
                + ": creates cannot be reconciled"
            )
    status = Flow.MappingStatus.OK if report.ok else Flow.MappingStatus.BROKEN
    Flow.objects.filter(pk=flow.pk).update(
        mapping_status=status, mapping_status_reason="\n".join(report.broken)
    )
    flow.mapping_status, flow.mapping_status_reason = status, "\n".join(report.broken)
    return report
