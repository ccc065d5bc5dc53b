"""``GET /v1/stream``: Server-Sent Events (events, alerts, kills) as they happen.

The handler only connects a client to the app's :class:`~redline.server.sse.StreamHub` and
disconnects it when the response ends; framing, heartbeats and per-client bounded queues are the
hub's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext

__all__ = ["StreamHandlers"]


class StreamHandlers:
    """The live stream."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def stream(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/stream``: Server-Sent Events (events, alerts, kills) as they happen."""
        q = request.query_params
        agent = params.text(q.get("agent"), "agent")
        raw_types = q.get("types")
        types = [t.strip() for t in raw_types.split(",") if t.strip()] if raw_types else None
        hub = self.ctx.hub
        client = hub.connect(agent=agent, types=types)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in client.frames(hub.heartbeat_seconds, hub.hello()):
                    yield chunk
            finally:
                hub.disconnect(client)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
