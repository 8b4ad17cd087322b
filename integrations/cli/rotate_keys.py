"""`connector rotate-keys`: re-encrypt every stored secret with the first key in FERNET_KEYS."""

from __future__ import annotations

from integrations.secrets import KeyRotationFailed, rotate_keys

NAME = "rotate-keys"
HELP = (
    "Re-encrypt every secret with the first key of FERNET_KEYS. Put the new key first, keep the old "
    "ones after it, run this, then remove the old keys."
)


def add_arguments(parser) -> None:
    pass


def run(options, out) -> int:
    try:
        counts = rotate_keys()
    except KeyRotationFailed as exc:
        out.error(f"Key rotation failed: {exc}")
        return 1
    total = sum(counts.values())
    for label, n in sorted(counts.items()):
        out.write(f"{label}: {n} row(s) re-encrypted")
    out.success(
        f"Re-encrypted {total} row(s) with the first key; older keys can now be removed from FERNET_KEYS."
    )
    return 0
