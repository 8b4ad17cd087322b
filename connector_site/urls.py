from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.urls import include, path
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from integrations import views as integration_views

admin.site.site_header = "ml-connector console"
admin.site.site_title = "ml-connector"
admin.site.index_title = "Operator console"


def vendor_hook(dotted_path: str):
    """Webhook receivers live with their system (asana/webhooks.py, acumatica/push.py); resolved on use."""

    @csrf_exempt
    @transaction.non_atomic_requests  # autocommit: the event's INSERT is committed before its enqueue
    def view(request, *args, **kwargs):
        return import_string(dotted_path)(request, *args, **kwargs)

    return view


urlpatterns = [
    path("healthz", integration_views.healthz, name="healthz"),
    path(
        "hooks/asana/<uuid:target_uuid>/",
        vendor_hook("integrations.asana.webhooks.receive"),
        name="asana-hook",
    ),
    path(
        "hooks/acumatica/<uuid:push_uuid>/",
        vendor_hook("integrations.acumatica.push.receive"),
        name="acumatica-push",
    ),
    path("admin/", admin.site.urls),
]

if settings.SANDBOX_PLAYGROUND:
    # The playground acts on the simulated systems `make run` serves; it is not product code and the
    # product never imports it. Only when configured is it imported (here, inside this condition) and
    # mounted: otherwise /playground/ does not exist (404).
    urlpatterns.insert(0, path("playground/", include("sandbox.playground.urls")))
