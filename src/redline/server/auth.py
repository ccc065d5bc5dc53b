"""Bearer tokens and roles: who is calling, and may they do this?

Secrets are never kept, compared or logged as such: each configured token is reduced to its
SHA-256 digest at start-up, and a presented token is hashed and compared with every digest by
:func:`hmac.compare_digest` (constant time, and no early exit, so timing says nothing about which
token nearly matched).

Roles and what they permit:

=========  ====================================================================================
role       permissions
=========  ====================================================================================
ingest     ``ingest`` (POST /v1/events), ``check`` (GET /v1/check)
read       ``read`` (queries, the stream, metrics, agents, alerts, kills, stats), ``check``
admin      everything: also ``admin`` (kill, revive, acknowledge, export, verify)
=========  ====================================================================================
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Final, NamedTuple

from redline.server.config import TokenConfig

__all__ = ["PERMISSIONS", "Principal", "TokenBook", "token_digest"]

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "ingest": frozenset({"ingest", "check"}),
    "read": frozenset({"read", "check"}),
    "admin": frozenset({"ingest", "read", "check", "admin"}),
}


class Principal(NamedTuple):
    """An authenticated caller: the token's ``name`` (recorded as the actor) and ``role``."""

    name: str
    role: str
    rate_limit_per_minute: int | None = None

    def may(self, permission: str) -> bool:
        """Whether this caller's role grants ``permission``."""
        return permission in PERMISSIONS.get(self.role, frozenset())


def token_digest(token: str) -> bytes:
    """The SHA-256 digest of a token (what a config's ``token_sha256`` holds, as hex)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenBook:
    """The configured tokens, as digests; :meth:`authenticate` maps a header to a caller."""

    def __init__(self, tokens: Iterable[TokenConfig], *, admin_token: str | None = None) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        for tok in tokens:
            digest = (
                bytes.fromhex(tok.token_sha256) if tok.token_sha256 else token_digest(tok.token)
            )
            self._entries.append((digest, Principal(tok.name, tok.role, tok.rate_limit_per_minute)))
        if admin_token:
            self._entries.append((token_digest(admin_token), Principal("env-admin", "admin")))

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller for an ``Authorization: Bearer <token>`` header, or ``None``."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return self.lookup(token)

    def lookup(self, token: str) -> Principal | None:
        """The caller a bare token belongs to, or ``None`` (constant time in the token)."""
        digest = token_digest(token)
        found: Principal | None = None
        for candidate, principal in self._entries:
            if hmac.compare_digest(candidate, digest) and found is None:
                found = principal
        return found
