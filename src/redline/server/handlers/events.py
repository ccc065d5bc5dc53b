"""``GET /v1/events``: stored events, filtered, newest first by default, cursor-paginated.

The query runs on a worker thread after a flush, so what this process recorded a moment ago is
in the page; the cursor is a ``seq``, which every store orders by, in either direction.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import encode
from redline.store.base import EventQuery, StoredEvent

__all__ = ["EventHandlers", "event_dict"]


class EventHandlers:
    """``GET /v1/events``."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def get_events(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/events``: filtered, newest first by default, cursor-paginated."""
        q = request.query_params
        monitor = self.ctx.monitor
        now = monitor.clock.time()
        order = params.choice(q.get("order", "desc"), ("asc", "desc"), "order")
        limit = params.integer(q.get("limit"), "limit", default=100, low=1, high=1000)
        cursor = params.integer(q.get("cursor"), "cursor", default=None, low=0, high=2**62)
        query = EventQuery(
            agent=params.text(q.get("agent"), "agent"),
            event_type=params.text(q.get("type"), "type"),
            session_id=params.text(q.get("session"), "session"),
            user=params.text(q.get("user"), "user"),
            since=params.time_param(q.get("since"), "since", now),
            until=params.time_param(q.get("until"), "until", now),
            limit=limit,
            order=order,
            after_seq=cursor if order == "asc" else None,
            before_seq=cursor if order == "desc" else None,
        )

        def run() -> bytes:
            monitor.flush()
            events = [event_dict(s) for s in monitor.store.query(query)]
            next_cursor = events[-1]["seq"] if len(events) == limit else None
            return encode({"events": events, "next_cursor": next_cursor})

        body = await anyio.to_thread.run_sync(run)
        return Response(body, media_type="application/json")


def event_dict(stored: StoredEvent) -> dict[str, Any]:
    """A stored event for the API: its fields, ``seq`` and hashes; ``event_type`` always set."""
    out = stored.to_dict()
    out.setdefault("event_type", stored.event.event_type)
    return out
