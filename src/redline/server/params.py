"""Reading what a request carries: query parameters, times, and bounded JSON bodies.

Every problem is an :class:`~redline.server.errors.ApiError` 400 (413 for a body past
``max_body_bytes``) that names the parameter, so a client learns what to fix from the message.
Times go through :func:`redline.timeparse.parse_time`, the parser the CLI and the Python API use;
the server only narrows the forms it admits to the documented ones (:data:`TIME_SCHEMA`), so
the OpenAPI document and the parser agree on what a time is.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from redline.server.errors import ApiError
from redline.server.jsonparse import JSONBodyError, loads_strict
from redline.server.operation import Param
from redline.timeparse import parse_time

__all__ = [
    "TIME_DESCRIPTION",
    "TIME_SCHEMA",
    "BodyReader",
    "choice",
    "integer",
    "str_param",
    "text",
    "time_param",
]

log = logging.getLogger("redline.server")

T = TypeVar("T")

#: Free-text parameters (agent, session, user, type) are at most this long.
MAX_TEXT: Final = 256
#: A rejected oversize body is still read (not kept) up to this much, so the client sees the 413.
DRAIN_LIMIT: Final = 8 * 1024 * 1024

#: The time forms the API reads (a documented subset of ``parse_time``'s): RFC 3339 date-times,
#: dates, epoch seconds, ages (``15m``, ``2h``, ``1d``) and ``now``.
TIME_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": r"^[0-9]{1,11}(\.[0-9]{1,9})?$"},
        {"type": "string", "pattern": r"^[0-9]{1,6}(s|m|h|d|w)$"},
        {"type": "string", "enum": ["now"]},
    ]
}
TIME_DESCRIPTION: Final = (
    "ISO 8601 (offsets honoured), epoch seconds, or an age such as 15m, 2h, 1d."
)
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:(\d{2})(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}))?$"
)
_EPOCH_OR_AGE: Final = re.compile(r"^(?:[0-9]{1,11}(?:\.[0-9]{1,9})?|[0-9]{1,6}[smhdw]|now)$")


def str_param(
    name: str, description: str, *, required: bool = False, where: str = "query"
) -> Param:
    """A documented free-text parameter (1..256 characters)."""
    return Param(name, {"type": "string", "maxLength": MAX_TEXT}, description, where, required)


def text(value: str | None, name: str) -> str | None:
    """A free-text parameter; empty means absent."""
    if value is None or value == "":
        return None
    if len(value) > MAX_TEXT:
        raise ApiError(400, "invalid_request", f"{name}: at most {MAX_TEXT} characters")
    return value


def integer(value: str | None, name: str, *, default: Any, low: int, high: int) -> Any:
    """An integer parameter within ``low..high``; ``default`` when absent."""
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"{name}: expected an integer, got {value[:40]!r}"
        ) from None
    if not low <= n <= high:
        raise ApiError(400, "invalid_request", f"{name}: expected {low}..{high}, got {n}")
    return n


def choice(value: str, allowed: Any, name: str) -> str:
    """One of ``allowed``."""
    if value not in allowed:
        raise ApiError(
            400,
            "invalid_request",
            f"{name}: expected one of {', '.join(allowed)}, got {value[:40]!r}",
        )
    return value


def time_param(value: str | None, name: str, now: float) -> float | None:
    """Epoch seconds for a documented time form (:data:`TIME_SCHEMA`), read by ``parse_time``.

    RFC 3339 allows a leap second (``:60``); it is read as the second before, which Python's
    ``datetime`` (and so ``parse_time``) can represent.
    """
    if value is None:
        return None
    candidate = value
    if not _EPOCH_OR_AGE.match(value):
        m = _RFC3339.match(value)
        if m is None:
            candidate = ""
        elif m.group(1) == "60":
            candidate = value[: m.start(1)] + "59" + value[m.end(1) :]
    if candidate:
        try:
            return parse_time(candidate, now=now)
        except (ValueError, OverflowError):  # out of range (month 13, year 10000): the 400 below
            pass
    raise ApiError(
        400,
        "invalid_request",
        f"{name}: cannot read {value[:40]!r} as a time: use RFC 3339 "
        "(2026-11-21T10:00:00+01:00), a date (2026-11-21), epoch seconds, an age (30m, 2h, 1d) "
        "or now",
    )


class BodyReader:
    """Reads request bodies up to ``limit`` bytes and decodes JSON ones into structs.

    A client that hangs up mid-body is not a server failure: it is counted
    (:attr:`client_disconnects`), logged once at debug level, and answered with a 400 nobody
    reads, instead of a traceback per hang-up.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Requests whose client hung up while sending the body.
        self.client_disconnects = 0

    async def read(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes the limit."""
        try:
            return await self._read(request)
        except ClientDisconnect:
            self.client_disconnects += 1
            if self.client_disconnects == 1:
                log.debug("redline: a client disconnected while sending its body (counted)")
            raise ApiError(400, "client_disconnected", "the client closed the connection") from None

    async def _read(self, request: Request) -> bytes:
        limit = self.limit
        too_big = ApiError(
            413, "payload_too_large", f"request body larger than {limit} bytes (max_body_bytes)"
        )
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError(400, "bad_request", "invalid Content-Length") from None
            if size > limit:
                await _drain(request, size)
                raise too_big
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await _drain(request, size)
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, request: Request, kind: type[T], *, empty_ok: bool = False) -> T:
        """The body decoded strictly as JSON and converted to ``kind`` (400 naming the field)."""
        raw = await self.read(request)
        if not raw.strip() and empty_ok:
            return msgspec.convert({}, kind)
        try:
            value = loads_strict(raw)
        except JSONBodyError as exc:
            raise ApiError(400, "invalid_json", str(exc)) from None
        try:
            return msgspec.convert(value, kind)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None


async def _drain(request: Request, seen: int) -> None:
    """Read (and drop) what is left of an oversize body, up to a cap, so the 413 is seen."""
    if seen > DRAIN_LIMIT:
        return
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > DRAIN_LIMIT:
                return
    except Exception:  # the client may give up first; nothing to do
        return
