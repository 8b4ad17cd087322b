"""A Flow row (+ its mappings) as the plain `FlowSettings` the pure plan needs; the project's live
custom field definitions with a short process-local cache.

Flow.options keys read here (all optional):
    on_source_closed       "complete" (default) | "section" | "leave" — deleted/voided/cancelled documents
    closed_section_gid     the section for "section"
    section_at_create      true (default): place the task in its section with `memberships` in the
                           create call — one write (spec gap ASANA-CREATE-MEMBERSHIPS; the client
                           falls back to addTask if Asana refuses it); false: POST
                           /sections/{gid}/addTask after the create
    create_lease_seconds   how long another worker's create claim is respected (default 120)
    overlap_minutes        polling overlap window (default 5)
    page_size              Acumatica page size for polling (default 100)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from integrations.flows.documents.plan import CLOSE_CHOICES, DOCUMENT_TYPES, FlowSettings
from integrations.models import Flow

SPEC_CACHE_SECONDS = 60.0
_spec_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_spec_lock = threading.Lock()


def flow_settings(flow: Flow) -> FlowSettings:
    from mappings.convert import MappingSpec, People
    from mappings.models import FieldMapping, UserMapping

    mappings = tuple(
        MappingSpec.from_model(m)
        for m in FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ASANA)
        .prefetch_related("value_mappings")
        .order_by("source_path", "pk")
    )
    users = UserMapping.objects.filter(tenant_id=flow.tenant_id, active=True).exclude(asana_user_gid="")
    people = People(
        by_email={u.email.lower(): u.asana_user_gid for u in users},
        by_employee={u.acumatica_employee_id: u.asana_user_gid for u in users if u.acumatica_employee_id},
    )
    options = flow.options or {}
    on_closed = options.get("on_source_closed", "complete")
    if on_closed not in CLOSE_CHOICES:
        on_closed = "complete"
    asana = getattr(flow.tenant, "asana", None)
    external = ""
    if asana is not None and asana.auth_mode == "oauth":
        external = f"ml-connector:{flow.tenant.slug}:"
    return FlowSettings(
        doc=DOCUMENT_TYPES[flow.kind],
        project_gid=flow.asana_project_gid,
        section_gid=flow.asana_section_gid,
        erp_reference_field_gid=flow.erp_reference_field_gid,
        name_template=flow.task_name_template,
        notes_template=flow.task_notes_template,
        mappings=mappings,
        people=people,
        status_filter=tuple(flow.status_filter or ()),
        on_closed=on_closed,
        closed_section_gid=str(options.get("closed_section_gid") or ""),
        external_prefix=external,
    )


def live_field_specs(asana: Any, project_gid: str, *, max_age: float = SPEC_CACHE_SECONDS) -> dict[str, Any]:
    """{field GID: FieldSpec} from GET /projects/{gid}/custom_field_settings, cached `max_age` seconds.

    The cache only saves reads: a field removed meanwhile is refused by Asana and the record is
    quarantined with Asana's message; drift detection reads without the cache.
    """
    key = (str(getattr(asana, "base_url", "")) + "|" + str(getattr(asana, "workspace_gid", "")), project_gid)
    now = time.monotonic()
    with _spec_lock:
        hit = _spec_cache.get(key)
        if hit and max_age > 0 and now - hit[0] < max_age:
            return hit[1]
    specs = asana.project_custom_fields(project_gid)
    with _spec_lock:
        _spec_cache[key] = (now, specs)
    return specs


def forget_field_specs() -> None:
    with _spec_lock:
        _spec_cache.clear()
