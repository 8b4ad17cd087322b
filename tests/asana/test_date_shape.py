"""The date custom-field write shape (docs/vendor-facts.md "Asana date custom fields"): the settled
`{"date": "YYYY-MM-DD"}` is what the encoder writes and what the sandbox accepts; an Asana that answers
400 for that field gets the bare string once, with a warning, and that field keeps the shape that
worked. Nothing is half-created on the way."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from integrations.asana import fields as cf
from integrations.base import errors
from sandbox.asana import DEMO

from .conftest import api_requests

F = DEMO["fields"]
AP = DEMO["ap_project"]


@pytest.fixture(autouse=True)
def settled_shape():
    cf.forget_date_shapes()
    yield
    cf.forget_date_shapes()


def sent_dates(mounted) -> list:
    return [
        json.loads(r.body)["data"].get("custom_fields", {}).get(F["due_date"])
        for r in api_requests(mounted, "POST", "/tasks")
    ]


def test_the_settled_shape_is_written_and_accepted_in_one_call(client, mounted, caplog):
    values = cf.encode_custom_fields(client.project_custom_fields(AP), {F["due_date"]: dt.date(2026, 7, 31)})
    assert values == {F["due_date"]: {"date": "2026-07-31"}}
    task = client.create_task(name="Bill 000123", project_gid=AP, custom_fields=values)
    assert mounted.task_values(task["gid"])[F["due_date"]] == "2026-07-31"
    assert sent_dates(mounted) == [{"date": "2026-07-31"}]
    assert "date custom field" not in caplog.text


def test_an_asana_refusing_the_object_gets_the_bare_string_once_then_always(client, mounted, caplog):
    caplog.set_level(logging.WARNING)
    mounted.set_date_write_shape("string")
    specs = client.project_custom_fields(AP)
    first = client.create_task(
        name="Bill 1",
        project_gid=AP,
        custom_fields=cf.encode_custom_fields(specs, {F["due_date"]: "2026-07-31"}),
    )
    assert mounted.task_values(first["gid"])[F["due_date"]] == "2026-07-31"
    assert sent_dates(mounted) == [{"date": "2026-07-31"}, "2026-07-31"]  # refused, then the other shape
    assert len(mounted.tasks) == 1  # the refused call created nothing
    assert "was refused with 400" in caplog.text and "bare string" in caplog.text

    # From now on the encoder writes the shape that worked: one call per create, and updates too.
    later = cf.encode_custom_fields(specs, {F["due_date"]: "2026-08-15"})
    assert later == {F["due_date"]: "2026-08-15"}
    second = client.create_task(name="Bill 2", project_gid=AP, custom_fields=later)
    assert sent_dates(mounted)[2:] == ["2026-08-15"]
    client.update_task(
        second["gid"], {"custom_fields": cf.encode_custom_fields(specs, {F["due_date"]: "2026-09-01"})}
    )
    assert mounted.task_values(second["gid"])[F["due_date"]] == "2026-09-01"
    assert caplog.text.count("was refused with 400") == 1


def test_a_400_about_another_field_is_not_retried(client, mounted):
    specs = client.project_custom_fields(AP)
    disabled = DEMO["options"]["cost_code"]["9999 Retired"]
    values = cf.encode_custom_fields(specs, {F["due_date"]: "2026-07-31"})
    values[F["cost_code"]] = disabled  # the sandbox refuses a disabled option (what Asana refuses)
    with pytest.raises(errors.Invalid, match="disabled"):
        client.create_task(name="x", project_gid=AP, custom_fields=values)
    assert len(api_requests(mounted, "POST", "/tasks")) == 1 and not mounted.tasks


def test_both_shapes_refused_raises_the_first_refusal_and_keeps_the_settled_shape(
    client, mounted, monkeypatch
):
    specs = client.project_custom_fields(AP)
    values = cf.encode_custom_fields(specs, {F["due_date"]: "2026-07-31"})
    refusal = {"errors": [{"message": "custom_fields: Due date: invalid value"}]}
    mounted.faults.add("status", path=r"/tasks$", status=400, times=2, body=refusal)
    with pytest.raises(errors.Invalid, match="Due date"):
        client.create_task(name="x", project_gid=AP, custom_fields=values)
    assert sent_dates(mounted) == [{"date": "2026-07-31"}, "2026-07-31"] and not mounted.tasks
    assert cf.encode_custom_fields(specs, {F["due_date"]: "2026-07-31"}) == {
        F["due_date"]: {"date": "2026-07-31"}
    }
