"""``GET /v1/verify`` and ``GET /v1/export``: the proof, for admins, each call itself audited.

An export streams from a worker thread through an :class:`ExportPipe` (bounded, so a slow
client slows the export and memory stays flat); a problem found before the first byte (a bad
filter) is still a proper 400, not a truncated 200.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from redline.compliance.report import FORMATS
from redline.exceptions import RedlineError
from redline.server import params
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response

__all__ = ["AuditHandlers", "ExportPipe"]

log = logging.getLogger("redline.server")

_EXPORT_TYPES: Final = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}
_PUBLIC_KEY: Final = re.compile(r"[0-9a-fA-F]{64}")


class AuditHandlers:
    """Verification and compliance exports."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def verify(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/verify``: walk the hash chain and checkpoints (admin; audited)."""
        assert who is not None
        ctx = self.ctx
        public_key = params.text(request.query_params.get("public_key"), "public_key")
        if public_key is not None and not _PUBLIC_KEY.fullmatch(public_key):
            # A key that cannot be a key is the caller's mistake, not damage to the chain.
            raise ApiError(
                400, "invalid_request", "public_key: expected 64 hex digits (an Ed25519 key)"
            )

        def run() -> Any:
            ctx.audit("verify", who)
            return ctx.monitor.verify(public_key=public_key)

        try:
            report = await anyio.to_thread.run_sync(run)
        except (RedlineError, ValueError) as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return json_response(report)

    async def export(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/export``: a compliance export streamed as it is written (admin; audited)."""
        assert who is not None
        ctx = self.ctx
        q = request.query_params
        fmt = params.choice(q.get("format", "json"), FORMATS, "format")
        now = ctx.monitor.clock.time()
        filters: dict[str, Any] = {
            "since": params.time_param(q.get("since"), "since", now),
            "until": params.time_param(q.get("until"), "until", now),
            "agent": params.text(q.get("agent"), "agent"),
            "session_id": params.text(q.get("session"), "session"),
            "user": params.text(q.get("user"), "user"),
            "event_type": params.text(q.get("type"), "type"),
        }
        if fmt == "gdpr" and not filters["user"]:
            raise ApiError(400, "invalid_request", "the gdpr export is about one person: pass user")
        await anyio.to_thread.run_sync(
            lambda: ctx.audit(
                "export", who, format=fmt, filters={k: v for k, v in filters.items() if v}
            )
        )
        pipe = ExportPipe()
        monitor = ctx.monitor

        def produce() -> None:
            try:
                monitor.export(fmt, output=pipe, **filters)
            except Exception as exc:
                pipe.fail(exc)
            else:
                pipe.close()

        threading.Thread(target=produce, name="redline-export", daemon=True).start()
        # Wait for the first chunk: a problem found before any output (a bad filter) is still
        # a proper error response, not a truncated 200.
        first = await pipe.next_item()
        if isinstance(first, ValueError):
            raise ApiError(400, "invalid_request", str(first))
        if isinstance(first, BaseException):
            log.error("redline: export failed before any output: %r", first)
            raise ApiError(503, "export_failed", f"the export could not start: {first}")
        media, ext = _EXPORT_TYPES.get(fmt, ("application/json", "json"))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        return StreamingResponse(
            pipe.chunks(first),
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="redline-{fmt}-{stamp}.{ext}"',
                "Cache-Control": "no-store",
            },
        )


class ExportPipe:
    """A binary file the export thread writes into and a response reads from, bounded.

    Writes are gathered into ~64 KiB chunks; the queue holds a few of them, so a slow client
    slows the export instead of filling memory. A client that leaves stops the export.
    """

    _CHUNK: Final = 65_536

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)
        self._buf = bytearray()
        self._gone = threading.Event()

    # the export thread's side (a file object)
    def write(self, data: bytes) -> int:
        """Buffer ``data``; a full chunk goes to the response (waiting while the queue is full)."""
        self._buf += data
        if len(self._buf) >= self._CHUNK:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def flush(self) -> None:
        """Nothing: chunks go out when full, and the rest at close."""

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._gone.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise OSError("the client went away; export stopped")

    def close(self) -> None:
        """The export is complete: send what is buffered, then the end."""
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(None)

    def fail(self, exc: BaseException) -> None:
        """The export failed: the response ends with ``exc`` (unless the client already left)."""
        if not self._gone.is_set():
            self._put(exc)

    # the response's side
    async def next_item(self) -> bytes | BaseException | None:
        """The next chunk, the error that ended the export, or ``None`` at the end."""
        while True:
            try:
                return await anyio.to_thread.run_sync(self._queue.get, True, 1.0)
            except queue.Empty:
                continue

    async def chunks(self, first: bytes | BaseException | None) -> AsyncIterator[bytes]:
        """Every chunk, starting with ``first`` (already taken by the handler)."""
        item = first
        try:
            while item is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
                item = await self.next_item()
        finally:
            self._gone.set()
