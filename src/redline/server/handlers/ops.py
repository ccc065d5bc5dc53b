"""The operational endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/whoami`` and
``/v1/openapi.json``.

Liveness, readiness and the document need no token (load balancers and tooling call them);
``/metrics`` hands the request to the Prometheus exporter's own ASGI app behind the ``read``
role. The document is built once, lazily, from the same table that routes requests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, encode, json_response
from redline.server.gate import Delegate
from redline.server.openapi import build_document
from redline.server.operation import Operation
from redline.server.schemas import Identity, Ready
from redline.store.base import EventQuery

__all__ = ["OpsHandlers"]

#: How long the store has to answer readiness's one-row query.
_READY_TIMEOUT = 2.0


class OpsHandlers:
    """Health, readiness, Prometheus, identity and the OpenAPI document."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._operations: Sequence[Operation] = ()
        self._document: bytes | None = None

    def document(self, operations: Sequence[Operation]) -> None:
        """Serve ``operations`` (the route table, once built) as ``/v1/openapi.json``."""
        self._operations = operations
        self._document = None

    async def healthz(self, request: Request, who: Principal | None) -> Response:
        """``GET /healthz``: the process answers."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request, who: Principal | None) -> Response:
        """``GET /readyz``: the store answers and the writer keeps up."""
        ctx = self.ctx
        m = ctx.monitor
        problems: list[str] = []

        def probe() -> None:
            list(m.store.query(EventQuery(limit=1)))

        try:
            with anyio.fail_after(_READY_TIMEOUT):
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
        except TimeoutError:
            problems.append("the store did not answer a one-row query within 2 s")
        except Exception as exc:
            problems.append(f"the store failed a one-row query: {exc}")
        stats = m.stats()
        queued = int(stats["queued"])
        last = m.last_write_at
        idle = time.time() - (last if last is not None else ctx.started_at)
        if queued > 0 and idle > ctx.config.ready_stall_seconds:
            problems.append(
                f"the writer is stalled: {queued} events queued and nothing written for "
                f"{idle:.0f} s (last error: {stats['last_write_error'] or 'none'})"
            )
        ready = Ready(
            ok=not problems,
            store=m.store.backend,
            queued=queued,
            last_write_at=last,
            problems=problems,
        )
        return json_response(ready, 200 if ready.ok else 503)

    async def prometheus(self, request: Request, who: Principal | None) -> Response:
        """``GET /metrics``: the Prometheus exporter's ASGI app, behind the ``read`` role."""
        if self.ctx.metrics_app is None:
            raise ApiError(
                503,
                "unavailable",
                "Prometheus metrics need the prometheus-client package: "
                "pip install 'redline[prometheus]'",
            )
        return Delegate(self.ctx.metrics_app)

    async def whoami(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/whoami``: the calling token's name and role (any valid token)."""
        assert who is not None
        return json_response(Identity(name=who.name, role=who.role))  # type: ignore[arg-type]

    async def openapi(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/openapi.json``: the document built from the route table."""
        if self._document is None:
            doc = build_document(self._operations, max_batch=self.ctx.config.max_batch)
            self._document = encode(doc)
        return Response(self._document, media_type="application/json")
