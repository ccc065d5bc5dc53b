"""What every handler shares: the monitor, the server's config, tokens, limits and stream hub.

One :class:`ServerContext` is built per app by :func:`redline.server.app.create_app` and handed
to each handler group, so a handler module names what it needs (``ctx.monitor``, ``ctx.body``)
instead of reaching into an application object. ``app.state.api`` is this context (the CLI reads
``app.state.api.tokens`` to say how many tokens are configured).
"""

from __future__ import annotations

import time
from typing import Any

from redline.events import AgentEvent
from redline.monitor import Monitor
from redline.server.auth import Principal, TokenBook
from redline.server.config import ServerConfig
from redline.server.params import BodyReader
from redline.server.ratelimit import RateLimiter
from redline.server.sse import StreamHub

__all__ = ["ServerContext"]


class ServerContext:
    """The parts one app serves from; built once, shared by every handler."""

    def __init__(
        self,
        monitor: Monitor,
        config: ServerConfig,
        tokens: TokenBook,
        limiter: RateLimiter,
        hub: StreamHub,
        *,
        metrics_app: Any = None,
    ) -> None:
        self.monitor = monitor
        self.config = config
        self.tokens = tokens
        self.limiter = limiter
        self.hub = hub
        self.metrics_app = metrics_app
        self.body = BodyReader(config.max_body_bytes)
        #: Failed authentications per client address (``failed_auth_per_minute``), then 429s.
        self.failed_auth = RateLimiter(config.failed_auth_per_minute)
        self.started_at = time.time()

    @property
    def client_disconnects(self) -> int:
        """Requests whose client hung up while sending the body."""
        return self.body.client_disconnects

    def audit(self, action: str, who: Principal, **data: Any) -> None:
        """Record an admin action as a ``security`` event (actor = the token's name)."""
        self.monitor.record(
            AgentEvent(
                agent="*",
                event_type="security",
                level="warning",
                data={"action": action, "actor": who.name, "role": who.role, **data},
            )
        )
