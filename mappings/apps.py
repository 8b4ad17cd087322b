from django.apps import AppConfig


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = "Field, value and user mappings"
    default_auto_field = "django.db.models.BigAutoField"
