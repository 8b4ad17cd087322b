"""The playground's URLs; connector_site/urls.py includes them only when SANDBOX_PLAYGROUND is on."""

from django.urls import path

from . import views

app_name = "playground"

urlpatterns = [
    path("", views.wrap(views.index), name="index"),
    path("state.json", views.wrap(views.state), name="state"),
    path("activity.json", views.wrap(views.activity), name="activity"),
    path("act", views.wrap(views.act), name="act"),
]
