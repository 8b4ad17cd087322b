from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Tenants, connections and flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import secrets  # noqa: F401  (connects the FERNET_KEYS setting_changed handler)
