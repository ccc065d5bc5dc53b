"""Test doubles for alert delivery, used by Redline's own tests instead of mocks.

* :class:`HttpReceiver`: a real HTTP server on ``127.0.0.1`` (stdlib ``ThreadingHTTPServer`` on a
  daemon thread) that records every request and answers as scripted: an error status N times,
  ``429`` with ``Retry-After``, or hanging until released. Point any channel's ``url`` at it.
* :class:`RecordingChannel`: a channel that keeps what it was sent, and can fail or block.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from redline.alerts.manager import Alert

__all__ = ["HttpReceiver", "ReceivedRequest", "RecordingChannel"]


class _QuietServer(ThreadingHTTPServer):
    """Daemon handler threads; a client that hung up mid-answer is not an error worth printing."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None


@dataclass
class ReceivedRequest:
    """One request as the receiver saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass
class _Plan:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    path: str | None = None
    hang: bool = False


class HttpReceiver:
    """A scriptable local HTTP endpoint; use as a context manager or call :meth:`close`."""

    def __init__(
        self, *, status: int = 200, body: bytes = b'{"status":"ok"}', hang_limit: float = 30.0
    ) -> None:
        self.default_status = status
        self.default_body = body
        self.hang_limit = hang_limit
        self.requests: list[ReceivedRequest] = []
        self.answered = 0  # requests answered so far (a hanging one is not, until released)
        self.hanging = threading.Event()  # set when a request starts hanging
        self.release = threading.Event()  # set to end every hang
        self._plans: deque[_Plan] = deque()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.02,),
            name="redline-test-receiver",
            daemon=True,
        )
        self._thread.start()

    # -- scripting --------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (to ``path``, if given) with ``status``."""
        with self._cond:
            for _ in range(times):
                self._plans.append(_Plan(status, dict(headers or {}), body, path))

    def hang(self, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` requests open until :attr:`release` is set (or ``hang_limit``)."""
        with self._cond:
            for _ in range(times):
                self._plans.append(_Plan(self.default_status, {}, self.default_body, path, True))

    # -- reading ----------------------------------------------------------------------------
    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Whether ``count`` requests arrived within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        """Release hangs and stop the server."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ----------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        request = ReceivedRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=dict(handler.headers.items()),
            body=body,
            at=time.monotonic(),
        )
        with self._cond:
            plan = self._take_plan(parts.path)
            self.requests.append(request)
            self._cond.notify_all()
        if plan.hang:
            self.hanging.set()
            self.release.wait(self.hang_limit)
        with contextlib.suppress(OSError):  # the client gave up (timed out) while we hung
            handler.send_response(plan.status)
            for key, value in plan.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(plan.body)))
            handler.end_headers()
            handler.wfile.write(plan.body)
        with self._cond:
            self.answered += 1

    def _take_plan(self, path: str) -> _Plan:
        for plan in self._plans:
            if plan.path is None or plan.path == path:
                self._plans.remove(plan)
                return plan
        return _Plan(self.default_status, {"Content-Type": "application/json"}, self.default_body)


class RecordingChannel:
    """A channel that records alerts; ``fail_with`` makes ``send`` raise, ``block`` makes it wait."""

    def __init__(
        self,
        name: str = "recording",
        *,
        min_severity: str = "info",
        inline: bool = False,
        fail_with: BaseException | None = None,
        block: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self.deliver_inline = inline
        self.fail_with = fail_with
        self.block = block
        self.alerts: list[Alert] = []
        self._cond = threading.Condition()

    def send(self, alert: Alert) -> None:
        """Record ``alert`` (after waiting for ``block``), or raise ``fail_with``."""
        if self.block is not None:
            self.block.wait(30.0)
        if self.fail_with is not None:
            raise self.fail_with
        with self._cond:
            self.alerts.append(alert)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Whether ``count`` alerts arrived within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.alerts) >= count, timeout)
