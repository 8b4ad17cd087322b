from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Tenants, connections and flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import secrets  # noqa: F401  (connects the FERNET_KEYS setting_changed handler)
        from .acumatica.push import receiver as push_receiver
        from .asana.webhooks import receiver as asana_receiver
        from .models import AcumaticaConnection, AsanaConnection, AsanaWebhook

        # The receivers cache each endpoint and its secret per process (base/webhooks.py): a change
        # made in this process clears the cache at once; other processes re-read within ENDPOINT_TTL,
        # or at once when a delivery fails verification against their cached secret.
        for model, rcv in (
            (AsanaWebhook, asana_receiver),
            (AsanaConnection, asana_receiver),
            (AcumaticaConnection, push_receiver),
        ):
            for signal in (post_save, post_delete):
                signal.connect(
                    rcv.invalidate, sender=model, weak=False, dispatch_uid=f"ingest-{model.__name__}-{signal}"
                )
