from django.contrib import admin
from django.urls import path

from integrations import views as integration_views

admin.site.site_header = "ml-connector console"
admin.site.site_title = "ml-connector"
admin.site.index_title = "Operator console"

urlpatterns = [
    path("healthz", integration_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
