"""``GET /v1/agents``, ``/v1/metrics``, ``/v1/metrics/{agent}`` and ``/v1/stats``.

Each agent's row carries the kill that stops it as the monitor decides it
(:meth:`redline.Monitor.kill_for`: global, then agent, then session), so neither this module nor
the dashboard has its own idea of precedence: the dashboard shows ``state`` and ``kill`` as sent.
"""

from __future__ import annotations

import time

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response
from redline.server.schemas import AgentList, AgentRow

__all__ = ["FleetHandlers"]


class FleetHandlers:
    """The fleet's state and metrics, computed on read from the monitor's live windows."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    def _window(self, raw: str | None) -> int | None:
        high = self.ctx.monitor.max_window
        window: int | None = params.integer(raw, "window", default=None, low=1, high=high)
        return window

    async def get_agents(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/agents``: every agent with its metrics and kill state (O(agents))."""
        q = request.query_params
        window = self._window(q.get("window"))
        detail = params.choice(q.get("detail", "summary"), ("summary", "full"), "detail")
        result = await anyio.to_thread.run_sync(self._agents, window, detail == "full")
        return json_response(result)

    def _agents(self, window: int | None, full: bool) -> AgentList:
        m = self.ctx.monitor
        kills = m.kills()
        rows: list[AgentRow] = []
        seen: set[str] = set()
        for snap in m.get_all_metrics(window):
            seen.add(snap.agent)
            kill = m.kill_for(snap.agent)
            rows.append(
                AgentRow(
                    agent=snap.agent,
                    state="killed" if kill is not None else "running",
                    kill=kill,
                    event_count=snap.event_count,
                    events_per_minute=snap.events_per_minute,
                    cost_per_minute=snap.cost_per_minute,
                    cost_total=snap.cost_total,
                    error_rate=snap.error_rate,
                    p95_latency_ms=snap.p95_latency_ms,
                    last_event_at=snap.last_event_at,
                    metrics=snap if full else None,
                )
            )
        # A killed agent with nothing in the window is still listed: it is stopped, not gone.
        for rec in kills:
            if rec.scope == "agent" and rec.target not in seen:
                seen.add(rec.target)
                rows.append(AgentRow(agent=rec.target, state="killed", kill=m.kill_for(rec.target)))
        rows.sort(key=lambda r: r.agent)
        return AgentList(
            window_seconds=min(window or m.default_window, m.max_window),
            timestamp=m.clock.time(),
            global_kill=next((k for k in kills if k.scope == "global"), None),
            agents=rows,
        )

    async def get_agent_metrics(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/metrics/{agent}``: one agent's snapshot over ``window`` seconds."""
        agent = request.path_params["agent"]
        if not agent or len(agent) > params.MAX_TEXT:
            raise ApiError(400, "invalid_request", "agent: expected 1..256 characters")
        window = self._window(request.query_params.get("window"))
        monitor = self.ctx.monitor
        snap = await anyio.to_thread.run_sync(lambda: monitor.get_metrics(agent, window))
        return json_response(snap)

    async def get_fleet_metrics(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/metrics``: the whole fleet's snapshot (agent ``*``)."""
        window = self._window(request.query_params.get("window"))
        monitor = self.ctx.monitor
        snap = await anyio.to_thread.run_sync(lambda: monitor.get_metrics(None, window, fleet=True))
        return json_response(snap)

    async def get_stats(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/stats``: Redline's own health, and the server's."""
        ctx = self.ctx
        stats = ctx.monitor.stats()
        stats["server"] = {
            "uptime_seconds": time.time() - ctx.started_at,
            "stream_clients": ctx.hub.clients,
            "stream_dropped": ctx.hub.dropped,
            "rate_limited": ctx.limiter.limited,
        }
        return json_response(stats)
