"""`connector setup`: the setup wizard's five steps from the command line, for those who script.

    connector setup --answers customer.json                 every step the file answers, no question
    connector setup --answers customer.json --switch-on     … and switch the flows on (step 5)
    connector setup --slug acme --instance-url … --asana-token … --bills-project "AP Approvals"

The answers file (every key optional; flags win over the file):

    {"company": {"name": "Acme", "slug": "acme", "instance_url": "https://erp.acme.com/AcumaticaERP",
                 "endpoint_version": "24.200.001", "auth_mode": "oauth_password",
                 "client_id": "…@Acme", "client_secret": {"env": "ACME_CLIENT_SECRET"},
                 "username": "connector", "password": {"env": "ACME_PASSWORD"}, "tenant_login_name": "Acme"},
     "asana": {"api_base_url": "https://app.asana.com/api/1.0", "token": {"env": "ACME_ASANA_TOKEN"},
               "workspace": "Acme workspace", "requests_per_minute": 1500},
     "flows": {"bills": {"project": "AP Approvals", "section": "Awaiting approval",
                         "fields": {"amount": "Amount", "vendor": "Vendor"},
                         "vendors": {"HEAVYRENT": "Heavy Rentals"}},
               "purchase_orders": null},
     "switch_on": false}

Projects, sections, workspaces, fields and enum options may be named or given by GID. A field not
given is the wizard's proposal (by name and type), printed; `null` for a flow skips it. Secrets may be
{"env": "VAR"}. Missing answers are asked for when standard input is a terminal, else listed and the
command exits 2 having done nothing. Each step prints what it verified; a failed step stops the run
(the steps before it stay saved: run again to resume). The fit report is printed (and written as
JSON with --report-out); nothing is written in Acumatica or Asana before --switch-on.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

NAME = "setup"
HELP = "Set up a customer: Acumatica, Asana, flows and fields, a read-only fit report, then switch on."

FLAGS = {
    # flag dest: (section, key)
    "name": ("company", "name"),
    "slug": ("company", "slug"),
    "instance_url": ("company", "instance_url"),
    "endpoint_version": ("company", "endpoint_version"),
    "auth_mode": ("company", "auth_mode"),
    "client_id": ("company", "client_id"),
    "client_secret": ("company", "client_secret"),
    "username": ("company", "username"),
    "password": ("company", "password"),
    "tenant_login_name": ("company", "tenant_login_name"),
    "asana_url": ("asana", "api_base_url"),
    "asana_token": ("asana", "token"),
    "workspace": ("asana", "workspace"),
}
REQUIRED = (
    ("company", "name", False),
    ("company", "slug", False),
    ("company", "instance_url", False),
    ("asana", "token", True),
    ("asana", "workspace", False),
)


def add_arguments(parser) -> None:
    parser.add_argument("--answers", help="JSON answers file (see `connector setup --help` in the docs)")
    for dest, (_section, key) in FLAGS.items():
        parser.add_argument("--" + dest.replace("_", "-"), dest=dest, help=f"answer for {key}")
    parser.add_argument("--bills-project", help="Asana project (name or GID) of the bills flow")
    parser.add_argument("--bills-section", help="its section for new tasks (name or GID)")
    parser.add_argument("--po-project", help="Asana project of the purchase-orders flow ('none' to skip)")
    parser.add_argument("--po-section", help="its section for new tasks")
    parser.add_argument(
        "--switch-on", action="store_true", help="step 5: switch the flows on, register webhooks"
    )
    parser.add_argument(
        "--new-push-value", action="store_true", help="make (and show once) a new push header value"
    )
    parser.add_argument("--report-out", help="write the fit report as JSON to this file")
    parser.add_argument("--no-input", action="store_true", help="never ask: fail on a missing answer")


# ---- answers ---------------------------------------------------------------------------------------


def _secret(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"env"}:
        found = os.environ.get(str(value["env"]))
        if found is None:
            raise CommandError(f"environment variable {value['env']} is not set")
        return found
    return value


def gather(options: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {"company": {}, "asana": {}, "flows": {}}
    if options.get("answers"):
        try:
            loaded = json.loads(Path(options["answers"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"{options['answers']}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise CommandError(f"{options['answers']}: the answers must be a JSON object")
        for key in ("company", "asana", "flows"):
            answers[key] = dict(loaded.get(key) or {})
        answers["switch_on"] = bool(loaded.get("switch_on"))
    for dest, (section, key) in FLAGS.items():
        if options.get(dest) is not None:
            answers[section][key] = options[dest]
    for key, project, section in (
        ("bills", "bills_project", "bills_section"),
        ("purchase_orders", "po_project", "po_section"),
    ):
        if options.get(project):
            if options[project].lower() == "none":
                answers["flows"][key] = None
            else:
                entry = dict(answers["flows"].get(key) or {})
                entry["project"] = options[project]
                if options.get(section):
                    entry["section"] = options[section]
                answers["flows"][key] = entry
    if options.get("switch_on"):
        answers["switch_on"] = True
    for section in ("company", "asana"):
        answers[section] = {k: _secret(v) for k, v in answers[section].items()}
    return answers


def ask_missing(answers: dict[str, Any], options: dict[str, Any], existing: bool) -> None:
    missing = [
        (s, k, secret)
        for s, k, secret in REQUIRED
        if not answers[s].get(k) and not (existing and (k in ("name", "instance_url", "token")))
    ]
    if "bills" not in answers["flows"]:
        missing.append(("flows", "bills", False))
    if not missing:
        return
    if options.get("no_input") or not sys.stdin.isatty():
        names = ", ".join(f"{s}.{k}" for s, k, _ in missing)
        raise CommandError(f"missing answers: {names} (give them as flags or in --answers)")
    for section, key, secret in missing:
        prompt = f"{section}.{key}{' (Asana project name or GID)' if section == 'flows' else ''}: "
        value = getpass.getpass(prompt) if secret else input(prompt)
        if section == "flows":
            answers["flows"][key] = {"project": value} if value else None
        else:
            answers[section][key] = value


def _pick(pairs: list[tuple[str, str]], wanted: str, what: str) -> str:
    """A GID from (gid, name) pairs, given a GID or a name (case-insensitive)."""
    if not wanted:
        return ""
    for gid, name in pairs:
        if wanted == gid or wanted.casefold() == name.casefold():
            return gid
    raise CommandError(f"no {what} {wanted!r}; there are: {', '.join(n for _g, n in pairs) or 'none'}")


# ---- the run ---------------------------------------------------------------------------------------


def run(options, out) -> int:
    from integrations.membership import Role
    from integrations.models import Tenant
    from integrations.setup import steps

    from .actor import require

    answers = gather(options)
    slug = answers["company"].get("slug")
    tenant = Tenant.objects.filter(slug=slug).first() if slug else None
    ask_missing(answers, options, tenant is not None)
    slug = answers["company"]["slug"]
    tenant = Tenant.objects.filter(slug=slug).first()
    require(options, tenant, Role.ADMINISTER)

    try:
        # 1. company and Acumatica
        company = dict(answers["company"])
        if tenant is not None:
            conn = getattr(tenant, "acumatica", None) if hasattr(tenant, "acumatica") else None
            company.setdefault("name", tenant.name)
            if conn is not None:
                for key in (
                    "instance_url",
                    "endpoint_version",
                    "auth_mode",
                    "client_id",
                    "username",
                    "tenant_login_name",
                ):
                    company.setdefault(key, getattr(conn, key))
        fields = steps.CompanyAnswers.__dataclass_fields__
        out.write("1. Company and Acumatica")
        tenant, verdicts = steps.save_company(
            tenant, steps.CompanyAnswers(**{k: v for k, v in company.items() if k in fields})
        )
        for v in verdicts:
            (out.write if v.ok else out.error)("   " + v.sentence)
        if not all(v.ok for v in verdicts):
            out.error(
                "Step 1 did not pass: fix the above and run `connector setup` again "
                f"(tenant {tenant.slug} is saved)."
            )
            return 1

        # 2. Asana
        out.write("2. Asana")
        a = answers["asana"]
        base = a.get("api_base_url") or (
            tenant.asana.api_base_url if hasattr(tenant, "asana") else "https://app.asana.com/api/1.0"
        )
        user = steps.asana_workspaces(base, a.get("token", ""), tenant)
        workspace = _pick(
            user.workspaces,
            a.get("workspace") or (tenant.asana.workspace_gid if hasattr(tenant, "asana") else ""),
            "workspace",
        )
        steps.save_asana(
            tenant, base, a.get("token", ""), workspace, int(a.get("requests_per_minute") or 1500)
        )
        out.write(
            f"   Verified — the token acts as {user.name} ({user.gid}); "
            f"workspace {dict(user.workspaces)[workspace]}"
        )

        # 3. flows
        out.write("3. Flows and field mappings")
        for key in steps.FLOW_KINDS:
            _setup_flow(tenant, key, answers["flows"].get(key, None), key in answers["flows"], out)

        # 4. the fit report
        out.write("4. Fit report (read-only)")
        report = steps.run_fit_report(tenant)
        for line in report_lines(report):
            out.write("   " + line)
        if options.get("report_out"):
            Path(options["report_out"]).write_text(json.dumps(report, indent=2, default=str))
            out.write(f"   written to {options['report_out']}")

        # 5. push, webhooks, the switch
        out.write("5. Webhooks, push and switch on")
        push = steps.push_settings(tenant, new_value=bool(options.get("new_push_value")))
        out.write(f"   Acumatica SM302000 → address {push.url}")
        if push.fresh:
            out.write(f"   header {push.header_name}: {push.header_value}  (shown this once)")
        else:
            out.write(
                f"   header {push.header_name}: set, not shown again (--new-push-value makes a new one)"
            )
        if answers.get("switch_on"):
            names = steps.switch_on(tenant)
            out.success(f"   Switched on: {', '.join(names)}")
            state = steps.verification(tenant)
            for hook in state["webhooks"]:
                (out.write if hook["verified"] else out.error)(
                    f"   Asana webhook on project {hook['project']}: "
                    + ("verified (handshake done)" if hook["verified"] else hook["state"])
                )
        else:
            out.write("   The flows stay off: run again with --switch-on when the report is right.")
    except steps.StepError as exc:
        for field, problem in exc.problems.items():
            out.error(f"   {field}: {problem}")
        return 1
    out.success(f"Setup of {tenant.slug}: step {steps.progress_of(tenant).step} of 5 reached.")
    return 0


def _setup_flow(tenant, key: str, entry: Any, given: bool, out) -> None:
    from integrations.setup import steps

    name = steps.FLOW_NAMES[key]
    if entry is None:
        if given or steps.existing_flow(tenant, key) is None:
            steps.save_flow(tenant, key, "", "", {}, enabled=False)
            out.write(f"   {name}: not synced")
        return
    choices = steps.flow_choices(tenant, key)
    project = _pick(choices.projects, str(entry.get("project") or choices.project_gid), "project")
    choices = steps.flow_choices(tenant, key, project)
    section = _pick(choices.sections, str(entry.get("section") or ""), "section")
    by_name = [(gid, spec.name) for gid, spec in choices.specs.items()]
    chosen = dict(choices.proposal.fields)
    for role, wanted in (entry.get("fields") or {}).items():
        chosen[role] = _pick(by_name, str(wanted), "field") if wanted else ""
    choices = steps.flow_choices(tenant, key, project, chosen)
    vendors = {}
    vendor_spec = choices.specs.get(chosen.get("vendor", ""))
    for vendor_id, option in (entry.get("vendors") or {}).items():
        options = [(o.gid, o.name) for o in vendor_spec.enum_options.values()] if vendor_spec else []
        vendors[vendor_id] = _pick(options, str(option), "option") if option else ""
    steps.save_flow(tenant, key, project, section, chosen, vendors)
    specs = choices.specs
    for role, gid in chosen.items():
        if gid:
            out.write(f"   {name}: {role} → {specs[gid].name} ({specs[gid].type}, {gid})")
    for match in choices.proposal.vendors:
        option = vendors.get(match.vendor_id, match.option_gid)
        label = getattr(vendor_spec.enum_options.get(option), "name", "") if option else ""
        out.write(f"   {name}: vendor {match.vendor_id} → {label or '(no option: held back)'}")


def report_lines(report: dict[str, Any]) -> list[str]:
    """The fit report as text (the console page shows the same)."""
    lines = ["FITS" if report.get("fits") else "CHECK BEFORE SWITCHING ON:"]
    lines += [f"  - {p}" for p in report.get("problems", [])]
    actions = report.get("actions", {})
    for entity, offered in actions.get("offered", {}).items():
        lines.append(
            f"{entity} actions offered: {', '.join(offered) or 'none'}; "
            f"needed: {', '.join(actions.get('needed', {}).get(entity, [])) or 'none'}"
        )
    b = report.get("budgets", {})
    lines.append(f"Acumatica: {b.get('acumatica_auth')}, {b.get('acumatica_seats')}")
    lines.append(
        f"Asana: {b.get('asana_requests_per_minute')} requests/min; the first pass needs about "
        f"{b.get('first_pass_calls')} calls ({b.get('first_pass_minutes')} min of the budget)"
    )
    for flow in report.get("flows", []):
        counts = ", ".join(f"{v} {k}" for k, v in flow["counts"].items())
        lines.append(f"{flow['flow']}: {counts or 'no documents'}")
        for doc in flow["documents"]:
            task = "; ".join(f"{n}={v}" for n, v in doc["task"][1:]) if doc["task"] else ""
            lines.append(
                f"  {doc['action']:<10} {doc['key']:<22} {doc['status']:<16} {doc['reason'] or task}"
            )
        if flow.get("vendors_without_option"):
            gaps = ", ".join(v["vendor_id"] for v in flow["vendors_without_option"])
            lines.append(f"  vendors with no option in {flow['vendor_field']!r}: {gaps}")
    return lines
