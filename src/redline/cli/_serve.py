"""``serve``: the HTTP API, the live stream and the dashboard (needs the ``server`` extra).

The server's :class:`~redline.Monitor` is a full one on the configured store: events posted to
it are counted, judged and stored exactly as events recorded in-process, and its kills reach
every monitor sharing the store. It is closed (flushed) when the server stops.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Annotated, Any

import typer

from redline.cli._common import CliError, State, err_console, text
from redline.config import MonitorConfig, load_config
from redline.exceptions import ConfigError

__all__ = ["serve"]


def _load(file: str | None) -> tuple[MonitorConfig, Any]:
    """The monitor's config and its ``server:`` section (defaults without a file)."""
    if file is None:
        config = MonitorConfig()
        return config, config.server
    try:
        config = load_config(file)
    except FileNotFoundError:
        raise CliError(f"config file not found: {file}") from None
    return config, config.server


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_token() -> str | None:
    from redline.server.config import admin_token_from_env

    try:
        return admin_token_from_env()
    except ConfigError as exc:
        raise CliError("; ".join(exc.errors)) from None


def _run_token(server_config: Any, bind: str) -> str | None:
    """The admin token to add: the environment's, or one made for this run on loopback.

    A server without any token refuses every request, so starting one is never what was meant:
    on loopback it gets a fresh token for this run; anywhere else it does not start.
    """
    env = _env_token()
    if env is not None or server_config.tokens:
        return env
    if not _loopback(bind):
        raise CliError(
            f"no tokens configured (server.tokens or REDLINE_ADMIN_TOKEN) and {bind} is not "
            "loopback: refusing to serve an API that would refuse every request; run "
            "`redline init` for a config with a token, or set REDLINE_ADMIN_TOKEN"
        )
    return secrets.token_urlsafe(32)


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to bind (default: server.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", "-p", help="Port (default: server.port, 8765).", min=0, max=65535),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn's log level (no access log is written).")
    ] = "info",
) -> None:
    """Serve the HTTP API, the live event stream and the dashboard."""
    state = State.of(ctx)
    try:
        from redline.monitor import Monitor
        from redline.server import RedlineServer, create_app
    except ImportError as exc:
        raise CliError(
            f"redline serve needs the server extra ({exc}): pip install 'redline[server]'"
        ) from None
    config, server_config = _load(state.file)
    bind = host if host is not None else server_config.host
    listen = port if port is not None else server_config.port
    console = err_console()
    if not _loopback(bind):
        console.print(
            text(
                f"warning: binding {bind}, not loopback: put TLS in front (a reverse proxy) "
                "before anything outside this host talks to it",
                "yellow",
            )
        )
    run_token = _run_token(server_config, bind)
    monitor = Monitor(config)
    try:
        app = create_app(monitor, server_config, admin_token=run_token)
        server = RedlineServer(app, bind, listen, log_level=log_level, configure_logging=True)
        tokens = len(app.state.api.tokens)
        url = f"http://{bind if ':' not in bind else f'[{bind}]'}:{listen}"
        console.print(
            text(
                f"redline: serving {url}  (dashboard /, API /v1, docs /v1/openapi.json; "
                f"store {monitor.store.backend}; {tokens} token(s))"
            )
        )
        if run_token is not None and not server_config.tokens and not _env_token():
            # Jupyter's way: a loopback server with no token gets one for this run, shown once
            # on the operator's terminal (never logged), so the first `serve` just works.
            console.print(
                text(
                    "No tokens configured (server.tokens or REDLINE_ADMIN_TOKEN), so this run "
                    f"has its own admin token (valid until the server stops):\n\n    {run_token}\n\n"
                    "Paste it into the dashboard's sign-in, or send `Authorization: Bearer "
                    "<token>`. `redline init` writes a config with a lasting one.",
                    "bold",
                )
            )
        server.run()
    finally:
        monitor.close()
