"""Auditor evidence in the console: the export page (tenant, period, optional flow, CSV or PDF → the file,
with its SHA-256 in the `X-Evidence-SHA256` header and on the exports list) and the verify page (upload
a file: is it, byte for byte, an export we recorded?). Exports are listed read-only.

Exporting needs `can_export_evidence` on the tenant (the auditor role, or administer); verifying needs
it on at least one tenant and only matches exports of tenants the user may export.
"""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit.models import EvidenceExport
from integrations.flows import evidence
from integrations.membership import EVIDENCE_ROLES
from integrations.models import Flow, Tenant

from .permissions import can_export_evidence
from .tenancy import ReadOnlyAdmin, roles, scope

MAX_VERIFY_BYTES = 50 * 1024 * 1024


def exportable_tenants(user):
    qs = scope(Tenant.objects.all(), user)
    if user.is_superuser:
        return qs
    return qs.filter(pk__in=[t for t, r in roles(user).items() if r in EVIDENCE_ROLES])


class ExportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())
    period_start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    flow = forms.ModelChoiceField(queryset=Flow.objects.none(), required=False, empty_label="All flows")
    format = forms.ChoiceField(choices=EvidenceExport.Format.choices)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        tenants = exportable_tenants(user)
        self.fields["tenant"].queryset = tenants
        self.fields["flow"].queryset = Flow.objects.filter(tenant__in=tenants).select_related("tenant")

    def clean(self):
        data = super().clean()
        flow, tenant = data.get("flow"), data.get("tenant")
        if flow is not None and tenant is not None and flow.tenant_id != tenant.pk:
            self.add_error("flow", "That flow belongs to another tenant.")
        if data.get("period_start") and data.get("period_end") and data["period_end"] < data["period_start"]:
            self.add_error("period_end", "The period ends before it starts.")
        return data


class VerifyForm(forms.Form):
    file = forms.FileField()


class EvidenceExportAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "tenant",
        "format",
        "documents",
        "exceptions",
        "sha256",
        "created_by",
        "created_at",
    )
    list_filter = ("tenant", "format")
    change_list_template = "admin/console/evidence_changelist.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("export/", wrap(self.export_view), name="audit_evidenceexport_export"),
            path("verify/", wrap(self.verify_view), name="audit_evidenceexport_verify"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "can_export": can_export_evidence(request.user)}
        return super().changelist_view(request, extra_context=extra)

    def _context(self, request, **more):
        return {
            **self.admin_site.each_context(request),
            "opts": EvidenceExport._meta,
            **more,
        }

    def export_view(self, request):
        if not can_export_evidence(request.user):
            raise PermissionDenied
        if request.method == "POST":
            form = ExportForm(request.POST, user=request.user)
            if form.is_valid():
                data = form.cleaned_data
                if not can_export_evidence(request.user, data["tenant"].pk):
                    raise PermissionDenied
                result = evidence.produce(
                    data["tenant"],
                    data["period_start"],
                    data["period_end"],
                    fmt=data["format"],
                    actor=request.user.get_username(),
                    flow=data.get("flow"),
                )
                content_type = "text/csv; charset=utf-8" if data["format"] == "csv" else "application/pdf"
                response = HttpResponse(result.content, content_type=content_type)
                response["Content-Disposition"] = f'attachment; filename="{result.filename}"'
                response["X-Evidence-SHA256"] = result.sha256
                return response
        else:
            today = date.today()
            first = today.replace(day=1)
            form = ExportForm(
                user=request.user,
                initial={
                    "period_start": (first - timedelta(days=1)).replace(day=1),
                    "period_end": first - timedelta(days=1),
                    "format": "pdf",
                },
            )
        return TemplateResponse(
            request,
            "admin/console/evidence_export.html",
            self._context(request, title="Export auditor evidence", form=form),
        )

    def verify_view(self, request):
        if not can_export_evidence(request.user):
            raise PermissionDenied
        result = None
        form = VerifyForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            content = upload.read(MAX_VERIFY_BYTES + 1)
            allowed = (
                None
                if request.user.is_superuser
                else list(exportable_tenants(request.user).values_list("pk", flat=True))
            )
            record = evidence.verify(content, tenants=allowed, actor=request.user.get_username())
            result = {
                "sha256": evidence.sha256_hex(content),
                "record": record,
                "name": upload.name,
            }
        return TemplateResponse(
            request,
            "admin/console/evidence_verify.html",
            self._context(request, title="Verify an evidence export", form=form, result=result),
        )


def install(site: admin.AdminSite) -> None:
    if EvidenceExport not in site._registry:
        site.register(EvidenceExport, EvidenceExportAdmin)


def export_url() -> str:
    return reverse("admin:audit_evidenceexport_export")
