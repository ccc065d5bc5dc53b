"""``GET /v1/metrics/history``: chart history from the store's per-minute rollups.

The dashboard's charts (and any other client) read a window of the past here instead of sampling
the live metrics: points per ``step`` seconds over ``[since, until)``, for one agent or the
fleet, from the :class:`~redline.store.base.MetricHistory` capability every backend has (SQLite
and PostgreSQL keep rollups as they write; memory and JSONL compute from their events). The
query runs in a worker thread: a day of minutes is at most 1,440 cells per agent.
"""

from __future__ import annotations

import math
from typing import Final

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response
from redline.server.schemas import MetricHistory
from redline.store.base import MetricHistory as HistoryCapable

__all__ = ["MAX_POINTS", "HistoryHandlers", "default_step"]

#: The most points one answer holds (a week at 7-minute steps, a day at 1-minute steps).
MAX_POINTS: Final = 1500
#: Default window: the last hour.
_DEFAULT_RANGE: Final = 3600.0
_STEPS: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def default_step(seconds: float, target: int = 120) -> int:
    """A round step (1 min, 2 min, 5 min, ... 1 day) giving about ``target`` points."""
    want = seconds / target
    return next((s for s in _STEPS if s >= want), _STEPS[-1])


class HistoryHandlers:
    """``GET /v1/metrics/history``."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def get_history(self, request: Request, who: Principal | None) -> Response:
        q = request.query_params
        now = self.ctx.monitor.clock.time()
        until = params.time_param(q.get("until"), "until", now)
        until = now if until is None else until
        since = params.time_param(q.get("since"), "since", now)
        since = until - _DEFAULT_RANGE if since is None else since
        if not since < until:
            raise ApiError(400, "invalid_request", "since: expected a time before until")
        span = until - since
        step: int = params.integer(
            q.get("step"), "step", default=default_step(span), low=60, high=31 * 86400
        )
        if step % 60:
            raise ApiError(400, "invalid_request", "step: expected a whole number of minutes")
        count = math.ceil((until - (since // step) * step) / step)
        if count > MAX_POINTS:
            raise ApiError(
                400,
                "invalid_request",
                f"step: {count} points over this range; the most is {MAX_POINTS} "
                f"(use step >= {math.ceil(span / MAX_POINTS / 60) * 60})",
            )
        agent = params.text(q.get("agent"), "agent")
        store = self.ctx.monitor.store
        if not isinstance(store, HistoryCapable):
            raise ApiError(501, "not_supported", f"the {store.backend} store keeps no history")
        points = await anyio.to_thread.run_sync(store.metric_history, agent, since, until, step)
        return json_response(
            MetricHistory(agent=agent, since=since, until=until, step=step, points=points)
        )
