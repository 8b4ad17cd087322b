"""The setup wizard in the console: five pages on the admin site, each saved, resumable, back and
forward (integrations/setup/steps.py does the work; this module is forms and pages).

    /admin/setup/                         the tenants the user administers, with their step; "new"
    /admin/setup/new/                     step 1 for a new customer (superusers: a tenant is theirs)
    /admin/setup/<slug>/<step>/           steps 1–5 of one tenant (the administer role on it)

Tenant-scoped like the rest of the console: another tenant's pages answer 404, a tenant where the
user's role is below administer answers 403 (tenancy.get_scoped_or_404).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from integrations.base import errors
from integrations.membership import Role
from integrations.models import AcumaticaConnection, SetupProgress, Tenant
from integrations.setup import steps

from .tenancy import get_scoped_or_404, scope

TEMPLATE = "admin/console/wizard/step.html"


def step_url(tenant: Tenant, step: int, **query: str) -> str:
    url = reverse("admin:setup_step", args=[tenant.slug, step])
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return url


# ---- forms ----------------------------------------------------------------------------------------


class CompanyForm(forms.Form):
    name = forms.CharField(label="Company name", max_length=200)
    slug = forms.SlugField(label="Short name", help_text="Used by commands, e.g. 'acme'.")
    instance_url = forms.URLField(
        label="Acumatica instance URL",
        max_length=500,
        assume_scheme="https",
        help_text="With the instance path, e.g. https://erp.acme.com/AcumaticaERP",
    )
    endpoint_version = forms.ChoiceField(
        label="Endpoint version", required=False, choices=[("", "(discover from the instance)")]
    )
    auth_mode = forms.ChoiceField(label="Sign-in", choices=AcumaticaConnection.AuthMode.choices)
    client_id = forms.CharField(
        label="OAuth client ID", required=False, help_text="GUID@Tenant, from SM303010"
    )
    client_secret = forms.CharField(
        label="OAuth client secret",
        required=False,
        widget=forms.PasswordInput,
        help_text="Leave blank to keep the stored one.",
    )
    username = forms.CharField(label="API user", required=False)
    password = forms.CharField(
        label="Password",
        required=False,
        widget=forms.PasswordInput,
        help_text="Leave blank to keep the stored one.",
    )
    tenant_login_name = forms.CharField(label="Acumatica tenant (company)", required=False)
    uses_approval_maps = forms.BooleanField(
        label="Bills and POs go through Acumatica approval maps", required=False
    )

    def __init__(self, *args: Any, versions: list[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if versions:
            self.fields["endpoint_version"].choices = [(v, v) for v in reversed(versions)] + [
                ("", "(the newest the instance lists)")
            ]


class AsanaForm(forms.Form):
    api_base_url = forms.URLField(
        label="Asana API", initial="https://app.asana.com/api/1.0", assume_scheme="https"
    )
    token = forms.CharField(
        label="Personal access or service-account token",
        required=False,
        widget=forms.PasswordInput,
        help_text="Leave blank to keep the stored one.",
    )
    workspace = forms.ChoiceField(label="Workspace", required=False, choices=[])
    requests_per_minute = forms.IntegerField(
        label="Rate budget (requests per minute)",
        initial=1500,
        min_value=1,
        help_text="1500 on paid Asana plans, 150 on free ones.",
    )


def _flow_form(choices: steps.FlowChoices) -> type[forms.Form]:
    """A form for one documents flow: section, a field per role (all the project's fields, by name and
    type), and an option per vendor when the vendor field is an enum."""
    from integrations.flows.onboarding.proposal import ROLE_LABELS

    specs = sorted(choices.specs.items(), key=lambda kv: kv[1].name.lower())
    field_choices = [("", "(not mapped)")] + [(gid, f"{s.name} ({s.type})") for gid, s in specs]
    attrs: dict[str, Any] = {
        "section": forms.ChoiceField(
            label="Section for new tasks", required=False, choices=[("", "(none)")] + choices.sections
        )
    }
    for role, label in ROLE_LABELS.items():
        attrs[f"field_{role}"] = forms.ChoiceField(label=label, required=False, choices=field_choices)
    prop = choices.proposal
    vendor_spec = choices.specs.get(prop.fields.get("vendor", "")) if prop else None
    if prop and vendor_spec is not None and vendor_spec.type == "enum":
        options = [("", "(no option: documents of this vendor are held back)")] + [
            (o.gid, o.name) for o in vendor_spec.enum_options.values() if o.enabled
        ]
        for match in prop.vendors:
            attrs[f"vendor_{match.vendor_id}"] = forms.ChoiceField(
                label=f"{match.vendor_id} · {match.vendor_name}", required=False, choices=options
            )
    return type("FlowForm", (forms.Form,), attrs)


# ---- pages ----------------------------------------------------------------------------------------


class SetupWizard:
    def __init__(self, site: Any):
        self.site = site

    def urls(self) -> list:
        view = self.site.admin_view
        return [
            path("setup/", view(self.index), name="setup_index"),
            path("setup/new/", view(self.new), name="setup_new"),
            path("setup/<slug:slug>/<int:step>/", view(self.step), name="setup_step"),
        ]

    def _context(self, request, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.site.each_context(request), "title": title, **extra}

    def index(self, request):
        tenants = scope(Tenant.objects.all(), request.user, Role.ADMINISTER).order_by("name")
        progress = {p.tenant_id: p for p in SetupProgress.objects.filter(tenant__in=tenants)}
        rows = [(t, progress.get(t.pk)) for t in tenants]
        return TemplateResponse(
            request,
            "admin/console/wizard/index.html",
            self._context(
                request,
                "Set up a customer",
                rows=rows,
                steps=steps.STEPS,
                can_create=request.user.is_superuser,
            ),
        )

    def new(self, request):
        if not request.user.is_superuser:
            raise PermissionDenied  # a new tenant is a superuser's (who then grants memberships)
        return self._company(request, None)

    def step(self, request, slug: str, step: int):
        tenant = get_scoped_or_404(request.user, Tenant.objects.all(), Role.ADMINISTER, slug=slug)
        progress = steps.progress_of(tenant)
        if step < 1 or step > 5:
            return redirect(step_url(tenant, progress.step))
        if step > progress.step:
            messages.warning(request, f"Step {progress.step} comes first.")
            return redirect(step_url(tenant, progress.step))
        handler = {1: self._company, 2: self._asana, 3: self._flows, 4: self._fit, 5: self._switch_on}[step]
        return handler(request, tenant)

    def _render(self, request, tenant: Tenant | None, step: int, **extra: Any):
        progress = steps.progress_of(tenant) if tenant else None
        nav = [
            (n, name, step_url(tenant, n) if tenant and progress and n <= progress.step else "")
            for n, name in steps.STEPS.items()
        ]
        return TemplateResponse(
            request,
            TEMPLATE,
            self._context(
                request,
                f"Set up {tenant.name if tenant else 'a new customer'} · {step}. {steps.STEPS[step]}",
                tenant=tenant,
                step=step,
                progress=progress,
                nav=nav,
                back=step_url(tenant, step - 1) if tenant and step > 1 else "",
                forward=step_url(tenant, step + 1) if tenant and progress and step < progress.step else "",
                **extra,
            ),
        )

    # -- step 1
    def _company(self, request, tenant: Tenant | None):
        conn = AcumaticaConnection.objects.filter(tenant=tenant).first() if tenant else None
        initial: dict[str, Any] = {"auth_mode": "oauth_password"}
        if tenant:
            initial.update(name=tenant.name, slug=tenant.slug)
        if conn:
            initial.update(
                {
                    f: getattr(conn, f)
                    for f in (
                        "instance_url",
                        "endpoint_version",
                        "auth_mode",
                        "client_id",
                        "username",
                        "tenant_login_name",
                        "uses_approval_maps",
                    )
                }
            )
        versions: list[str] = []
        problems: dict[str, str] = {}
        endpoints = None
        data = request.POST if request.method == "POST" else None
        url = (data or {}).get("instance_url") or initial.get("instance_url")
        if url and (data is not None or conn):
            try:
                endpoints = steps.discover_endpoints(url)
                versions = endpoints.default_versions()
            except steps.StepError as exc:
                problems = exc.problems
        form = CompanyForm(data, initial=initial, versions=versions)
        if tenant:
            form.fields["slug"].disabled = True
        verdicts = _verdicts(conn)
        if data is not None and request.POST.get("action") == "save" and form.is_valid() and not problems:
            answers = steps.CompanyAnswers(
                **{
                    k: form.cleaned_data[k]
                    for k in (
                        "name",
                        "slug",
                        "instance_url",
                        "endpoint_version",
                        "auth_mode",
                        "client_id",
                        "client_secret",
                        "username",
                        "password",
                        "tenant_login_name",
                        "uses_approval_maps",
                    )
                }
            )
            if tenant:
                answers.slug = tenant.slug
            try:
                tenant, verdicts = steps.save_company(tenant, answers)
            except steps.StepError as exc:
                problems = exc.problems
            else:
                if all(v.ok for v in verdicts):
                    messages.success(request, "Acumatica: every check passed. Next: Asana.")
                else:
                    messages.error(request, "Acumatica: some checks did not pass — see below.")
                return redirect(step_url(tenant, 1))
        return self._render(
            request,
            tenant,
            1,
            form=form,
            problems=problems,
            verdicts=verdicts,
            endpoints=endpoints,
            ready=bool(tenant and steps.progress_of(tenant).step >= 2),
        )

    # -- step 2
    def _asana(self, request, tenant: Tenant):
        conn = getattr(tenant, "asana", None) if hasattr(tenant, "asana") else None
        initial = {
            "api_base_url": conn.api_base_url if conn else "https://app.asana.com/api/1.0",
            "workspace": conn.workspace_gid if conn else "",
            "requests_per_minute": conn.requests_per_minute if conn else 1500,
        }
        data = request.POST if request.method == "POST" else None
        form = AsanaForm(data, initial=initial)
        problems: dict[str, str] = {}
        user = None
        base = (data or {}).get("api_base_url") or initial["api_base_url"]
        token = (data or {}).get("token", "")
        if data is not None or conn:
            try:
                user = steps.asana_workspaces(base, token, tenant)
                form.fields["workspace"].choices = user.workspaces
            except steps.StepError as exc:
                problems = exc.problems
        if data is not None and request.POST.get("action") == "save" and user and form.is_valid():
            try:
                steps.save_asana(
                    tenant,
                    form.cleaned_data["api_base_url"],
                    form.cleaned_data["token"],
                    form.cleaned_data["workspace"],
                    form.cleaned_data["requests_per_minute"],
                )
            except steps.StepError as exc:
                problems = exc.problems
            else:
                messages.success(request, f"Asana: the token acts as {user.name}. Next: the flows.")
                return redirect(step_url(tenant, 3))
        return self._render(request, tenant, 2, form=form, problems=problems, token_user=user)

    # -- step 3
    def _flows(self, request, tenant: Tenant):
        key = request.GET.get("flow") or "bills"
        if key not in steps.FLOW_KINDS:
            key = "bills"
        project = request.POST.get("project") or request.GET.get("project", "")
        problems: dict[str, str] = {}
        try:
            choices = steps.flow_choices(tenant, key, project)
        except (errors.ConnectorError, errors.ConfigurationError) as exc:
            return self._render(
                request, tenant, 3, flow_key=key, error=f"Asana or Acumatica could not be read: {exc}"
            )
        form_class = _flow_form(choices) if choices.project_gid else None
        if request.method == "POST" and request.POST.get("action") == "skip":
            steps.save_flow(tenant, key, "", "", {}, enabled=False)
            messages.info(request, f"{steps.FLOW_NAMES[key]}: not synced.")
            return redirect(self._after_flow(tenant, key))
        form = None
        if form_class is not None:
            initial = {
                f"field_{r}": g for r, g in (choices.proposal.fields if choices.proposal else {}).items()
            }
            initial["section"] = choices.section_gid
            for match in choices.proposal.vendors if choices.proposal else []:
                initial[f"vendor_{match.vendor_id}"] = match.option_gid
            form = form_class(request.POST if request.method == "POST" else None, initial=initial)
            if request.method == "POST" and request.POST.get("action") == "save" and form.is_valid():
                cd = form.cleaned_data
                chosen = {r: cd[f"field_{r}"] for r in ("amount", "due_date", "vendor", "reference")}
                vendors = {k[len("vendor_") :]: v for k, v in cd.items() if k.startswith("vendor_")}
                try:
                    steps.save_flow(tenant, key, choices.project_gid, cd["section"], chosen, vendors)
                except steps.StepError as exc:
                    problems = exc.problems
                else:
                    messages.success(request, f"{steps.FLOW_NAMES[key]}: saved (not switched on yet).")
                    return redirect(self._after_flow(tenant, key))
        rows = []
        if form is not None:
            for name in form.fields:
                if name.startswith("field_"):
                    rows.append((form[name], problems.get(name, "")))
        vendor_rows = [form[n] for n in form.fields if n.startswith("vendor_")] if form else []
        return self._render(
            request,
            tenant,
            3,
            flow_key=key,
            flow_name=steps.FLOW_NAMES[key],
            choices=choices,
            form=form,
            field_rows=rows,
            vendor_rows=vendor_rows,
            problems=problems,
            flow_tabs=[
                (k, steps.FLOW_NAMES[k], steps.existing_flow(tenant, k) is not None) for k in steps.FLOW_KINDS
            ],
        )

    @staticmethod
    def _after_flow(tenant: Tenant, key: str) -> str:
        keys = list(steps.FLOW_KINDS)
        if key != keys[-1]:
            return step_url(tenant, 3, flow=keys[keys.index(key) + 1])
        if steps.progress_of(tenant).step >= 4:
            return step_url(tenant, 4)
        return step_url(tenant, 3, flow=keys[0])

    # -- step 4
    def _fit(self, request, tenant: Tenant):
        if request.method == "POST":
            try:
                steps.run_fit_report(tenant)
            except (errors.ConnectorError, errors.ConfigurationError) as exc:
                messages.error(request, f"The fit report could not be made: {exc}")
            return redirect(step_url(tenant, 4))
        progress = steps.progress_of(tenant)
        return self._render(request, tenant, 4, report=progress.fit_report, report_at=progress.fit_report_at)

    # -- step 5
    def _switch_on(self, request, tenant: Tenant):
        if request.method == "POST" and request.POST.get("action") == "switch_on":
            try:
                names = steps.switch_on(tenant)
            except steps.StepError as exc:
                messages.error(request, "; ".join(exc.problems.values()))
            else:
                messages.success(request, f"Switched on: {', '.join(names)}. Webhook registration queued.")
            return redirect(step_url(tenant, 5))
        progress = steps.progress_of(tenant)
        # A new header value is shown in this answer only (no redirect): it is never shown again.
        fresh = request.method == "POST" and request.POST.get("action") == "new_push_value"
        return self._render(
            request,
            tenant,
            5,
            push=steps.push_settings(tenant, new_value=fresh),
            state=steps.verification(tenant),
            flows=steps.flows_of(tenant),
            switched_on=progress.switched_on_at,
        )


def _verdicts(conn: AcumaticaConnection | None) -> list:
    """The last test's lines, as stored on the connection, in the operator's words again."""
    from integrations.flows.onboarding.acumatica import Verdict, _advice

    if conn is None or not conn.last_check_message:
        return []
    out = []
    for line in conn.last_check_message.splitlines():
        status, _, rest = line.partition(" ")
        what, _, detail = rest.partition(": ")
        ok = status == "ok"
        out.append(Verdict(ok, what, detail, "" if ok else _advice(what)))
    return out


def install(site: Any) -> None:
    """Prepend the wizard's pages to the admin site's URLs (console/site.py calls this once)."""
    wizard = SetupWizard(site)
    original = site.get_urls

    def get_urls():
        return wizard.urls() + original()

    site.get_urls = get_urls
