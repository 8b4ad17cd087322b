"""`connector check` for Asana: says what it verified, against the live API, and how.

1. the token: GET /users/me (name, gid; compared with connector_user_gid) — a 401 names the
   credential (personal access token, or the OAuth refresh token when the refresh itself failed);
2. the workspace: GET /workspaces/{gid} and the user's membership in it;
3. each enabled flow's project: readable (GET /projects/{gid}); its custom field settings list the
   mapped field GIDs (field mappings, ERP reference field, approval field) with names and types.
402 (premium-only feature) and 403 (no access) are explained in operator terms (reference §2.2, §5).
"""

from __future__ import annotations

from typing import Any

from integrations.base import errors
from integrations.base.checks import CheckResult

from .client import AsanaClient, client_for

EXPLAIN = {
    401: "the credential was refused",
    402: "Asana answered 402 Payment Required: this needs a paid (premium) Asana plan — custom fields "
    "and search are premium features",
    403: "Asana answered 403 Forbidden: the connector's user has no access to it (share it with that user)",
    404: "Asana does not know it (wrong GID, deleted, or not visible to the connector's user)",
}


def _explain(exc: errors.ConnectorError) -> str:
    reason = EXPLAIN.get(exc.status or 0, "")
    return f"{reason}: {exc}" if reason else str(exc)


def _auth_failure(conn: Any, exc: errors.ConnectorError) -> CheckResult:
    if conn.auth_mode == "oauth":
        what = (
            "OAuth refresh token"
            if "refresh token" in (exc.message or "")
            else "OAuth access token (refresh succeeded but the new token was refused)"
        )
    else:
        what = "personal access token"
    return CheckResult(False, f"credentials: {what}", f"rejected by Asana (401) — {exc}; enter a new one")


def check_asana(conn: Any, client: AsanaClient | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        client = client or client_for(conn)
    except errors.ConfigurationError as exc:
        return [CheckResult(False, "credentials", str(exc))]

    # 1. Who are we?
    try:
        me = client.me()
    except errors.AuthFailed as exc:
        return [_auth_failure(conn, exc)]
    except errors.ConnectorError as exc:
        return [CheckResult(False, "token user (GET /users/me)", _explain(exc))]
    who = f"{me.get('name')} ({me.get('gid')}, {me.get('email') or 'no e-mail visible'})"
    if conn.connector_user_gid and conn.connector_user_gid != me.get("gid"):
        results.append(
            CheckResult(
                False,
                "token user",
                f"the token acts as {who}, but the connection says the "
                f"connector's user is {conn.connector_user_gid}",
            )
        )
    else:
        results.append(CheckResult(True, "token user", f"{conn.get_auth_mode_display()} acts as {who}"))

    # 2. The workspace.
    member_of = {w.get("gid"): w.get("name") for w in me.get("workspaces") or []}
    if conn.workspace_gid in member_of:
        results.append(
            CheckResult(
                True,
                "workspace",
                f"{member_of[conn.workspace_gid]} ({conn.workspace_gid}); the token user is a member",
            )
        )
    else:
        results.append(
            CheckResult(
                False,
                "workspace",
                f"the token user is not a member of workspace "
                f"{conn.workspace_gid} (member of: {member_of or 'none'})",
            )
        )
        return results

    # 3. Each enabled flow's project and mapped fields.
    flows = conn.tenant.flows.filter(enabled=True).exclude(asana_project_gid="").order_by("name")
    for flow in flows:
        results.extend(_check_flow(client, flow))
    if not flows:
        results.append(CheckResult(True, "flows", "no enabled flow uses an Asana project"))
    return results


def _mapped_field_gids(flow: Any) -> dict[str, tuple[str, bool]]:
    """{field GID: (what maps it, written by the connector?)} for everything the flow uses by GID."""
    gids: dict[str, tuple[str, bool]] = {}
    for mapping in flow.field_mappings.all():
        writes = mapping.direction == "to_asana" or gids.get(mapping.asana_field_gid, ("", False))[1]
        gids[mapping.asana_field_gid] = (f"mapping {mapping.source_path}", writes)
    if flow.erp_reference_field_gid:
        gids[flow.erp_reference_field_gid] = ("ERP reference field", True)
    if flow.approval_rule == "enum_option" and flow.approval_field_gid:
        gids.setdefault(flow.approval_field_gid, ("approval field", False))
    return gids


def _check_flow(client: AsanaClient, flow: Any) -> list[CheckResult]:
    label = f"flow {flow.name}: project {flow.asana_project_gid}"
    try:
        project = client.get_project(flow.asana_project_gid)
    except errors.AuthFailed as exc:
        return [CheckResult(False, label, f"credential refused: {exc}")]
    except errors.ConnectorError as exc:
        return [CheckResult(False, label, _explain(exc))]
    results = [
        CheckResult(
            True,
            label,
            f"readable: {project.get('name')!r}" + (" (ARCHIVED)" if project.get("archived") else ""),
        )
    ]
    if flow.asana_section_gid:
        what = f"flow {flow.name}: section {flow.asana_section_gid}"
        try:
            sections = {s["gid"]: s.get("name") for s in client.list_sections(flow.asana_project_gid)}
        except errors.ConnectorError as exc:
            sections, results = None, [*results, CheckResult(False, what, _explain(exc))]
        if sections is not None:
            ok = flow.asana_section_gid in sections
            detail = repr(sections[flow.asana_section_gid]) if ok else "not a section of the project"
            results.append(CheckResult(ok, what, detail))
    wanted = _mapped_field_gids(flow)
    if not wanted:
        return results
    try:
        specs = client.project_custom_fields(flow.asana_project_gid)
    except errors.ConnectorError as exc:
        return [*results, CheckResult(False, f"flow {flow.name}: custom fields", _explain(exc))]
    for gid, (source, writes) in wanted.items():
        spec = specs.get(gid)
        what = f"flow {flow.name}: field {gid} ({source})"
        if spec is None:
            results.append(CheckResult(False, what, "not on the project (removed from it, or a wrong GID)"))
            continue
        notes = []
        read_only = spec.is_formula_field or spec.is_value_read_only
        if read_only:
            notes.append(
                "READ-ONLY (formula or locked value)" + (": the connector cannot write it" if writes else "")
            )
        if spec.type == "number":
            notes.append(f"precision {spec.precision}")
        if spec.enum_options:
            enabled = sum(1 for o in spec.enum_options.values() if o.enabled)
            notes.append(f"{enabled}/{len(spec.enum_options)} options enabled")
        detail = f"{spec.name!r}, {spec.type}" + (f"; {', '.join(notes)}" if notes else "")
        results.append(CheckResult(not (read_only and writes), what, detail))
    return results
