"""Agent configuration: ``agent.toml`` (tomllib) with secrets taken from environment variables.

Secrets (API keys, HMAC secrets, the Sage password) are named by ``*_env`` keys and read from the
environment of the Windows service; an inline value (``api_key = "…"``) is accepted for tests and
loopback sandboxes only. See ``agent.example.toml`` for every key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from .fields import DEFAULT_FIELD_RULES, FieldRules

#: ``read`` vendors/GL/POs · ``po:create`` create purchase orders · ``selftest`` the read-only install
#: check (GET /v1/selftest) · ``admin`` drain/resume (and selftest). Issue 18: a key carries only what it
#: needs, so the connector's key (the default scopes) cannot drain, resume or reconfigure the agent.
SCOPES = ("read", "po:create", "selftest", "admin")
DEFAULT_SCOPES = ("read", "po:create", "selftest")


class ConfigError(Exception):
    """The configuration is unusable; the agent refuses to start."""


@dataclass(frozen=True)
class Client:
    """One caller. ``previous_*`` is the pair being rotated out: valid alongside the new one until
    ``previous_valid_until`` (UTC; None = until removed from the file), with the same scopes."""

    name: str
    api_key: str
    hmac_secret: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    previous_api_key: str = ""
    previous_hmac_secret: str = ""
    previous_valid_until: datetime | None = None

    def credentials(self, now: datetime | None = None) -> dict[str, str]:
        """API key -> HMAC secret for every pair valid at ``now`` (two during a rotation)."""
        pairs = {self.api_key: self.hmac_secret}
        if self.previous_api_key and (
            self.previous_valid_until is None or (now or datetime.now(UTC)) < self.previous_valid_until
        ):
            pairs[self.previous_api_key] = self.previous_hmac_secret
        return pairs


@dataclass
class BOIConfig:
    home: str = ""
    user: str = ""
    password: str = ""
    prog_id: str = "ProvideX.Script"
    pool_size: int = 2
    session_max_age_seconds: float = 4 * 3600  # UAF recycles pooled sessions after 4 h (§1.3)
    acquire_timeout_seconds: float = 30.0
    max_scan_rows: int = 25000  # UAF caps _svc scans at 25k rows (§8.7)
    byref: str = "variant"  # ByRef outputs as by-reference VARIANTs (byref.py); "plain" only if typed
    methods: dict[str, str] = field(default_factory=dict)  # [boi.methods] overrides (boi_names.METHODS)
    next_number_column: str = "NextPurchaseOrderNo$"  # [U] PO_Options column read by selftest
    lock_pattern: str = ""  # "" = boi.DEFAULT_LOCK_PATTERN (whole words: in use / locked / lock)

    @property
    def names(self) -> dict[str, str]:
        from .boi_names import method_names

        return method_names(self.methods)

    @property
    def next_po_number_method(self) -> str:
        return self.names["next_po_number"]


@dataclass
class AgentConfig:
    company: str = "ABC"
    backend: str = "simulated"
    host: str = "127.0.0.1"
    port: int = 8443
    threads: int = 8
    tls_cert: str = ""
    tls_key: str = ""
    tls_key_password: str = ""
    allow_plain_http: bool = False
    clients: list[Client] = field(default_factory=list)
    ledger_path: str = "agent-ledger.sqlite3"
    simulated_state_path: str = "agent-simulated.sqlite3"
    simulated_seed_demo: bool = True
    server_timezone: str = ""
    max_skew_seconds: int = 60  # issue 18: ±60 s; nonces are remembered this long
    max_nonces: int = 100_000
    max_body_bytes: int = 1024 * 1024
    drain_timeout_seconds: float = 60.0
    write_timeout_seconds: float = 120.0
    rules: FieldRules = field(default_factory=FieldRules)
    boi: BOIConfig = field(default_factory=BOIConfig)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def timezone(self) -> tzinfo | None:
        """The Sage server's zone for DateUpdated/TimeUpdated (§2.5); None = the OS local zone.

        An IANA name needs a tz database; on Windows that is the ``tzdata`` package."""
        if not self.server_timezone:
            return None
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.server_timezone)

    def validate(self) -> None:
        if self.backend not in ("boi", "simulated"):
            raise ConfigError("agent.backend must be 'boi' or 'simulated'")
        if not self.clients:
            raise ConfigError(
                "at least one [[auth.clients]] entry with an API key and HMAC secret is required"
            )
        seen: set[str] = set()
        for client in self.clients:
            pairs = [(client.api_key, client.hmac_secret, "")]
            if client.previous_api_key or client.previous_hmac_secret:
                pairs.append((client.previous_api_key, client.previous_hmac_secret, "previous "))
            for key, secret, which in pairs:
                if len(secret) < 32:
                    raise ConfigError(
                        f"client {client.name}: the {which}HMAC secret must be at least 32 characters"
                    )
                if len(key) < 16:
                    raise ConfigError(
                        f"client {client.name}: the {which}API key must be at least 16 characters"
                    )
                if key in seen:
                    raise ConfigError(f"client {client.name}: the {which}API key is used twice")
                seen.add(key)
            unknown = set(client.scopes) - set(SCOPES)
            if unknown:
                raise ConfigError(f"client {client.name}: unknown scopes {sorted(unknown)}")
        if not self.tls_enabled and not (
            self.allow_plain_http and self.host in ("127.0.0.1", "::1", "localhost")
        ):
            raise ConfigError(
                "server.tls_cert and server.tls_key are required (plain HTTP is allowed only on "
                "loopback with server.allow_plain_http = true)"
            )
        if self.backend == "boi" and not (self.boi.home and self.boi.user and self.boi.password):
            raise ConfigError("boi.home and the Sage user/password environment variables are required")
        if self.boi.byref not in ("variant", "plain"):
            raise ConfigError("boi.byref must be 'variant' or 'plain'")
        try:
            re.compile(self.boi.lock_pattern)
        except re.error as exc:
            raise ConfigError(f"boi.lock_pattern is not a regular expression: {exc}") from None
        try:
            self.boi.names  # noqa: B018 — validates [boi.methods]
        except ValueError as exc:
            raise ConfigError(f"boi.methods: {exc}") from None
        if not 5 <= self.max_skew_seconds <= 900:
            raise ConfigError("agent.max_skew_seconds must be between 5 and 900")
        self.timezone()


def _secret(section: Mapping[str, Any], name: str, env: Mapping[str, str], where: str) -> str:
    env_name = section.get(f"{name}_env")
    if env_name:
        value = env.get(str(env_name), "")
        if not value:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")
        return value
    return str(section.get(name, ""))


def _instant(value: Any, where: str) -> datetime | None:
    """TOML datetime or ISO text -> aware UTC (a naive value is taken as UTC)."""
    if value in (None, ""):
        return None
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: previous_valid_until must be an ISO date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def from_dict(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AgentConfig:
    """Build and validate a config from parsed TOML (or a dict in tests)."""
    env = os.environ if env is None else env
    agent, server = data.get("agent", {}), data.get("server", {})
    simulated, boi, rules = data.get("simulated", {}), data.get("boi", {}), data.get("rules", {})
    clients = [
        Client(
            name=str(c.get("name", f"client{i}")),
            api_key=_secret(c, "api_key", env, f"auth.clients[{i}]"),
            hmac_secret=_secret(c, "hmac_secret", env, f"auth.clients[{i}]"),
            scopes=tuple(c.get("scopes", DEFAULT_SCOPES)),
            previous_api_key=_secret(c, "previous_api_key", env, f"auth.clients[{i}]"),
            previous_hmac_secret=_secret(c, "previous_hmac_secret", env, f"auth.clients[{i}]"),
            previous_valid_until=_instant(c.get("previous_valid_until"), f"auth.clients[{i}]"),
        )
        for i, c in enumerate(data.get("auth", {}).get("clients", []))
    ]
    lengths = dict(DEFAULT_FIELD_RULES)
    for column, limit in data.get("field_lengths", {}).items():
        if column not in lengths and not column.startswith("UDF_"):
            raise ConfigError(f"field_lengths: unknown column {column}")
        policy = lengths.get(column, lengths["UDF"])[1]
        lengths[column] = (int(limit), policy)
    config = AgentConfig(
        company=str(agent.get("company", "ABC")).upper(),
        backend=str(agent.get("backend", "simulated")),
        ledger_path=str(agent.get("ledger_path", "agent-ledger.sqlite3")),
        server_timezone=str(agent.get("server_timezone", "")),
        max_skew_seconds=int(agent.get("max_skew_seconds", 60)),
        max_nonces=int(agent.get("max_nonces", 100_000)),
        max_body_bytes=int(agent.get("max_body_bytes", 1024 * 1024)),
        drain_timeout_seconds=float(agent.get("drain_timeout_seconds", 60)),
        write_timeout_seconds=float(agent.get("write_timeout_seconds", 120)),
        host=str(server.get("host", "127.0.0.1")),
        port=int(server.get("port", 8443)),
        threads=int(server.get("threads", 8)),
        tls_cert=str(server.get("tls_cert", "")),
        tls_key=str(server.get("tls_key", "")),
        tls_key_password=_secret(server, "tls_key_password", env, "server")
        if ("tls_key_password_env" in server or "tls_key_password" in server)
        else "",
        allow_plain_http=bool(server.get("allow_plain_http", False)),
        clients=clients,
        simulated_state_path=str(simulated.get("state_path", "agent-simulated.sqlite3")),
        simulated_seed_demo=bool(simulated.get("seed_demo", True)),
        rules=FieldRules(
            lengths=lengths,
            external_id_udf=str(rules.get("external_id_udf", "UDF_ASANA_GID")),
            gl_account_mask=str(rules.get("gl_account_mask", "####-##-##")),
            numeric_udfs=frozenset(str(n) for n in rules.get("numeric_udfs", [])),
        ),
    )
    if config.backend == "boi":
        config.boi = BOIConfig(
            home=str(boi.get("home", "")),
            user=_secret(boi, "user", env, "boi"),
            password=_secret(boi, "password", env, "boi"),
            prog_id=str(boi.get("prog_id", "ProvideX.Script")),
            pool_size=int(boi.get("pool_size", 2)),
            session_max_age_seconds=float(boi.get("session_max_age_seconds", 4 * 3600)),
            acquire_timeout_seconds=float(boi.get("acquire_timeout_seconds", 30)),
            max_scan_rows=int(boi.get("max_scan_rows", 25000)),
            byref=str(boi.get("byref", "variant")),
            methods={str(k): str(v) for k, v in boi.get("methods", {}).items()},
            next_number_column=str(boi.get("next_number_column", "NextPurchaseOrderNo$")),
            lock_pattern=str(boi.get("lock_pattern", "")),
        )
    config.validate()
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read ``agent.toml``; relative SQLite paths resolve against the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    for section, key in (
        ("agent", "ledger_path"),
        ("simulated", "state_path"),
        ("server", "tls_cert"),
        ("server", "tls_key"),
    ):
        value = data.get(section, {}).get(key)
        if value and not Path(value).is_absolute():
            data[section][key] = str(path.parent / value)
    return from_dict(data, env)
