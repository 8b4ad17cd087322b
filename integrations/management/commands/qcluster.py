"""`python manage.py qcluster`: django-q2's command, with a sentinel that frees the queue locks of a
worker killed while it held one (integrations/base/qcluster.py). Same options as django-q2's; this
app comes before `django_q` in INSTALLED_APPS so that this command is the one `manage.py` runs."""

from __future__ import annotations

import os

from django.conf import settings
from django_q.management.commands.qcluster import Command as DjangoQCommand

from integrations.base.qcluster import GuardedCluster


class Command(DjangoQCommand):
    help = "Starts the task cluster (django-q2) with dead workers' queue locks released."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as django-q2: signing needs it, fail before forking
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GuardedCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
