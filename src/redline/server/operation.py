"""The vocabulary of the route table: an :class:`Operation` and its :class:`Param` list.

Kept apart from the table itself (:mod:`redline.server.routes`) so that both the router and the
OpenAPI builder (:mod:`redline.server.openapi`) depend on this small module and never on each
other: what is served and what is documented come from one list without an import circle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from redline.server.auth import Principal

__all__ = ["Handler", "Operation", "Param"]

#: A handler takes the request and the authenticated caller (``None`` on public routes).
Handler = Callable[["Request", "Principal | None"], Awaitable["Response"]]


@dataclass(frozen=True)
class Param:
    """A query or path parameter, as documented (its parsing lives in :mod:`~.params`)."""

    name: str
    schema: dict[str, Any]
    description: str
    where: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One documented, routed operation: method, path, the permission it needs, its handler."""

    method: str
    path: str
    op_id: str
    summary: str
    handler: Handler
    permission: str | None
    responses: dict[int, tuple[str, Any]]
    params: tuple[Param, ...] = ()
    body: Any = None
    description: str = ""
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def route_path(self) -> str:
        """The Starlette path (``{agent}`` may contain slashes)."""
        return self.path.replace("{agent}", "{agent:path}")

    @property
    def query_names(self) -> frozenset[str]:
        """The query parameters this operation takes (any other is a 400)."""
        return frozenset(p.name for p in self.params if p.where == "query")
