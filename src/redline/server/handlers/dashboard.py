"""``GET /`` and ``GET /assets/{name}``: the dashboard's static files, under a strict CSP.

The page, its script modules and style sheet are read once from the package and kept; they need
no token (the page's data calls carry one) and load nothing from anywhere but this server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from redline.server.auth import Principal
from redline.server.errors import ApiError

__all__ = ["ASSETS", "ASSET_NAMES", "CSP", "DashboardHandlers"]

_DASHBOARD: Final = Path(__file__).resolve().parent.parent / "dashboard"
_JS: Final = "text/javascript; charset=utf-8"
#: Every file served, with its type. The script is ES modules (``app.js`` imports the others), so
#: the browser loads them without a build step.
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    **dict.fromkeys(
        (
            "app.js",
            "actions.js",
            "api.js",
            "chart.js",
            "data.js",
            "live.js",
            "render.js",
            "state.js",
            "util.js",
        ),
        _JS,
    ),
}
#: What ``/assets/{name}`` serves (the page itself is ``/``).
ASSET_NAMES: Final = tuple(name for name in ASSETS if name != "index.html")
#: The dashboard loads nothing from anywhere but this server.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class DashboardHandlers:
    """The page and its two assets."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    async def dashboard(self, request: Request, who: Principal | None) -> Response:
        """``GET /``: the dashboard page."""
        return self._static("index.html")

    async def asset(self, request: Request, who: Principal | None) -> Response:
        """``GET /assets/{name}``: the dashboard's script modules and style sheet."""
        name = request.path_params["name"]
        if name not in ASSET_NAMES:
            raise ApiError(404, "not_found", f"no asset {name[:60]!r}")
        return self._static(name)

    def _static(self, name: str) -> Response:
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = (_DASHBOARD / name).read_bytes()
        return Response(
            body,
            media_type=ASSETS[name],
            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
        )
