"""The django-q2 entry points moved into one package per flow (integrations/flows/…): recurring and
pending schedules stored with the old dotted paths are rewritten, so an upgraded installation keeps
running them. The one Sage 100 schedule became two (purchase requests, PO status), at the same interval.

Tasks already sitting in the broker under an old name cannot be rewritten here: drain the queue (stop
the web server, let `qcluster` finish) before upgrading, or replay what failed from the console.
"""

from django.db import migrations

MOVES = {
    "integrations.tasks.documents.": "integrations.flows.documents.tasks.",
    "integrations.tasks.approvals.process_asana_event": "integrations.flows.dispatch.process_asana_event",
    "integrations.tasks.approvals.": "integrations.flows.inbound.tasks.",
    "integrations.tasks.events.": "integrations.flows.inbound.events.",
    "integrations.tasks.roster.": "integrations.flows.roster.tasks.",
    "integrations.tasks.sage100.poll_po_status": "integrations.flows.po_status.tasks.poll_po_status",
    "integrations.tasks.sage100.": "integrations.flows.purchase_requests.tasks.",
    "integrations.health.": "integrations.flows.operations.health.",
    "audit.alerts.": "integrations.flows.operations.alerts.",
    "audit.replay.": "integrations.flows.replay.",
}


def moved(func: str) -> str:
    for old in sorted(MOVES, key=len, reverse=True):
        if func.startswith(old):
            return MOVES[old] + func[len(old) :] if old.endswith(".") else MOVES[old]
    return func


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in Schedule.objects.all():
        new = moved(schedule.func)
        if new != schedule.func:
            Schedule.objects.filter(pk=schedule.pk).update(func=new)
    old = Schedule.objects.filter(name="sage100-poll").first()
    if old is not None:
        for name, func in (
            ("sage100-purchase-requests-poll", "integrations.flows.purchase_requests.tasks.poll_all"),
            ("sage100-po-status-poll", "integrations.flows.po_status.tasks.poll_all"),
        ):
            Schedule.objects.update_or_create(
                name=name,
                defaults={
                    "func": func,
                    "schedule_type": old.schedule_type,
                    "minutes": old.minutes,
                    "repeats": -1,
                },
            )
        old.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0005_acumatica_seats"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
