"""The endpoint around every handler: authenticate, authorise, rate-limit, refuse unknown
parameters, then handle and report the server's own time.

One wrapper for every route, built from the route table, so no handler can forget a check: a
handler only ever sees a caller whose token is valid, whose role permits the operation and who is
within the token's rate limit (public operations see ``None``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError
from redline.server.operation import Operation
from redline.server.ratelimit import RateLimiter

__all__ = ["Delegate", "authorise", "guarded"]


class Delegate(Response):
    """A "response" that hands the request to another ASGI app (the Prometheus exporter).

    The gate leaves it untouched: the other app writes its own headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def guarded(ctx: ServerContext, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for ``op``."""
    permission = op.permission
    handler = op.handler
    known = op.query_names

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await handle(request)
        if isinstance(response, Delegate):
            return response
        # The server's own time (auth, rate limit, handler), for clients and benchmarks.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        return response

    async def handle(request: Request) -> Response:
        who: Principal | None = None
        try:
            if permission is not None:
                who = authorise(ctx, request, permission)
            unknown = set(request.query_params) - known
            if unknown:
                name = sorted(unknown)[0]
                hint = f"; this operation takes {', '.join(sorted(known))}" if known else ""
                raise ApiError(
                    400, "invalid_request", f"unknown query parameter {name[:40]!r}{hint}"
                )
            return await handler(request, who)
        except ApiError as exc:
            return exc.response()

    endpoint.__name__ = op.op_id
    return endpoint


def authorise(ctx: ServerContext, request: Request, permission: str) -> Principal:
    """The caller, or an :class:`ApiError` (401, 403 or 429) saying why not."""
    who = ctx.tokens.authenticate(request.headers.get("authorization"))
    if who is None:
        # Guessing tokens is rate-limited per client address too.
        host = request.client.host if request.client else "unknown"
        wait = ctx.failed_auth.acquire("addr:" + host)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                "too many requests without a valid token from this address",
                {"Retry-After": RateLimiter.retry_after(wait)},
            )
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
            {"WWW-Authenticate": 'Bearer realm="redline"'},
        )
    if not who.may(permission):
        raise ApiError(
            403,
            "forbidden",
            f"the token {who.name!r} has role {who.role!r}, which may not do this "
            f"(needs {permission!r})",
        )
    wait = ctx.limiter.acquire(who.name, who.rate_limit_per_minute)
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of the token {who.name!r} exceeded; retry later",
            {"Retry-After": RateLimiter.retry_after(wait)},
        )
    return who
