"""``server:``: how ``redline serve`` listens and who may call it.

Until ``server`` is a section of :class:`~redline.config.MonitorConfig`, ``redline serve`` reads the
``server:`` mapping of the same YAML file with :func:`redline.server.section.parse_server_config`,
which reports problems the way ``load_config`` does (``monitor.yaml: server.tokens[0].role: expected one of ...``).

Tokens: each has a ``name`` (the actor recorded for what it does), a ``role`` (``ingest``: post
events and check kills; ``read``: queries, the stream, metrics; ``admin``: everything) and either
the secret itself (``token``) or only its SHA-256 in hex (``token_sha256``), so a config file need
not hold secrets. ``REDLINE_ADMIN_TOKEN`` adds an admin token from the environment.

This module imports nothing of Redline's but :mod:`redline.exceptions`: the config loader imports
it, so it must not import the loader back (the section parser that does lives in
:mod:`redline.server.section`).
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Final

import msgspec

from redline.exceptions import ConfigError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "ROLES",
    "ServerConfig",
    "TokenConfig",
    "admin_token_from_env",
    "server_config_errors",
]

#: Roles from least to most powerful.
ROLES: Final = ("ingest", "read", "admin")
#: The environment variable that adds an admin token (named ``env-admin``).
ADMIN_TOKEN_ENV: Final = "REDLINE_ADMIN_TOKEN"
#: The shortest token accepted, from the config or the environment alike.
MIN_TOKEN_LENGTH: Final = 16

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class TokenConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One bearer token: who it is (``name``), what it may do (``role``) and its secret.

    Give ``token`` (the secret) or ``token_sha256`` (its SHA-256 in hex), not both.
    ``rate_limit_per_minute`` overrides the server's limit for this token.
    """

    name: str
    role: str
    token: str = ""
    token_sha256: str = ""
    rate_limit_per_minute: int | None = None


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The HTTP server: bind address, tokens and limits (see ``docs/server.md``)."""

    host: str = "127.0.0.1"
    port: int = 8765
    tokens: list[TokenConfig] = msgspec.field(default_factory=list)
    max_body_bytes: int = 1_048_576
    max_batch: int = 1000
    rate_limit_per_minute: int = 6000
    #: Requests without a valid token allowed per client address per minute (then 429).
    failed_auth_per_minute: int = 60
    cors_origins: list[str] = msgspec.field(default_factory=list)
    #: Addresses of reverse proxies whose ``X-Forwarded-For`` is believed (none by default).
    trusted_proxies: list[str] = msgspec.field(default_factory=list)
    #: Seconds between SSE heartbeats (comment lines that keep proxies from closing the stream).
    heartbeat_seconds: float = 15.0
    #: Messages buffered per SSE client before the oldest are dropped (and counted).
    stream_queue_size: int = 1000
    #: ``/readyz`` fails when events are queued and nothing was written for this long.
    ready_stall_seconds: float = 30.0
    #: ``POST /v1/traces``: OTLP batches (512 spans by default) are larger than event batches.
    otlp_max_body_bytes: int = 16_777_216
    otlp_max_spans: int = 20_000
    #: The resource attribute that names the agent when a span has no ``gen_ai.agent.name``.
    otlp_agent_attribute: str = "service.name"
    #: Values of that attribute mapped to agent names (unmapped values are used as they are).
    otlp_agents: dict[str, str] = msgspec.field(default_factory=dict)


def server_config_errors(config: ServerConfig, source: str = "<config>") -> list[str]:
    """Every semantic problem in ``config``, as ``source: server.key: what was expected``."""
    errors: list[str] = []

    def err(path: str, message: str) -> None:
        errors.append(f"{source}: server.{path}: {message}")

    if not 0 <= config.port <= 65535:
        err("port", f"expected a port number 0..65535, got {config.port}")
    if not config.host:
        err("host", "expected an address to bind, e.g. 127.0.0.1")
    for key in (
        "max_body_bytes",
        "max_batch",
        "rate_limit_per_minute",
        "failed_auth_per_minute",
        "stream_queue_size",
        "otlp_max_body_bytes",
        "otlp_max_spans",
    ):
        if getattr(config, key) < 1:
            err(key, "expected at least 1")
    for key in ("heartbeat_seconds", "ready_stall_seconds"):
        if getattr(config, key) <= 0:
            err(key, "expected a positive number of seconds")
    if not config.otlp_agent_attribute:
        err("otlp_agent_attribute", "expected an attribute name, e.g. service.name")
    names: set[str] = set()
    for i, tok in enumerate(config.tokens):
        p = f"tokens[{i}]"
        if not tok.name.strip():
            err(f"{p}.name", "expected a non-empty name (it is recorded as the actor)")
        elif tok.name in names:
            err(f"{p}.name", f"duplicate token name {tok.name!r}")
        names.add(tok.name)
        if tok.role not in ROLES:
            hint = difflib.get_close_matches(tok.role, ROLES, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            err(
                f"{p}.role",
                f"expected one of {', '.join(map(repr, ROLES))}, got {tok.role!r}{extra}",
            )
        if bool(tok.token) == bool(tok.token_sha256):
            err(p, "give exactly one of 'token' and 'token_sha256'")
        if tok.token and len(tok.token) < MIN_TOKEN_LENGTH:
            err(f"{p}.token", _TOO_SHORT)
        if tok.token_sha256 and not _HEX64.match(tok.token_sha256):
            err(f"{p}.token_sha256", "expected 64 hexadecimal characters (a SHA-256 digest)")
        if tok.rate_limit_per_minute is not None and tok.rate_limit_per_minute < 1:
            err(f"{p}.rate_limit_per_minute", "expected at least 1")
    return errors


_TOO_SHORT: Final = (
    f"too short: use at least {MIN_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 32`)"
)


def admin_token_from_env() -> str | None:
    """``REDLINE_ADMIN_TOKEN`` when set and non-empty.

    The same length rule as ``server.tokens[].token``: an environment variable is no excuse for
    a guessable admin token. A short one is a :class:`ConfigError` naming the variable (its
    value is never echoed).
    """
    value = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if value and len(value) < MIN_TOKEN_LENGTH:
        raise ConfigError([f"{ADMIN_TOKEN_ENV}: {_TOO_SHORT}"], file=ADMIN_TOKEN_ENV)
    return value or None
