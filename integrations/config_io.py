"""A tenant as a JSON document: `connector config export` writes it, `connector config apply` reads it.

Shape (every section but `tenant` optional):
    {"tenant": {"slug", "name", "active"},
     "acumatica": {...AcumaticaConnection fields...}, "asana": {...}, "sage100": {...},
     "flows": [{...Flow fields...,
                "field_mappings": [{...FieldMapping fields...,
                                    "value_mappings": [{kind, source_value, target_value}]}]}],
     "value_mappings": [{kind, source_value, target_value, note}],       # tenant-wide (vendors, cost codes)
     "user_mappings": [{email, display_name, asana_user_gid, acumatica_employee_id, sage_user, active}]}

Secrets are never exported in plaintext: they appear as {"env": "VAR"}. On apply a secret may be a
literal string or {"env": "VAR"}; an unset variable keeps the stored value, and is an error for a
secret that has none. Apply validates everything first and writes in one transaction: a bad file
writes nothing, and every problem is reported as "<file>: <path>: <reason>".
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from mappings.models import FieldMapping, UserMapping, ValueMapping

from .models import CONNECTIONS as connection_models
from .models import Flow, Tenant
from .secrets import secret_field_names

CONNECTIONS = connection_models  # the tenant JSON's sections, one per system
SKIP_FIELDS = {"id", "tenant", "flow", "field_mapping", "created_at", "updated_at"}


class ConfigFileError(Exception):
    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def _editable_fields(model: type[models.Model]) -> dict[str, models.Field]:
    return {f.name: f for f in model._meta.concrete_fields if f.editable and f.name not in SKIP_FIELDS}


def env_var_name(slug: str, section: str, field: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"ML_{slug}_{section}_{field}".upper())


# ---------------------------------------------------------------------------------------- export
def export_tenant(slug: str) -> dict[str, Any]:
    tenant = Tenant.objects.get(slug=slug)
    doc: dict[str, Any] = {"tenant": {"slug": tenant.slug, "name": tenant.name, "active": tenant.active}}
    for section, model in CONNECTIONS.items():
        conn = model.objects.filter(tenant=tenant).first()
        if conn is not None:
            doc[section] = _dump(conn, secrets_as_env=(tenant.slug, section))
    doc["flows"] = []
    for flow in tenant.flows.order_by("name"):
        fdoc = _dump(flow)
        fdoc["field_mappings"] = []
        for fm in flow.field_mappings.order_by("direction", "source_path", "asana_field_gid"):
            fmdoc = _dump(fm)
            fmdoc["value_mappings"] = [_dump(vm) for vm in fm.value_mappings.order_by("kind", "source_value")]
            fdoc["field_mappings"].append(fmdoc)
        doc["flows"].append(fdoc)
    doc["value_mappings"] = [
        _dump(vm)
        for vm in tenant.value_mappings.filter(field_mapping__isnull=True).order_by("kind", "source_value")
    ]
    doc["user_mappings"] = [_dump(um) for um in tenant.user_mappings.order_by("email")]
    return doc


def _dump(obj: models.Model, secrets_as_env: tuple[str, str] | None = None) -> dict[str, Any]:
    secret_names = set(secret_field_names(type(obj)))
    out: dict[str, Any] = {}
    for name in _editable_fields(type(obj)):
        value = getattr(obj, name)
        if name in secret_names:
            if value and secrets_as_env:
                out[name] = {"env": env_var_name(*secrets_as_env, name)}
            continue
        if name in ("status", "status_reason", "last_checked_at") and isinstance(obj, FieldMapping):
            continue
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


# ----------------------------------------------------------------------------------------- apply
def load_file(path: str | Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            source, [f"line {exc.lineno} column {exc.colno}: malformed JSON: {exc.msg}"]
        ) from exc
    if not isinstance(doc, dict):
        raise ConfigFileError(source, ["the top level must be a JSON object"])
    return doc


def apply_file(path: str | Path, *, prune: bool = False) -> dict[str, Any]:
    return apply_document(load_file(path), source=str(path), prune=prune)


class _Applier:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []
        self.summary: dict[str, Any] = {"created": [], "updated": [], "deleted": []}

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def fill(
        self,
        obj: models.Model,
        data: Any,
        path: str,
        *,
        secrets_env: bool = False,
        exclude: set[str] = frozenset(),
    ) -> bool:
        """Set fields from `data` on obj; report unknown fields and invalid values. True if valid."""
        if not isinstance(data, dict):
            self.problem(path, "must be a JSON object")
            return False
        fields = _editable_fields(type(obj))
        secret_names = set(secret_field_names(type(obj)))
        ok = True
        for key, value in data.items():
            if key in exclude:
                continue
            if key not in fields:
                self.problem(f"{path}.{key}", f"unknown field; expected one of: {', '.join(sorted(fields))}")
                ok = False
                continue
            if key in secret_names:
                value = self._secret(obj, key, value, f"{path}.{key}")
                if value is None:
                    ok = False
                    continue
            field = fields[key]
            if field.choices and value not in {c[0] for c in field.flatchoices}:
                self.problem(
                    f"{path}.{key}",
                    f"{value!r} is not one of: {', '.join(str(c[0]) for c in field.flatchoices)}",
                )
                ok = False
                continue
            try:
                setattr(obj, key, field.to_python(value) if value is not None or not field.null else None)
            except ValidationError as exc:
                self.problem(f"{path}.{key}", "; ".join(exc.messages))
                ok = False
        return ok

    def _secret(self, obj: models.Model, key: str, value: Any, path: str) -> str | None:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
            env_value = os.environ.get(value["env"])
            if env_value is not None:
                return env_value
            stored = getattr(obj, key, "") if obj.pk else ""
            if stored:
                return stored
            self.problem(path, f"environment variable {value['env']} is not set and no value is stored")
            return None
        self.problem(path, 'a secret must be a string or {"env": "VARIABLE_NAME"}')
        return None

    def validate(self, obj: models.Model, path: str, exclude: list[str] | None = None) -> bool:
        try:
            obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                where = path if field == "__all__" else f"{path}.{field}"
                for message in messages:
                    self.problem(where, message)
            return False
        return True

    def save(self, obj: models.Model, label: str) -> None:
        created = obj.pk is None
        obj.save()
        self.summary["created" if created else "updated"].append(label)


def apply_document(doc: dict[str, Any], *, source: str = "<config>", prune: bool = False) -> dict[str, Any]:
    """Validate and apply a tenant document in one transaction. Raises ConfigFileError, writing nothing."""
    a = _Applier(source)
    allowed = {"tenant", "flows", "value_mappings", "user_mappings", *CONNECTIONS}
    for key in doc:
        if key not in allowed:
            a.problem(key, f"unknown section; expected one of: {', '.join(sorted(allowed))}")
    tdoc = doc.get("tenant")
    if not isinstance(tdoc, dict) or not tdoc.get("slug"):
        raise ConfigFileError(source, a.problems + ["tenant.slug: required"])
    with transaction.atomic():
        tenant = Tenant.objects.filter(slug=tdoc["slug"]).first() or Tenant(slug=tdoc["slug"])
        if a.fill(tenant, tdoc, "tenant") and a.validate(
            tenant, "tenant", exclude=["slug"] if tenant.pk else None
        ):
            a.save(tenant, f"tenant {tenant.slug}")
        if tenant.pk is None:
            raise ConfigFileError(source, a.problems)
        for section, model in CONNECTIONS.items():
            if section in doc:
                conn = model.objects.filter(tenant=tenant).first() or model(tenant=tenant)
                if a.fill(conn, doc[section], section) and a.validate(conn, section):
                    a.save(conn, section)
        _apply_flows(a, tenant, doc.get("flows", []), prune)
        _apply_value_mappings(a, tenant, None, doc.get("value_mappings", []), "value_mappings")
        _apply_user_mappings(a, tenant, doc.get("user_mappings", []))
        _check_controls(a, tenant, doc.get("flows", []))
        if a.problems:
            transaction.set_rollback(True)
            raise ConfigFileError(source, a.problems)
    return a.summary


def _as_list(a: _Applier, value: Any, path: str) -> list:
    if not isinstance(value, list):
        a.problem(path, "must be a JSON list")
        return []
    return value


def _apply_flows(a: _Applier, tenant: Tenant, flows: Any, prune: bool) -> None:
    seen = set()
    for i, fdoc in enumerate(_as_list(a, flows, "flows")):
        path = f"flows[{i}]"
        if not isinstance(fdoc, dict) or not fdoc.get("name"):
            a.problem(f"{path}.name", "required")
            continue
        if fdoc["name"] in seen:
            a.problem(f"{path}.name", f"duplicate flow name {fdoc['name']!r}")
            continue
        seen.add(fdoc["name"])
        flow = Flow.objects.filter(tenant=tenant, name=fdoc["name"]).first() or Flow(tenant=tenant)
        if not (
            a.fill(flow, fdoc, path, exclude={"field_mappings"})
            and a.validate(flow, path, exclude=["tenant"])
        ):
            continue
        a.save(flow, f"flow {flow.name}")
        keep = []
        for j, fmdoc in enumerate(_as_list(a, fdoc.get("field_mappings", []), f"{path}.field_mappings")):
            fpath = f"{path}.field_mappings[{j}]"
            if not isinstance(fmdoc, dict):
                a.problem(fpath, "must be a JSON object")
                continue
            direction = fmdoc.get("direction", FieldMapping.Direction.TO_ASANA)
            fm = FieldMapping.objects.filter(
                flow=flow, asana_field_gid=str(fmdoc.get("asana_field_gid", "")), direction=direction
            ).first() or FieldMapping(flow=flow)
            if a.fill(fm, fmdoc, fpath, exclude={"value_mappings"}) and a.validate(
                fm, fpath, exclude=["flow"]
            ):
                a.save(fm, f"mapping {flow.name}:{fm.source_path}")
                keep.append(fm.pk)
                _apply_value_mappings(
                    a, tenant, fm, fmdoc.get("value_mappings", []), f"{fpath}.value_mappings"
                )
        stale = flow.field_mappings.exclude(pk__in=keep)
        a.summary["deleted"] += [f"mapping {flow.name}:{fm.source_path}" for fm in stale]
        stale.delete()
    if prune:
        gone = tenant.flows.exclude(name__in=seen)
        a.summary["deleted"] += [f"flow {f.name}" for f in gone]
        gone.delete()


def _apply_value_mappings(
    a: _Applier, tenant: Tenant, fm: FieldMapping | None, items: Any, path: str
) -> None:
    for k, vdoc in enumerate(_as_list(a, items, path)):
        vpath = f"{path}[{k}]"
        if not isinstance(vdoc, dict):
            a.problem(vpath, "must be a JSON object")
            continue
        kind = vdoc.get("kind", ValueMapping.Kind.ENUM_OPTION)
        vm = ValueMapping.objects.filter(
            tenant=tenant, field_mapping=fm, kind=kind, source_value=vdoc.get("source_value")
        ).first() or ValueMapping(tenant=tenant, field_mapping=fm)
        if a.fill(vm, vdoc, vpath) and a.validate(vm, vpath, exclude=["tenant", "field_mapping"]):
            a.save(vm, f"value {vm.kind}:{vm.source_value}")


def _apply_user_mappings(a: _Applier, tenant: Tenant, items: Any) -> None:
    for k, udoc in enumerate(_as_list(a, items, "user_mappings")):
        upath = f"user_mappings[{k}]"
        if not isinstance(udoc, dict) or not udoc.get("email"):
            a.problem(f"{upath}.email", "required")
            continue
        um = UserMapping.objects.filter(
            tenant=tenant, email=str(udoc["email"]).strip().lower()
        ).first() or UserMapping(tenant=tenant)
        if a.fill(um, udoc, upath) and a.validate(um, upath, exclude=["tenant"]):
            a.save(um, f"user {um.email}")


def _check_controls(a: _Applier, tenant: Tenant, flows: Any) -> None:
    """The finance controls of each flow (`options.controls`): tiers that do not overlap, every level with
    an approver, approvers who are Asana users of this tenant's user mappings (after this file's own)."""
    from integrations.flows.common.controls.config import validation_errors

    known = set(
        UserMapping.objects.filter(tenant=tenant)
        .exclude(asana_user_gid="")
        .values_list("asana_user_gid", flat=True)
    )
    for i, fdoc in enumerate(flows if isinstance(flows, list) else []):
        options = fdoc.get("options") if isinstance(fdoc, dict) else None
        if not isinstance(options, dict) or "controls" not in options:
            continue
        kind = (
            fdoc.get("kind")
            or Flow.objects.filter(tenant=tenant, name=fdoc.get("name"))
            .values_list("kind", flat=True)
            .first()
        )
        for message in validation_errors(options["controls"], known_users=known, kind=kind):
            field, _, reason = message.partition(": ")
            a.problem(f"flows[{i}].options.{field}", reason)
