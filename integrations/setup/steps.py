"""One function per wizard step; the console and the CLI call the same ones.

    1 save_company      the tenant and its Acumatica connection; the credentials tested at once
    2 save_asana        the Asana token tested; its workspace chosen
    3 flow_choices /    per documents flow: project, section, fields proposed by name and type,
      save_flow         vendors matched to enum options; a type mismatch refuses the whole step
    4 run_fit_report    the read-only dry run on the customer's last documents (stored)
    5 switch_on         the flows enabled, Asana webhooks registered, polling scheduled; the push
                        URL and header for Acumatica's SM302000 shown and verified live

Every step is saved when it succeeds (the tenant's rows, SetupProgress.step), so the wizard resumes
where it stopped and can go back: a step shown again is filled from the tenant's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from integrations.base import errors
from integrations.flows.onboarding import acumatica as onboard_acu
from integrations.flows.onboarding import asana_discovery, fit, proposal, push
from integrations.models import AcumaticaConnection, AsanaConnection, Flow, SetupProgress, Tenant
from mappings.discovery import apply_selection
from mappings.models import FieldMapping, ValueMapping

STEPS = dict(SetupProgress.STEPS)
FLOW_KINDS = {
    "bills": Flow.Kind.ACUMATICA_BILLS,
    "purchase_orders": Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
}
FLOW_NAMES = {"bills": "AP bills", "purchase_orders": "Purchase orders", "approvals": "Bill approvals"}
NAME_TEMPLATES = {
    "bills": "Bill {ReferenceNbr} · {Vendor} · {Amount}",
    "purchase_orders": "PO {OrderNbr} · {VendorID} · {OrderTotal}",
}
# Documents worth a task before they are released / approved; others are skipped, with the reason.
STATUS_FILTERS = {
    "bills": ["Balanced", "Pending Approval", "On Hold"],
    "purchase_orders": ["Pending Approval", "On Hold", "Open"],
}
SECRET_FIELDS = ("client_secret", "password")


class StepError(Exception):
    """A step's answers cannot be saved; `problems` says why, field by field."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def progress_of(tenant: Tenant) -> SetupProgress:
    return SetupProgress.objects.get_or_create(tenant=tenant)[0]


def reach(tenant: Tenant, step: int) -> SetupProgress:
    progress = progress_of(tenant)
    if step > progress.step:
        progress.step = step
        progress.save(update_fields=["step", "updated_at"])
    return progress


def remember(tenant: Tenant, **answers: Any) -> None:
    progress = progress_of(tenant)
    progress.answers = {**progress.answers, **answers}
    progress.save(update_fields=["answers", "updated_at"])


# ---- step 1 ---------------------------------------------------------------------------------------


@dataclass
class CompanyAnswers:
    name: str
    slug: str
    instance_url: str
    endpoint_version: str = ""
    auth_mode: str = "oauth_password"
    client_id: str = ""
    client_secret: str = ""
    username: str = ""
    password: str = ""
    tenant_login_name: str = ""
    uses_approval_maps: bool = False


def discover_endpoints(instance_url: str) -> onboard_acu.Endpoints:
    """The versions the instance lists (GET /entity), or StepError with the reason in plain words."""
    try:
        return onboard_acu.discover_endpoints(instance_url)
    except (errors.ConnectorError, errors.ConfigurationError) as exc:
        raise StepError(
            {
                "instance_url": f"{instance_url} did not answer as an Acumatica instance ({exc}); "
                "check the URL "
                "including the instance path, e.g. https://erp.example.com/AcumaticaERP"
            }
        ) from exc


def save_company(tenant: Tenant | None, answers: CompanyAnswers) -> tuple[Tenant, list[onboard_acu.Verdict]]:
    """Create or update the tenant and its Acumatica connection, then test the credentials at once.
    A blank secret keeps the stored one. The step counts as done when every verdict holds."""
    endpoints = discover_endpoints(answers.instance_url)
    version = answers.endpoint_version or endpoints.preferred()
    if endpoints.default_versions() and version not in endpoints.default_versions():
        raise StepError(
            {
                "endpoint_version": f"{version} is not listed by the instance; it lists "
                f"{', '.join(endpoints.default_versions())}"
            }
        )
    with transaction.atomic():
        if tenant is None:
            if Tenant.objects.filter(slug=answers.slug).exists():
                raise StepError({"slug": f"a tenant {answers.slug!r} exists already: pick it to resume"})
            tenant = Tenant(slug=answers.slug)
        tenant.name = answers.name
        try:
            tenant.full_clean(validate_unique=False)
        except ValidationError as exc:
            raise StepError({k: "; ".join(v) for k, v in exc.message_dict.items()}) from exc
        tenant.save()
        conn = AcumaticaConnection.objects.filter(tenant=tenant).first() or AcumaticaConnection(tenant=tenant)
        conn.instance_url = answers.instance_url
        conn.endpoint_name = "Default"
        conn.endpoint_version = version
        conn.auth_mode = answers.auth_mode
        conn.client_id = answers.client_id
        conn.username = answers.username
        conn.tenant_login_name = answers.tenant_login_name
        conn.uses_approval_maps = answers.uses_approval_maps
        if endpoints.build:
            conn.build_version = endpoints.build
        for name in SECRET_FIELDS:
            if getattr(answers, name):
                setattr(conn, name, getattr(answers, name))
        try:
            conn.full_clean(exclude=["tenant"])
        except ValidationError as exc:
            raise StepError({k: "; ".join(v) for k, v in exc.message_dict.items()}) from exc
        conn.save()
    verdicts = onboard_acu.verify_credentials(conn)
    reach(tenant, 2 if all(v.ok for v in verdicts) else 1)
    return tenant, verdicts


# ---- step 2 ---------------------------------------------------------------------------------------


def asana_workspaces(
    api_base_url: str, token: str, tenant: Tenant | None = None
) -> asana_discovery.TokenUser:
    """The token's user and workspaces; a blank token uses the stored one."""
    conn = _asana_conn(tenant, api_base_url, token)
    try:
        return asana_discovery.token_user(conn)
    except errors.AuthFailed as exc:
        raise StepError({"token": f"Asana refused the token (401): {exc.message}; create a new one"}) from exc
    except (errors.ConnectorError, errors.ConfigurationError) as exc:
        raise StepError({"api_base_url": f"Asana could not be reached at {api_base_url}: {exc}"}) from exc


def _asana_conn(tenant: Tenant | None, api_base_url: str, token: str) -> AsanaConnection:
    stored = AsanaConnection.objects.filter(tenant=tenant).first() if tenant else None
    conn = AsanaConnection(tenant=tenant, api_base_url=api_base_url, auth_mode="pat")
    conn.personal_access_token = token or (stored.personal_access_token if stored else "")
    if not conn.personal_access_token:
        raise StepError({"token": "enter the Asana personal access (or service account) token"})
    return conn


def save_asana(
    tenant: Tenant, api_base_url: str, token: str, workspace_gid: str, requests_per_minute: int = 1500
) -> asana_discovery.TokenUser:
    user = asana_workspaces(api_base_url, token, tenant)
    if workspace_gid not in dict(user.workspaces):
        raise StepError(
            {
                "workspace": f"the token's user {user.name} is not a member of workspace {workspace_gid}; "
                f"pick one of: {', '.join(n for _g, n in user.workspaces) or 'none'}"
            }
        )
    conn = AsanaConnection.objects.filter(tenant=tenant).first() or AsanaConnection(tenant=tenant)
    conn.api_base_url = api_base_url
    conn.auth_mode = "pat"
    if token:
        conn.personal_access_token = token
    conn.workspace_gid = workspace_gid
    conn.connector_user_gid = user.gid
    conn.requests_per_minute = requests_per_minute
    conn.last_checked_at, conn.last_check_ok = timezone.now(), True
    conn.last_check_message = f"ok token user: {user.name} ({user.gid}); workspace {workspace_gid}"
    conn.save()
    reach(tenant, 3)
    return user


# ---- step 3 ---------------------------------------------------------------------------------------


@dataclass
class FlowChoices:
    """What the operator picks from for one flow: projects, and for the chosen project its sections,
    fields (by name and type), the proposal and the vendor matches."""

    key: str
    projects: list[tuple[str, str]]
    project_gid: str = ""
    sections: list[tuple[str, str]] = field(default_factory=list)
    specs: dict[str, Any] = field(default_factory=dict)
    proposal: proposal.Proposal | None = None
    section_gid: str = ""
    enabled: bool = True


def existing_flow(tenant: Tenant, key: str) -> Flow | None:
    return Flow.objects.filter(tenant=tenant, kind=FLOW_KINDS[key]).order_by("pk").first()


def _current_choice(flow: Flow | None) -> dict[str, str]:
    if flow is None:
        return {}
    chosen = {}
    for role, info in proposal.ROLES.items():
        if role == "reference":
            if flow.erp_reference_field_gid:
                chosen[role] = flow.erp_reference_field_gid
            continue
        m = flow.field_mappings.filter(source_path=info["paths"][flow.kind], direction="to_asana").first()
        if m:
            chosen[role] = m.asana_field_gid
    return chosen


def flow_choices(
    tenant: Tenant, key: str, project_gid: str = "", chosen: dict[str, str] | None = None
) -> FlowChoices:
    conn = tenant.asana
    flow = existing_flow(tenant, key)
    choices = FlowChoices(key, asana_discovery.projects(conn, conn.workspace_gid))
    choices.project_gid = project_gid or (flow.asana_project_gid if flow else "")
    choices.enabled = flow is not None or key == "bills"
    if not choices.project_gid:
        return choices
    choices.section_gid = (
        flow.asana_section_gid if flow and flow.asana_project_gid == choices.project_gid else ""
    )
    choices.sections = asana_discovery.sections(conn, choices.project_gid)
    choices.specs = asana_discovery.fields(conn, choices.project_gid)
    if chosen is None and flow is not None and flow.asana_project_gid == choices.project_gid:
        chosen = _current_choice(flow)
    choices.proposal = proposal.propose(FLOW_KINDS[key], choices.specs, chosen)
    vendor_gid = choices.proposal.fields.get("vendor")
    spec = choices.specs.get(vendor_gid) if vendor_gid else None
    if spec is not None and spec.type == "enum":
        choices.proposal.vendors = proposal.match_vendors(spec, _vendors(tenant))
        stored = _stored_vendor_options(flow, vendor_gid)
        for match in choices.proposal.vendors:
            if match.vendor_id in stored:
                match.option_gid = stored[match.vendor_id]
                match.option_name = getattr(spec.enum_options.get(match.option_gid), "name", "")
    return choices


def _vendors(tenant: Tenant) -> list[dict[str, Any]]:
    from integrations.acumatica.client import client_for

    client = client_for(tenant.acumatica)
    try:
        return [dict(v) for v in client.iter_vendors() if v.get("Status", "Active") == "Active"]
    finally:
        client.close()


def _stored_vendor_options(flow: Flow | None, field_gid: str) -> dict[str, str]:
    if flow is None:
        return {}
    mapping = flow.field_mappings.filter(asana_field_gid=field_gid, direction="to_asana").first()
    if mapping is None:
        return {}
    return dict(mapping.value_mappings.filter(kind="enum_option").values_list("source_value", "target_value"))


def save_flow(
    tenant: Tenant,
    key: str,
    project_gid: str,
    section_gid: str,
    chosen: dict[str, str],
    vendor_options: dict[str, str] | None = None,
    *,
    enabled: bool = True,
) -> FlowChoices:
    """Store one documents flow (disabled until the operator switches it on) and its mappings. A
    refused field stores nothing of the step."""
    if not enabled:
        Flow.objects.filter(tenant=tenant, kind=FLOW_KINDS[key]).delete()
        remember(tenant, **{f"skip_{key}": True})
        _maybe_done(tenant)
        return FlowChoices(key, [])
    if not project_gid:
        raise StepError({"project": "pick the Asana project the tasks go to"})
    choices = flow_choices(tenant, key, project_gid, chosen)
    if section_gid and section_gid not in dict(choices.sections):
        raise StepError({"section": f"section {section_gid} is not in the project"})
    prop = choices.proposal
    assert prop is not None
    if prop.refused:
        raise StepError({f"field_{role}": why for role, why in prop.refused.items()})
    for role in ("amount", "reference"):
        if role not in prop.fields:
            raise StepError(
                {f"field_{role}": f"pick the project's field for the {proposal.ROLE_LABELS[role]}"}
            )
    kind = FLOW_KINDS[key]
    with transaction.atomic():
        flow = existing_flow(tenant, key) or Flow(
            tenant=tenant, kind=kind, name=FLOW_NAMES[key], enabled=False
        )
        flow.asana_project_gid = project_gid
        flow.asana_section_gid = section_gid
        flow.erp_reference_field_gid = prop.fields["reference"]
        flow.task_name_template = flow.task_name_template or NAME_TEMPLATES[key]
        if not flow.pk:
            flow.status_filter = STATUS_FILTERS[key]
            flow.enabled = False
        try:
            flow.full_clean()
        except ValidationError as exc:
            raise StepError({k: "; ".join(v) for k, v in exc.message_dict.items()}) from exc
        flow.save()
        selection = {prop.source_path(r): gid for r, gid in prop.fields.items() if r != "reference"}
        saved, refused = apply_selection(flow, selection, choices.specs)
        if refused:
            raise StepError(refused)
        kept = set(selection)
        FieldMapping.objects.filter(flow=flow, direction="to_asana").exclude(source_path__in=kept).delete()
        _save_vendor_options(tenant, flow, prop, choices.specs, vendor_options or {})
        if key == "bills":
            _approvals_flow(tenant, flow, choices.specs)
    remember(tenant, **{f"skip_{key}": False})
    _maybe_done(tenant)
    return choices


def _maybe_done(tenant: Tenant) -> None:
    """Step 3 is done when each documents flow is configured or skipped on purpose (one at least)."""
    skipped = progress_of(tenant).answers
    done = [k for k in FLOW_KINDS if existing_flow(tenant, k) or skipped.get(f"skip_{k}")]
    if len(done) == len(FLOW_KINDS) and any(existing_flow(tenant, k) for k in FLOW_KINDS):
        reach(tenant, 4)


def _save_vendor_options(
    tenant: Tenant, flow: Flow, prop: proposal.Proposal, specs: dict[str, Any], chosen: dict[str, str]
) -> None:
    gid = prop.fields.get("vendor")
    spec = specs.get(gid) if gid else None
    if spec is None or spec.type != "enum":
        return
    mapping = FieldMapping.objects.get(flow=flow, asana_field_gid=gid, direction="to_asana")
    matches = {m.vendor_id: m.option_gid for m in prop.vendors} if prop.vendors else {}
    matches.update({k: v for k, v in chosen.items()})
    enabled = {o.gid for o in spec.enum_options.values() if o.enabled}
    bad = {
        vid: f"option {opt} is not an enabled option of {spec.name!r}"
        for vid, opt in matches.items()
        if opt and opt not in enabled
    }
    if bad:
        raise StepError({f"vendor_{k}": v for k, v in bad.items()})
    ValueMapping.objects.filter(field_mapping=mapping, kind="enum_option").delete()
    ValueMapping.objects.bulk_create(
        ValueMapping(
            tenant=tenant, field_mapping=mapping, kind="enum_option", source_value=vid, target_value=opt
        )
        for vid, opt in sorted(matches.items())
        if opt
    )


def _approvals_flow(tenant: Tenant, bills: Flow, specs: dict[str, Any]) -> Flow:
    """Completing (or approving) the bill's task releases the bill: the approvals flow on the same
    project. An enum field named like "Approval status" with an "Approved" option is used when the
    project has one; otherwise completing the task is the approval."""
    flow = Flow.objects.filter(tenant=tenant, kind=Flow.Kind.ASANA_APPROVALS).first() or Flow(
        tenant=tenant, kind=Flow.Kind.ASANA_APPROVALS, name=FLOW_NAMES["approvals"], enabled=False
    )
    flow.asana_project_gid = bills.asana_project_gid
    flow.approval_rule, flow.approval_field_gid, flow.approval_option_gid = "completed", "", ""
    for gid, spec in specs.items():
        if spec.type == "enum" and "approv" in spec.name.casefold():
            option = spec.option_by_name("Approved")
            if option is not None and option.enabled:
                flow.approval_rule, flow.approval_field_gid, flow.approval_option_gid = (
                    "enum_option",
                    gid,
                    option.gid,
                )
                break
    flow.save()
    return flow


# ---- step 4 ---------------------------------------------------------------------------------------


def run_fit_report(tenant: Tenant) -> dict[str, Any]:
    report = fit.fit_report(tenant)
    progress = progress_of(tenant)
    progress.fit_report, progress.fit_report_at = report, timezone.now()
    progress.step = max(progress.step, 5)
    progress.save()
    return report


# ---- step 5 ---------------------------------------------------------------------------------------


def push_settings(tenant: Tenant, *, new_value: bool = False) -> push.PushSettings:
    return push.push_settings(tenant.acumatica, new_value=new_value)


def flows_of(tenant: Tenant) -> list[Flow]:
    kinds = [*FLOW_KINDS.values(), Flow.Kind.ASANA_APPROVALS]
    return list(Flow.objects.filter(tenant=tenant, kind__in=kinds).order_by("pk"))


def switch_on(tenant: Tenant) -> list[str]:
    """Enable the wizard's flows, then register the Asana webhooks and the polling schedules through
    the queue (Asana's handshake must reach a web worker while the registration call is open)."""
    from django_q.tasks import async_task

    progress = progress_of(tenant)
    if not progress.fit_report:
        raise StepError({"fit_report": "run the fit report (step 4) before switching the flows on"})
    flows = flows_of(tenant)
    if not flows:
        raise StepError({"flows": "no flow is configured (step 3)"})
    Flow.objects.filter(pk__in=[f.pk for f in flows]).update(enabled=True)
    async_task(register_after_switch_on, tenant.pk)  # the function itself: a rename fails at import
    progress.switched_on_at = timezone.now()
    progress.save(update_fields=["switched_on_at", "updated_at"])
    return [f.name for f in flows]


def register_after_switch_on(tenant_id: int) -> str:
    """Run by a worker: Asana webhooks for the flows' projects, then every polling schedule."""
    from integrations.flows.inbound.tasks import register_webhooks
    from integrations.flows.registry import ensure_all

    answer = register_webhooks(tenant_id)
    ensure_all()
    return answer


def verification(tenant: Tenant) -> dict[str, Any]:
    event = push.push_verified(tenant.acumatica)
    return {
        "webhooks": push.webhook_states(tenant),
        "push_received_at": event.received_at if event else None,
    }
