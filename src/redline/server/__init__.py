"""Redline's HTTP server: the API, the live stream and the dashboard (the ``server`` extra).

``create_app(monitor, server_config)`` builds the Starlette app; :class:`RedlineServer` runs it
with uvicorn; ``redline serve -c monitor.yaml`` does both from the command line. See
``docs/server.md``.

:class:`ServerConfig` and its parsing import without the extra (the config loader uses them);
``create_app`` and ``RedlineServer`` need ``pip install 'redline[server]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redline.server.config import ServerConfig, TokenConfig

if TYPE_CHECKING:
    from redline.server.app import RedlineServer, create_app
    from redline.server.section import parse_server_config

__all__ = ["RedlineServer", "ServerConfig", "TokenConfig", "create_app", "parse_server_config"]


def __getattr__(name: str) -> Any:
    # Lazy: the config loader imports redline.server.config (and so this package); importing the
    # loader back here, at import time, would be a circle.
    if name == "parse_server_config":
        from redline.server.section import parse_server_config

        return parse_server_config
    if name in ("RedlineServer", "create_app"):
        try:
            from redline.server import app
        except ImportError as exc:
            raise ImportError(
                f"redline.server.{name} needs the server extra: pip install 'redline[server]' "
                f"({exc})"
            ) from exc
        return getattr(app, name)
    raise AttributeError(f"module 'redline.server' has no attribute {name!r}")
