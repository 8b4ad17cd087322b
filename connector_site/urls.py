from django.conf import settings
from django.contrib import admin
from django.db import transaction
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from integrations import views as integration_views
from integrations.console.site import install as install_console
from integrations.flows.inbound import receivers

# Layer the console (lineage, replay, dry run, dashboard, tenant scoping) on the admin classes every app
# registered: the admin autodiscovered them at start-up, before the URLconf is loaded.
install_console(admin.site)
admin.site.site_header = "ml-connector console"
admin.site.site_title = "ml-connector"
admin.site.index_title = "Operator console"


def vendor_hook(receive):
    """A receiver's view (integrations/flows/inbound/receivers.py): no CSRF, autocommit."""

    @csrf_exempt
    @transaction.non_atomic_requests  # autocommit: the event's INSERT is committed before its enqueue
    def view(request, **kwargs):
        (endpoint_uuid,) = kwargs.values()  # the one <uuid:…> of the route
        return receive(request, endpoint_uuid)

    return view


urlpatterns = [
    path("healthz", integration_views.healthz, name="healthz"),
    path(
        "hooks/asana/<uuid:target_uuid>/",
        vendor_hook(receivers.asana.receive),
        name="asana-hook",
    ),
    path(
        "hooks/acumatica/<uuid:push_uuid>/",
        vendor_hook(receivers.acumatica_push.receive),
        name="acumatica-push",
    ),
    path("admin/", admin.site.urls),
]

if settings.SANDBOX_PLAYGROUND:
    # The playground (sandbox/playground/) acts on the simulated systems `make run` serves; it is not
    # product code. Only when configured is it imported — here, inside this condition, by name through
    # include(), so the product's modules hold no import of the sandbox (the layout contract) — and
    # mounted; otherwise /playground/ does not exist (404).
    urlpatterns.insert(0, path("playground/", include("sandbox.playground.urls")))
