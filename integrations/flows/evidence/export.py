"""Produce an evidence export (recorded: an EvidenceExport row with its SHA-256 and an AuditEntry
`evidence.export`), and verify a file against the recorded hashes later."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from audit.models import EvidenceExport
from audit.recorder import record_entry
from integrations.models import Flow, Tenant

from .render import Header, to_csv, to_pdf
from .rows import EvidenceRow, build_rows

FORMATS = ("csv", "pdf")


@dataclass
class Export:
    content: bytes
    record: EvidenceExport
    rows: list[EvidenceRow]

    @property
    def sha256(self) -> str:
        return self.record.sha256

    @property
    def filename(self) -> str:
        r = self.record
        flow = f"-flow{r.flow_id}" if r.flow_id else ""
        return f"evidence-{r.tenant.slug}-{r.period_start}-{r.period_end}{flow}.{r.format}"


def produce(
    tenant: Tenant, start: date, end: date, *, fmt: str, actor: str, flow: Flow | None = None
) -> Export:
    """Build the rows, render them, and record the export (who, what, the content's SHA-256)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if end < start:
        raise ValueError("the period ends before it starts")
    if flow is not None and flow.tenant_id != tenant.pk:
        raise ValueError(f"flow {flow.pk} is not a flow of {tenant.slug}")
    rows = build_rows(tenant, start, end, flow=flow)
    if fmt == "csv":
        content = to_csv(rows)
    else:
        header = Header(
            tenant=f"{tenant.name} ({tenant.slug})",
            period=f"{start} to {end}",
            flow=flow.name if flow else "all flows",
            generated_at=timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
            generated_by=actor,
        )
        content = to_pdf(rows, header)
    digest = hashlib.sha256(content).hexdigest()
    exceptions = sum(1 for r in rows if r.is_exception)
    record = EvidenceExport.objects.create(
        tenant=tenant,
        flow=flow,
        period_start=start,
        period_end=end,
        format=fmt,
        sha256=digest,
        size_bytes=len(content),
        documents=len(rows),
        exceptions=exceptions,
        created_by=actor,
    )
    record_entry(
        tenant=tenant,
        flow=flow,
        operation="evidence.export",
        status="succeeded",
        record_key=f"evidence:{record.pk}",
        actor=actor,
        payload={
            "export": record.pk,
            "format": fmt,
            "period": [str(start), str(end)],
            "flow": flow.pk if flow else None,
            "sha256": digest,
            "documents": len(rows),
            "exceptions": exceptions,
        },
    )
    return Export(content, record, rows)


def verify(content: bytes, *, tenants=None, actor: str = "") -> EvidenceExport | None:
    """The recorded export whose SHA-256 is this content's, or None (altered, or not ours).
    `tenants`: the tenant ids the caller may see (None: all). A check is recorded when it matches."""
    digest = hashlib.sha256(content).hexdigest()
    found = EvidenceExport.objects.filter(sha256=digest).select_related("tenant")
    if tenants is not None:
        found = found.filter(tenant_id__in=tenants)
    record = found.order_by("created_at").first()
    if record is not None and actor:
        record_entry(
            tenant=record.tenant,
            operation="evidence.verify",
            status="succeeded",
            record_key=f"evidence:{record.pk}",
            actor=actor,
            payload={"export": record.pk, "sha256": digest},
        )
    return record


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
