"""The flow registry is the one place the product's wiring is declared: these tests keep it honest.

Every Flow.Kind has a line; the kinds that consume Asana task events are exactly those with a handler;
every django-q2 task name the product queues or schedules resolves to a function (a renamed module fails
here, not in a webhook at run time); every replayable operation has a handler; and the migration that
moved the entry points rewrites an installation's stored schedules.
"""

from __future__ import annotations

import importlib

import pytest
from django.utils.module_loading import import_string
from django_q.models import Schedule

from integrations.flows import registry
from integrations.flows.common import task_events
from integrations.flows.documents import queue as documents_queue
from integrations.models import Flow


def test_every_flow_kind_has_a_registry_line():
    assert set(registry.FLOWS) == set(Flow.Kind.values)


def test_the_task_event_kinds_are_those_with_an_asana_event_handler():
    with_handler = {kind for kind, entry in registry.FLOWS.items() if entry.handle_task_change}
    assert with_handler == set(Flow.TASK_EVENT_KINDS)
    for kind in Flow.TASK_EVENT_KINDS:
        assert callable(registry.task_event_handler(kind))
    with pytest.raises(LookupError):
        registry.task_event_handler(Flow.Kind.ACUMATICA_BILLS)


def test_every_system_has_a_check():
    assert set(registry.CHECKS) == {"acumatica", "asana", "sage100"}


def test_the_queued_task_names_resolve():
    for name in (task_events.ASANA_EVENT_TASK, documents_queue.PUSH_EVENT_TASK):
        assert callable(import_string(name)), name


@pytest.mark.django_db
def test_every_scheduled_function_resolves(tenant_with_every_flow):
    lines = registry.ensure_all()
    assert lines and all(": " in line for line in lines)
    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {
        "integrations.flows.documents.tasks.poll_flow",
        "integrations.flows.documents.tasks.check_drift",
        "integrations.flows.inbound.tasks.check_webhooks",
        "integrations.flows.inbound.tasks.poll_approvals",
        "integrations.flows.inbound.events.requeue_stuck_events",
        "integrations.flows.roster.tasks.sync_roster_all",
        "integrations.flows.purchase_requests.tasks.poll_all",
        "integrations.flows.po_status.tasks.poll_all",
    } <= funcs
    for func in funcs:
        assert callable(import_string(func)), func
    count = Schedule.objects.count()
    registry.ensure_all()
    assert Schedule.objects.count() == count  # idempotent: no schedule twice


def test_every_replayable_operation_has_its_flows_handler():
    ops = registry.replay_operations()
    assert {"create_task", "bill.release", "purchase_order.create", "purchase_request.writeback"} <= set(ops)
    for op in ops:
        handler = registry.replay_handler_for_operation(op)
        assert handler is not None and hasattr(handler, "preview") and hasattr(handler, "execute")
    assert registry.replay_handler_for_kind(Flow.Kind.ACUMATICA_EMPLOYEES) is None


@pytest.mark.django_db
def test_the_migration_rewrites_stored_schedules_of_the_old_layout():
    from django.apps import apps

    migration = importlib.import_module("integrations.migrations.0006_schedules_follow_the_flow_packages")
    Schedule.objects.create(name="poll_flow:1", func="integrations.tasks.documents.poll_flow", args="1")
    Schedule.objects.create(name="x", func="integrations.tasks.approvals.process_asana_event", args="(1, 2)")
    Schedule.objects.create(name="w", func="integrations.tasks.approvals.check_webhooks")
    Schedule.objects.create(name="r", func="audit.replay.run_replay")
    Schedule.objects.create(name="sage100-poll", func="integrations.tasks.sage100.poll_all", minutes=2)
    migration.forwards(apps, None)
    funcs = dict(Schedule.objects.values_list("name", "func"))
    assert funcs["poll_flow:1"] == "integrations.flows.documents.tasks.poll_flow"
    assert funcs["x"] == "integrations.flows.dispatch.process_asana_event"
    assert funcs["w"] == "integrations.flows.inbound.tasks.check_webhooks"
    assert funcs["r"] == "integrations.flows.replay.run_replay"
    assert "sage100-poll" not in funcs
    assert funcs["sage100-purchase-requests-poll"] == "integrations.flows.purchase_requests.tasks.poll_all"
    assert funcs["sage100-po-status-poll"] == "integrations.flows.po_status.tasks.poll_all"
    for func in funcs.values():
        assert callable(import_string(func)), func


@pytest.fixture
def tenant_with_every_flow(db):
    from integrations.models import Tenant

    tenant = Tenant.objects.create(slug="wired", name="Wired")
    for kind in Flow.Kind.values:
        Flow.objects.create(tenant=tenant, name=kind, kind=kind, asana_project_gid=f"p-{kind}")
    return tenant
