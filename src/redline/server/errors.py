"""Error responses and JSON encoding, shared by every handler.

An :class:`ApiError` raised anywhere below an endpoint becomes one JSON body with a stable
machine-readable code (:class:`~redline.server.schemas.ErrorBody`), so clients branch on
``error`` and humans read ``message``; nothing else turns a bad request into a response.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from starlette.responses import Response

from redline.server.schemas import ErrorBody

__all__ = ["ApiError", "ErrorBody", "encode", "json_response"]

#: One encoder for the whole server (msgspec encoders are reusable and thread-safe).
encode: Final = msgspec.json.Encoder().encode


class ApiError(Exception):
    """An error response: status, stable code, message (and headers, e.g. ``Retry-After``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        """The JSON error response."""
        return json_response(
            ErrorBody(error=self.code, message=self.message), self.status, self.headers
        )


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``obj`` (a struct, dict or list) encoded as JSON."""
    return Response(encode(obj), status, headers, media_type="application/json")
