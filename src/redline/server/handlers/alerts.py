"""``GET /v1/alerts`` and ``POST /v1/alerts/{id}/ack``: the fleet's alerts, from the store.

Alerts live in the store as ``alert`` events, one per state change (firing, acknowledged,
resolved), written by whichever monitor raised or changed the alert. Listing them from the store,
not from this process's memory, shows every process's alerts on a shared store, and survives a
restart of the server. An acknowledgement goes through :meth:`redline.Monitor.ack_alert`, which
records the new state, tells the channels, and is adopted by the monitor that raised the alert.
"""

from __future__ import annotations

from typing import Any, Final

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.alerts.history import latest_alerts
from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response
from redline.server.schemas import AckFilter, AckRequest, AlertList
from redline.store.base import EventQuery

__all__ = ["ALERT_STATES", "AlertHandlers", "latest_alerts"]

ALERT_STATES: Final = ("firing", "acknowledged", "resolved")


class AlertHandlers:
    """Alerts: listed from the store, acknowledged through the monitor (audited)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def get_alerts(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/alerts``: each alert's newest state, newest first, optionally filtered."""
        q = request.query_params
        state = q.get("state")
        if state is not None:
            state = params.choice(state, ALERT_STATES, "state")
        limit = params.integer(q.get("limit"), "limit", default=100, low=1, high=1000)
        agent = params.text(q.get("agent"), "agent")
        monitor = self.ctx.monitor

        def run() -> AlertList:
            monitor.flush()  # this process's newest alert events are in the store first
            # An alert's events all carry its agent, so the agent filter can go to the store.
            stored = monitor.store.query(EventQuery(event_type="alert", agent=agent, order="desc"))
            found = latest_alerts(stored, state=state, agent=agent, limit=limit + 1)
            return AlertList(alerts=found[:limit], truncated=len(found) > limit)

        return json_response(await anyio.to_thread.run_sync(run))

    async def ack_alert(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/alerts/{id}/ack``: acknowledge a firing alert (audited).

        Goes through ``Monitor.ack_alert``: the acknowledgement is stored as an ``alert`` event,
        sent to the channels (PagerDuty/OpsGenie acknowledge), and adopted by the monitor that
        raised the alert if that is another process on the same store.
        """
        assert who is not None
        ctx = self.ctx
        alert_id = request.path_params["id"]
        body = await ctx.body.json(request, AckRequest, empty_ok=True)

        def acknowledge() -> Any:
            acked = ctx.monitor.ack_alert(alert_id, by=who.name)
            if acked is not None:
                ctx.audit("alert_ack", who, alert_id=alert_id, note=body.note)
            return acked

        acked = await anyio.to_thread.run_sync(acknowledge)
        if acked is None:
            raise ApiError(404, "not_found", f"no firing alert {alert_id!r}")
        return json_response(acked)

    async def ack_alerts(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/alerts/ack``: acknowledge every firing alert of a filter (audited once).

        The filter (agent, kind, rule, severity; all optional) selects from every process's
        firing alerts in the store, as ``GET /v1/alerts?state=firing`` lists them.
        """
        assert who is not None
        ctx = self.ctx
        body = await ctx.body.json(request, AckFilter, empty_ok=True)
        filters = {"agent": body.agent, "kind": body.kind, "rule": body.rule}

        def acknowledge() -> AlertList:
            done = ctx.monitor.ack_alerts(who.name, **filters, severity=body.severity)
            ctx.audit(
                "alert_ack",
                who,
                alert_ids=[a.id for a in done],
                filter={**filters, "severity": body.severity},
                note=body.note,
            )
            return AlertList(alerts=done)

        return json_response(await anyio.to_thread.run_sync(acknowledge))
