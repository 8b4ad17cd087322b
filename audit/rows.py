"""One INSERT of one row, written once per model and database vendor and run through Django's cursor
(its error translation and query logging), without the ORM's per-row work: no model instance, no
save() or its signals, no SQL compilation per row. For the hot paths that store one row per event
(issue 17): the webhook receive path (base/receiver.py) and a created task's audit rows
(flows/documents/batch.py).

Every concrete column is written, as the ORM would: a value given by field name or attname (a
related object by its pk), or the field's default (`auto_now`/`auto_now_add` columns:
timezone.now()), converted by the field's own get_db_prep_save, so the stored row is the one
`Model.objects.create(**fields)` stores (tests/flows/inbound/test_event_insert.py and
tests/audit/test_rows.py compare them column by column). Only for models with no save() override
that matters for an insert, no database-side default and nothing listening to their model signals;
those tests keep it so.

`RETURNING pk` needs PostgreSQL or SQLite >= 3.35; on an older SQLite the row is stored by the ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone


class RowInsert:
    """`insert(fields)` → the new row's pk, or None when `on_conflict` (e.g. "ON CONFLICT … DO NOTHING",
    built from the vendor's quote function) made it insert nothing."""

    def __init__(
        self,
        model: Any,
        *,
        on_conflict: Callable[[Callable[[str], str]], str] | None = None,
        cursor: Callable[[Any], Any] | None = None,
    ) -> None:
        self.model = model
        self.on_conflict = on_conflict
        self.cursor = cursor or (lambda conn: conn.cursor())
        self._plans: dict[str, tuple[str, list[tuple[Any, ...]], dict[str, str]]] = {}

    def plan(self, conn) -> tuple[str, list[tuple[Any, ...]], dict[str, str]]:
        vendor = conn.vendor
        plan = self._plans.get(vendor)
        if plan is None:
            meta = self.model._meta
            fields = [f for f in meta.concrete_fields if not f.primary_key]
            quote = conn.ops.quote_name
            columns = ", ".join(quote(f.column) for f in fields)
            values = ", ".join(["%s"] * len(fields))
            table, pk = quote(meta.db_table), quote(meta.pk.column)
            conflict = f" {self.on_conflict(quote)}" if self.on_conflict else ""
            # Names from the model's meta; every value is a parameter.
            sql = f"INSERT INTO {table} ({columns}) VALUES ({values}){conflict} RETURNING {pk}"  # noqa: S608
            # (field, its name, its attname, stamped with the current time, a text column: a str is
            # stored as it is — what CharField/TextField.get_db_prep_save return for one)
            steps = [
                (
                    f,
                    f.name,
                    f.attname,
                    bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)),
                    f.get_internal_type() in ("CharField", "TextField"),
                )
                for f in fields
            ]
            names = {f.name: f.attname for f in fields} | {f.attname: f.attname for f in fields}
            plan = self._plans[vendor] = (sql, steps, names)
        return plan

    def __call__(self, fields: dict[str, Any]) -> int | None:
        conn = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the proxy, for each field
        if not conn.features.can_return_columns_from_insert:  # SQLite before 3.35: no RETURNING
            return self.by_the_orm(fields)
        sql, steps, names = self.plan(conn)
        unknown = [k for k in fields if k not in names]
        if unknown:
            raise TypeError(f"{self.model.__name__} has no field(s) {', '.join(sorted(unknown))}")
        params = []
        for f, name, attname, stamped, text in steps:
            if attname in fields:
                value = fields[attname]
            elif name in fields:
                value = fields[name]
                if f.is_relation and value is not None:
                    value = value.pk
            elif stamped:
                value = timezone.now()
            else:
                value = f.get_default()
            params.append(value if text and isinstance(value, str) else f.get_db_prep_save(value, conn))
        with self.cursor(conn) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else row[0]

    def by_the_orm(self, fields: dict[str, Any]) -> int | None:
        """The same row by Model.objects.create, for a database that cannot return the new id; a
        conflict the INSERT would have skipped is an IntegrityError here, and None."""
        if not self.on_conflict:
            return self.model.objects.create(**fields).pk
        try:
            with transaction.atomic():
                return self.model.objects.create(**fields).pk
        except IntegrityError:
            if not fields.get("dedupe_key"):
                raise
            return None
