"""``redline.context()``: who is acting, for every integration below the ``with``.

Frameworks nest (a LangGraph node calls an OpenAI client; a CrewAI crew runs a LangChain tool),
and only the outermost layer knows which agent, session, user and tenant a step belongs to.
The identity lives in a :class:`contextvars.ContextVar`, so it follows ``asyncio`` tasks and
``contextvars.copy_context()`` into threads, and an inner ``context()`` overrides only the
fields it names.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

__all__ = ["NOBODY", "Identity", "context", "current_identity"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose step this is. Every field may be unset; integrations fill gaps from the framework."""

    agent: str | None = None
    session_id: str | None = None
    user: str | None = None
    tenant: str | None = None

    def over(self, base: Identity) -> Identity:
        """This identity with its unset fields taken from ``base``."""
        return Identity(
            agent=self.agent if self.agent is not None else base.agent,
            session_id=self.session_id if self.session_id is not None else base.session_id,
            user=self.user if self.user is not None else base.user,
            tenant=self.tenant if self.tenant is not None else base.tenant,
        )


#: The identity outside every :func:`context` (compare with ``is``: integrations skip merging).
NOBODY = Identity()
_CURRENT: contextvars.ContextVar[Identity] = contextvars.ContextVar(
    "redline_identity", default=NOBODY
)


def current_identity() -> Identity:
    """The identity set by the innermost enclosing :func:`context` (all ``None`` outside)."""
    return _CURRENT.get()


@contextmanager
def context(
    *,
    agent: str | None = None,
    session_id: str | None = None,
    user: str | None = None,
    tenant: str | None = None,
) -> Iterator[Identity]:
    """Set the agent, session, user and tenant for every integration inside the block.

    Fields left ``None`` keep the enclosing context's value, so
    ``with context(agent="sales"): with context(session_id=run_id): ...`` governs session
    ``run_id`` of agent ``sales``. An integration's own arguments win over the context.
    """
    outer = _CURRENT.get()
    inner = replace(outer, **_given(agent=agent, session_id=session_id, user=user, tenant=tenant))
    token = _CURRENT.set(inner)
    try:
        yield inner
    finally:
        _CURRENT.reset(token)


def _given(**fields: str | None) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v is not None}
