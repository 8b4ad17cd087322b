"""Print a fresh local .env for `make run`: random SECRET_KEY and FERNET_KEYS, DEBUG on (local console)."""

import secrets

from cryptography.fernet import Fernet


def main() -> None:
    print("# Written by `make run` for a local installation. Keep it: FERNET_KEYS decrypts stored secrets.")
    print("DEBUG=true")
    print(f"SECRET_KEY={secrets.token_urlsafe(48)}")
    print(f"FERNET_KEYS={Fernet.generate_key().decode()}")
    print("PUBLIC_BASE_URL=http://127.0.0.1:8000")
    print("# The demo tenant talks to the sandboxes on loopback http (refused by default without DEBUG).")
    print("ALLOW_LOOPBACK_HTTP=true")


if __name__ == "__main__":
    main()
