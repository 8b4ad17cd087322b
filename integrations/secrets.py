"""Secrets at rest: which fields are encrypted, key rotation, and cache resets when keys change.

django-fernet-fields caches its Fernet instance per field; when FERNET_KEYS changes (key rotation,
tests), the caches are dropped so the new key list takes effect in this process.
"""

from __future__ import annotations

from collections.abc import Iterator

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.core.signals import setting_changed
from django.db import models, transaction
from django.dispatch import receiver
from fernet_fields import EncryptedField

from .base.errors import ConfigurationError


class KeyRotationFailed(ConfigurationError):
    """A stored secret cannot be decrypted with any configured key; the rotation wrote nothing."""


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[EncryptedField]]]:
    """Every concrete model with encrypted fields, and those fields."""
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        if fields:
            yield model, fields


def reset_fernet_caches() -> None:
    for _model, fields in encrypted_fields():
        for field in fields:
            for cached in ("keys", "fernet_keys", "fernet"):
                field.__dict__.pop(cached, None)


@receiver(setting_changed)
def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting in ("FERNET_KEYS", "FERNET_USE_HKDF", "SECRET_KEY"):
        reset_fernet_caches()


def rotate_keys(batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every secret with the first key in FERNET_KEYS.

    Values are read with any configured key (MultiFernet) and written back with the first one, so
    after rotation the retired keys can be removed from FERNET_KEYS. Runs in one transaction: a
    failure leaves every row as it was. Returns rows rewritten per model.
    """
    reset_fernet_caches()
    counts: dict[str, int] = {}
    with transaction.atomic():
        for model, fields in encrypted_fields():
            names = [f.name for f in fields]
            rows = model._base_manager.only("pk", *names)
            # Chunks of primary keys, each read whole: no server-side cursor is left open when a
            # value fails to decrypt (on PostgreSQL that would poison the rolled-back transaction).
            pks = list(model._base_manager.order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(pks), batch_size):
                chunk = pks[start : start + batch_size]
                try:
                    objs = list(rows.filter(pk__in=chunk))
                except InvalidToken:
                    raise KeyRotationFailed(
                        f"{model._meta.label} #{_undecryptable(rows, chunk)} holds a secret that no key "
                        "in FERNET_KEYS decrypts (was its key removed before rotating?); nothing was "
                        "re-encrypted"
                    ) from None
                for obj in objs:
                    # Writing the decrypted values back encrypts them again with the first key.
                    model._base_manager.filter(pk=obj.pk).update(
                        **{name: getattr(obj, name) for name in names}
                    )
            counts[model._meta.label] = len(pks)
    return counts


def _undecryptable(rows: models.QuerySet, pks: list) -> str:
    for pk in pks:
        try:
            list(rows.filter(pk=pk))
        except InvalidToken:
            return str(pk)
    return "?"


def secret_field_names(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedField))
