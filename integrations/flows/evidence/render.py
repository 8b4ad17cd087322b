"""The two forms of the evidence: CSV (one row per document, every column of EvidenceRow) and a PDF
report (reportlab: a summary page with counts and totals, then one page per exception with the
document's full recorded history).

Both are deterministic for the same rows and header: the PDF is written with reportlab's `invariant`
mode (no creation date or random document id inside), so its SHA-256 depends on the content only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from .rows import COLUMNS, EvidenceRow, as_dict, summary


@dataclass(frozen=True)
class Header:
    tenant: str
    period: str
    flow: str
    generated_at: str
    generated_by: str


def to_csv(rows: list[EvidenceRow]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(as_dict(row))
    return out.getvalue().encode("utf-8")


def _para(text: Any, style) -> Any:
    from xml.sax.saxutils import escape

    from reportlab.platypus import Paragraph

    return Paragraph(escape(str(text if text not in (None, "") else "—")), style)


def to_pdf(rows: list[EvidenceRow], header: Header) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=f"Evidence {header.tenant} {header.period}",
        author="ml-connector",
        invariant=1,
    )
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
        ]
    )
    compact = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("TOPPADDING", (0, 0), (-1, -1), 1),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ]
    )
    stats = summary(rows)
    story: list[Any] = [
        Paragraph("Approval and release evidence", styles["Title"]),
        Paragraph(
            f"Tenant <b>{header.tenant}</b> · period <b>{header.period}</b> · flow <b>{header.flow}</b>",
            styles["Normal"],
        ),
        Paragraph(f"Generated {header.generated_at} by {header.generated_by} (ml-connector)", small),
        Spacer(1, 6 * mm),
        Paragraph("Summary", styles["Heading2"]),
    ]
    table = [["", "Documents", "Amount"], ["All documents", stats["documents"], stats["amount"]]]
    for outcome, v in stats["outcomes"].items():
        table.append([f"Outcome: {outcome}", v["count"], v["amount"]])
    table += [
        ["Changed after approval", stats["changed_after_approval"], ""],
        ["Release refused", stats["refused"], ""],
        ["Replayed by an operator", stats["replayed"], ""],
        ["Exceptions (one page each below)", stats["exceptions"], ""],
    ]
    story.append(Table(table, colWidths=[90 * mm, 35 * mm, 45 * mm], style=grid, hAlign="LEFT"))
    story.append(Spacer(1, 6 * mm))
    story.append(Paragraph("Documents", styles["Heading2"]))
    listing = [["Document", "Flow", "Outcome", "Amount", "Approvals", "Released at", "Exceptions"]]
    for r in rows:
        listing.append(
            [
                _para(r.document, small),
                _para(r.flow, small),
                r.outcome,
                r.amount,
                _para(r.approvals, small),
                _para(r.released_at, small),
                _para(r.exceptions, small),
            ]
        )
    story.append(
        Table(
            listing,
            colWidths=[38 * mm, 30 * mm, 20 * mm, 22 * mm, 70 * mm, 45 * mm, 42 * mm],
            style=grid,
            repeatRows=1,
            hAlign="LEFT",
        )
    )
    for r in (r for r in rows if r.is_exception):
        story += [PageBreak(), Paragraph(f"Exception: {r.document}", styles["Heading1"])]
        # Only what this document has (an empty column says nothing on its own page).
        detail = [
            [name.replace("_", " "), _para(getattr(r, name), small)]
            for name in COLUMNS
            if name != "audit_entries" and getattr(r, name) not in ("", None)
        ]
        story.append(Table(detail, colWidths=[45 * mm, 220 * mm], style=compact, hAlign="LEFT"))
        story.append(Spacer(1, 4 * mm))
        story.append(Paragraph("Recorded history (audit entries)", styles["Heading3"]))
        history = [["#", "At", "Operation", "Status", "Actor", "Detail"]] + [
            [
                h["id"],
                _para(h["at"], small),
                _para(h["operation"], small),
                h["status"],
                _para(h["actor"] + (f" (replay of #{h['replay_of']})" if h["replay_of"] else ""), small),
                _para(h["detail"], small),
            ]
            for h in r.history
        ]
        story.append(
            Table(
                history,
                colWidths=[14 * mm, 45 * mm, 40 * mm, 22 * mm, 40 * mm, 105 * mm],
                style=compact,
                repeatRows=1,
                hAlign="LEFT",
            )
        )
    doc.build(story)
    return buf.getvalue()
