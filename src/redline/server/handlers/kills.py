"""``POST /v1/kill``, ``POST /v1/revive``, ``GET /v1/check``, ``GET /v1/kills`` and
``GET /v1/budgets``: what stops an agent.

Kills and revives go through the monitor's operator calls, which return once the change is
committed to the store (every monitor on it obeys), with the token's name as actor. ``check`` is
the monitor's own O(1) ``check()``, answered inline on the event loop; which kill covers an agent
is the monitor's decision (:meth:`redline.Monitor.kill_for`), never this module's.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.exceptions import AgentKilledError
from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response
from redline.server.schemas import (
    BudgetList,
    BudgetRow,
    CheckResponse,
    KillAgent,
    KillList,
    KillRequest,
    KillResponse,
    KillSession,
    ReviveAgent,
    ReviveRequest,
    ReviveResponse,
    ReviveSession,
)
from redline.store.base import KillRecord

__all__ = ["KillHandlers"]

_NOT_KILLED = b'{"killed":false}'


class KillHandlers:
    """Kill switches over HTTP."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def kill(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/kill``: kill an agent, a session or the fleet (actor = the token)."""
        assert who is not None
        req: Any = await self.ctx.body.json(request, KillRequest)  # type: ignore[arg-type]
        m = self.ctx.monitor

        def run() -> KillRecord:
            if isinstance(req, KillAgent):
                return m.kill_agent(req.target, req.reason, actor=who.name, ttl_seconds=req.ttl)
            if isinstance(req, KillSession):
                return m.kill_session(
                    req.target, req.reason, actor=who.name, ttl_seconds=req.ttl, agent=req.agent
                )
            return m.kill_global(req.reason, actor=who.name, ttl_seconds=req.ttl)

        rec = await anyio.to_thread.run_sync(run)
        return json_response(KillResponse(kill=rec))

    async def revive(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/revive``: lift a kill (actor = the token)."""
        assert who is not None
        req: Any = await self.ctx.body.json(request, ReviveRequest)  # type: ignore[arg-type]
        m = self.ctx.monitor

        def run() -> bool:
            if isinstance(req, ReviveAgent):
                return m.revive(agent=req.target, actor=who.name)
            if isinstance(req, ReviveSession):
                return m.revive(session_id=req.target, actor=who.name)
            return m.revive_global(actor=who.name)

        lifted = await anyio.to_thread.run_sync(run)
        scope: Any = {ReviveAgent: "agent", ReviveSession: "session"}.get(type(req), "global")
        target = getattr(req, "target", "*")
        return json_response(ReviveResponse(revived=lifted, scope=scope, target=target))

    async def check(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/check``: is this agent/session killed? An O(1) lookup, answered inline."""
        q = request.query_params
        agent = q.get("agent")
        if not agent or len(agent) > params.MAX_TEXT:
            raise ApiError(400, "invalid_request", "agent: required, 1..256 characters")
        session = params.text(q.get("session"), "session")
        m = self.ctx.monitor
        try:
            m.check(agent, session)
        except AgentKilledError as exc:
            # check() also fails closed on a stale kill state, which has no record to expire.
            rec = m.kill_for(agent, session)
            covering = rec is not None and (rec.scope, rec.target) == (exc.scope, exc.target)
            return json_response(
                CheckResponse(
                    killed=True,
                    scope=exc.scope,
                    target=exc.target,
                    reason=exc.reason,
                    actor=exc.actor,
                    expires_at=rec.expires_at if covering and rec is not None else None,
                )
            )
        return Response(_NOT_KILLED, media_type="application/json")

    async def get_kills(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/kills``: every active kill."""
        return json_response(KillList(kills=self.ctx.monitor.kills()))

    async def get_budgets(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/budgets``: every budget key's spend and holds (read from the ledger)."""
        states = await anyio.to_thread.run_sync(self.ctx.monitor.budgets)
        rows = [BudgetRow(**s.to_dict()) for s in states]
        return json_response(BudgetList(budgets=rows))
