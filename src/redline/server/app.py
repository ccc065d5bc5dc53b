"""``create_app(monitor, server_config)``: the Starlette application, and a uvicorn runner.

The factory wires the parts: a :class:`~redline.server.context.ServerContext` (monitor, config,
tokens, limits, stream hub), the handler groups of :mod:`redline.server.handlers`, and the route
table of :mod:`redline.server.routes`, which both routes and documents every operation.

The app owns nothing it did not make: the caller opens the :class:`~redline.Monitor` and closes it
after the server stops. :class:`RedlineServer` runs the app with uvicorn, either in the
foreground (``redline serve``) or on a thread (tests, benchmarks, embedding), with the access log
off (no line ever carries an ``Authorization`` header) and open streams ended on shutdown so it
does not wait for them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redline.monitor import Monitor
from redline.server.auth import TokenBook
from redline.server.config import ServerConfig, admin_token_from_env
from redline.server.context import ServerContext
from redline.server.errors import ErrorBody, json_response
from redline.server.handlers import Handlers
from redline.server.ratelimit import RateLimiter
from redline.server.routes import operations, routes
from redline.server.sse import StreamHub

__all__ = ["RedlineServer", "create_app"]

log = logging.getLogger("redline.server")

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """Adds ``nosniff``, ``no-referrer`` and ``DENY`` framing to every response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return json_response(
        ErrorBody(error=code, message=str(exc.detail)), exc.status_code, dict(exc.headers or {})
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("redline: %s %s failed: %r", request.method, request.url.path, exc)
    return json_response(
        ErrorBody(error="internal_error", message="the server failed; see its log"), 500
    )


def create_app(
    monitor: Monitor,
    server_config: ServerConfig | None = None,
    *,
    admin_token: str | None = None,
) -> Starlette:
    """The Redline HTTP app (API, stream, dashboard) serving ``monitor``.

    ``admin_token`` adds an admin token (default: ``REDLINE_ADMIN_TOKEN`` from the environment).
    ``/metrics`` serves :func:`redline.export.prometheus.make_asgi_app` when prometheus-client
    is installed (503 with the install hint otherwise).
    """
    config = server_config if server_config is not None else ServerConfig()
    tokens = TokenBook(
        config.tokens,
        admin_token=admin_token if admin_token is not None else admin_token_from_env(),
    )
    if not len(tokens):
        log.warning(
            "redline: no tokens configured (server.tokens or REDLINE_ADMIN_TOKEN): every API "
            "call will be refused with 401"
        )
    hub = StreamHub(
        monitor.subscribe,
        queue_size=config.stream_queue_size,
        heartbeat_seconds=config.heartbeat_seconds,
    )
    metrics_app: Any = None
    try:
        from redline.export.prometheus import make_asgi_app

        metrics_app = make_asgi_app(monitor)
    except ImportError:
        log.info("redline: prometheus-client is not installed; /metrics answers 503")
    ctx = ServerContext(
        monitor, config, tokens, RateLimiter(config.rate_limit_per_minute), hub,
        metrics_app=metrics_app,
    )  # fmt: skip
    table = operations(ctx, Handlers(ctx))
    middleware = [Middleware(SecurityHeaders)]
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        hub.close()
        collector = getattr(metrics_app, "redline_collector", None)
        if collector is not None:
            collector.close()  # off the monitor's bus: the caller's monitor outlives the app

    app = Starlette(
        routes=routes(ctx, table),
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.api = ctx  # the CLI reads app.state.api.tokens
    app.state.operations = table
    app.state.hub = hub
    app.state.monitor = monitor
    app.state.config = config
    return app


class RedlineServer:
    """uvicorn serving a Redline app: ``run()`` in the foreground, or ``start()``/``stop()``.

    ``port=0`` picks a free port (read it from :attr:`port` after ``start()``).
    """

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        log_level: str = "warning",
        configure_logging: bool = False,
    ) -> None:
        import uvicorn

        self.app = app
        self.host = host
        # Proxy headers (X-Forwarded-For) are believed only from configured proxies: otherwise
        # any client names its own address and walks past the per-address limit on bad tokens.
        server_config = getattr(app.state, "config", None)
        trusted: list[str] = list(server_config.trusted_proxies) if server_config else []
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,  # an access log is where tokens leak; none is written
            log_level=log_level,
            log_config=uvicorn.config.LOGGING_CONFIG if configure_logging else None,
            server_header=False,
            proxy_headers=bool(trusted),
            forwarded_allow_ips=trusted or None,
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
        hub: StreamHub = app.state.hub

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                hub.close()  # end open streams, or shutdown would wait for them
                super().handle_exit(sig, frame)

        self._server = _Server(self._config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._config.port)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (the caller closes the monitor afterwards)."""
        self._server.run()

    def start(self, timeout: float = 10.0) -> RedlineServer:
        """Serve on a daemon thread; returns once the socket is listening."""
        self._thread = threading.Thread(target=self._server.run, name="redline-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.host}:{self._config.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (ends open streams first) and wait for the thread."""
        self.app.state.hub.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> RedlineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
