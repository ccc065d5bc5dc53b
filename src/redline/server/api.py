"""The ``/v1`` endpoints: one handler per operation, and the table that routes and documents them.

Every operation is an :class:`Operation` in :data:`Api.operations`: method, path, the permission it
needs (``None``: public), its parameters and its schemas. The table builds the Starlette routes
(each wrapped in authentication, authorisation and the per-token rate limit) *and* the OpenAPI
document, so what is served is what is documented.

Handlers never block the event loop on the store or the writer: anything that may wait (ingest,
queries, kills, exports) runs in a worker thread; ``GET /v1/check`` is a dict lookup and answers
inline.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from redline.compliance.report import FORMATS
from redline.events import AgentEvent
from redline.exceptions import AgentKilledError, RedlineError
from redline.monitor import Monitor
from redline.server.auth import Principal, TokenBook
from redline.server.config import ServerConfig
from redline.server.jsonparse import JSONBodyError, loads_strict, loads_strict_lines
from redline.server.ratelimit import RateLimiter
from redline.server.schemas import (
    AckRequest,
    AgentList,
    AgentRow,
    AlertList,
    CheckResponse,
    ErrorBody,
    Health,
    Identity,
    IngestItem,
    IngestResponse,
    KillAgent,
    KillList,
    KillRequest,
    KillResponse,
    KillSession,
    Ready,
    ReviveAgent,
    ReviveRequest,
    ReviveResponse,
    ReviveSession,
)
from redline.server.sse import StreamHub
from redline.store.base import EventQuery, KillRecord, StoredEvent
from redline.timeparse import parse_time

__all__ = ["Api", "ApiError", "ErrorBody", "Operation", "Param", "json_response"]

log = logging.getLogger("redline.server")

T = TypeVar("T")
Handler = Callable[[Request, "Principal | None"], Awaitable[Response]]

_encode = msgspec.json.Encoder().encode
_EVENT_FIELDS: Final = frozenset(AgentEvent.__struct_fields__) - {"killed_scope"}
_NDJSON: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_EXPORT_TYPES: Final = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson", "jsonl"),
}
#: A rejected oversize body is still read (not kept) up to this much, so the client sees the 413.
_DRAIN_LIMIT: Final = 8 * 1024 * 1024
_DASHBOARD: Final = Path(__file__).resolve().parent / "dashboard"
_ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
#: The dashboard loads nothing from anywhere but this server.
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
#: Error responses are documented with this schema.
ERR: Final = ErrorBody


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
    return Response(_encode(obj), status, headers, media_type="application/json")


@dataclass(frozen=True)
class Param:
    """A query or path parameter, as documented."""

    name: str
    schema: dict[str, Any]
    description: str
    where: str = "query"
    required: bool = False


@dataclass(frozen=True)
class Operation:
    """One documented, routed operation."""

    method: str
    path: str
    op_id: str
    summary: str
    handler: Handler
    permission: str | None
    responses: dict[int, tuple[str, Any]]
    params: tuple[Param, ...] = ()
    body: Any = None
    description: str = ""
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def route_path(self) -> str:
        """The Starlette path (``{agent}`` may contain slashes)."""
        return self.path.replace("{agent}", "{agent:path}")


def _str_param(
    name: str, description: str, *, required: bool = False, where: str = "query"
) -> Param:
    return Param(name, {"type": "string", "maxLength": 256}, description, where, required)


#: The time forms the API reads (a documented subset of ``parse_time``'s): RFC 3339 date-times,
#: dates, epoch seconds, ages (``15m``, ``2h``, ``1d``) and ``now``.
_TIME_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": r"^[0-9]{1,11}(\.[0-9]{1,9})?$"},
        {"type": "string", "pattern": r"^[0-9]{1,6}(s|m|h|d|w)$"},
        {"type": "string", "enum": ["now"]},
    ]
}
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?$"
)
_EPOCH_OR_AGE = re.compile(r"^(?:[0-9]{1,11}(?:\.[0-9]{1,9})?|[0-9]{1,6}[smhdw]|now)$")
_TIME_DESC = "ISO 8601 (offsets honoured), epoch seconds, or an age such as 15m, 2h, 1d."


class Api:
    """The handlers, bound to one monitor, its server config, tokens, rate limiter and hub."""

    def __init__(
        self,
        monitor: Monitor,
        config: ServerConfig,
        tokens: TokenBook,
        limiter: RateLimiter,
        hub: StreamHub,
        *,
        metrics_app: Any = None,
    ) -> None:
        self.monitor = monitor
        self.metrics_app = metrics_app
        self._files: dict[str, bytes] = {}
        self.config = config
        self.tokens = tokens
        self.limiter = limiter
        self.hub = hub
        self.started_at = time.time()
        #: Failed authentications per client address (``failed_auth_per_minute``), then 429s.
        self._failed_auth = RateLimiter(config.failed_auth_per_minute)
        #: Requests whose client hung up while sending the body.
        self.client_disconnects = 0
        self._openapi: bytes | None = None
        self.operations = self._operations()

    # -- plumbing ---------------------------------------------------------------------------
    def guarded(self, op: Operation) -> Callable[[Request], Awaitable[Response]]:
        """The Starlette endpoint for ``op``: authenticate, authorise, rate-limit, handle."""
        permission = op.permission
        handler = op.handler
        known = frozenset(p.name for p in op.params if p.where == "query")

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            response = await handle(request)
            if isinstance(response, _Delegate):  # another app writes its own headers
                return response
            # The server's own time (auth, rate limit, handler), for clients and benchmarks.
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
            )
            return response

        async def handle(request: Request) -> Response:
            who: Principal | None = None
            try:
                if permission is not None:
                    who = self._authorise(request, permission)
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

    def _authorise(self, request: Request, permission: str) -> Principal:
        who = self.tokens.authenticate(request.headers.get("authorization"))
        if who is None:
            # Guessing tokens is rate-limited per client address too.
            host = request.client.host if request.client else "unknown"
            wait = self._failed_auth.acquire("addr:" + host)
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
        wait = self.limiter.acquire(who.name, who.rate_limit_per_minute)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of the token {who.name!r} exceeded; retry later",
                {"Retry-After": RateLimiter.retry_after(wait)},
            )
        return who

    async def _read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes ``max_body_bytes``.

        A client that hangs up mid-body is not a server failure: it is counted
        (``client_disconnects``), logged once at debug level, and answered with a 400 nobody
        reads, instead of a traceback per hang-up.
        """
        try:
            return await self._read_body_or_disconnect(request)
        except ClientDisconnect:
            self.client_disconnects += 1
            if self.client_disconnects == 1:
                log.debug("redline: a client disconnected while sending its body (counted)")
            raise ApiError(400, "client_disconnected", "the client closed the connection") from None

    async def _read_body_or_disconnect(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        too_big = ApiError(
            413, "payload_too_large", f"request body larger than {limit} bytes (max_body_bytes)"
        )
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    await _drain(request, int(declared))
                    raise too_big
            except ValueError:
                raise ApiError(400, "bad_request", "invalid Content-Length") from None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await _drain(request, size)
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    async def _json_body(self, request: Request, kind: type[T], *, empty_ok: bool = False) -> T:
        raw = await self._read_body(request)
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

    def _audit(self, action: str, who: Principal, **data: Any) -> None:
        """Record an admin action as a ``security`` event (actor = the token's name)."""
        self.monitor.record(
            AgentEvent(
                agent="*",
                event_type="security",
                level="warning",
                data={"action": action, "actor": who.name, "role": who.role, **data},
            )
        )

    # -- events -----------------------------------------------------------------------------
    async def post_events(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/events``: a batch, parsed whole before anything is recorded."""
        raw = await self._read_body(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (ctype in _NDJSON or ctype in ("", "application/json") or ctype.endswith("+json")):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send application/json or application/x-ndjson, not {ctype!r}",
            )
        # Parsing and recording run on a worker thread: the event loop stays free for checks.
        result = await anyio.to_thread.run_sync(self._parse_and_ingest, raw, ctype in _NDJSON)
        return json_response(result)

    def _parse_and_ingest(self, raw: bytes, ndjson: bool) -> IngestResponse:
        try:
            if ndjson:
                items = loads_strict_lines(raw)
            else:
                doc = loads_strict(raw)
                if isinstance(doc, dict) and set(doc) == {"events"}:
                    doc = doc["events"]
                if not isinstance(doc, list):
                    raise ApiError(
                        400,
                        "invalid_request",
                        'expected a JSON array of events or {"events": [...]}',
                    )
                items = doc
        except JSONBodyError as exc:
            raise ApiError(400, "invalid_json", f"{exc}; nothing was recorded") from None
        if len(items) > self.config.max_batch:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(items)} events in one request; the limit is {self.config.max_batch} "
                "(max_batch)",
            )
        return self._ingest(items)

    def _ingest(self, items: list[Any]) -> IngestResponse:
        with self.monitor.batch():  # one commit for the request's synchronous types
            return self._ingest_batch(items)

    def _ingest_batch(self, items: list[Any]) -> IngestResponse:
        record = self.monitor.record_checked
        counts = {"accepted": 0, "repaired": 0, "rejected": 0}
        results: list[IngestItem] = []
        for index, item in enumerate(items):
            notes: list[str] = []
            event: Any = item
            if type(item) is dict:
                fields = item
                if "killed_scope" in fields:
                    fields = {k: v for k, v in fields.items() if k != "killed_scope"}
                    notes.append("killed_scope: set by the monitor, not by callers; ignored")
                ts = fields.get("timestamp")
                if type(ts) is str:
                    with contextlib.suppress(ValueError, OverflowError):  # else repaired below
                        fields = {**fields, "timestamp": parse_time(ts, now=time.time())}
                fields = _bounded(fields, notes)
                event = fields
                if _EVENT_FIELDS.issuperset(fields):
                    with contextlib.suppress(TypeError):
                        event = AgentEvent(**fields)
            status, reasons = record(event, untrusted=True)
            if notes and status == "accepted":
                status = "repaired"
            reasons = notes + reasons
            counts[status] += 1
            if status != "accepted":
                results.append(IngestItem(index=index, status=status, reasons=reasons))  # type: ignore[arg-type]
        return IngestResponse(results=results, **counts)

    async def get_events(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/events``: filtered, newest first by default, cursor-paginated."""
        q = request.query_params
        now = self.monitor.clock.time()
        order = _choice(q.get("order", "desc"), ("asc", "desc"), "order")
        limit = _int(q.get("limit"), "limit", default=100, low=1, high=1000)
        cursor = _int(q.get("cursor"), "cursor", default=None, low=0, high=2**62)
        query = EventQuery(
            agent=_text(q.get("agent"), "agent"),
            event_type=_text(q.get("type"), "type"),
            session_id=_text(q.get("session"), "session"),
            user=_text(q.get("user"), "user"),
            since=_time(q.get("since"), "since", now),
            until=_time(q.get("until"), "until", now),
            limit=limit,
            order=order,
            after_seq=cursor if order == "asc" else None,
            before_seq=cursor if order == "desc" else None,
        )

        def run() -> bytes:
            self.monitor.flush()
            events = [_event_dict(s) for s in self.monitor.store.query(query)]
            next_cursor = events[-1]["seq"] if len(events) == limit else None
            return _encode({"events": events, "next_cursor": next_cursor})

        body = await anyio.to_thread.run_sync(run)
        return Response(body, media_type="application/json")

    # -- fleet ------------------------------------------------------------------------------
    async def get_agents(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/agents``: every agent with its metrics and kill state (O(agents))."""
        q = request.query_params
        window = self._window(q.get("window"))
        full = _choice(q.get("detail", "summary"), ("summary", "full"), "detail") == "full"
        result = await anyio.to_thread.run_sync(self._agents, window, full)
        return json_response(result)

    def _agents(self, window: int | None, full: bool) -> AgentList:
        m = self.monitor
        kills = m.kills()
        global_kill = next((k for k in kills if k.scope == "global"), None)
        agent_kills = {k.target: k for k in kills if k.scope == "agent"}
        rows: list[AgentRow] = []
        seen: set[str] = set()
        for snap in m.get_all_metrics(window):
            seen.add(snap.agent)
            kill = global_kill or agent_kills.get(snap.agent)
            rows.append(
                AgentRow(
                    agent=snap.agent,
                    state="killed" if kill is not None else "running",
                    kill=kill,
                    event_count=snap.event_count,
                    events_per_minute=snap.events_per_minute,
                    cost_per_minute=snap.cost_per_minute,
                    cost_total=snap.cost_total,
                    error_rate=snap.error_rate,
                    p95_latency_ms=snap.p95_latency_ms,
                    last_event_at=snap.last_event_at,
                    metrics=snap if full else None,
                )
            )
        for name, kill in agent_kills.items():
            if name not in seen:
                rows.append(AgentRow(agent=name, state="killed", kill=kill))
        rows.sort(key=lambda r: r.agent)
        return AgentList(
            window_seconds=min(window or m.default_window, m.max_window),
            timestamp=m.clock.time(),
            global_kill=global_kill,
            agents=rows,
        )

    async def get_agent_metrics(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/metrics/{agent}``: one agent's snapshot over ``window`` seconds."""
        agent = request.path_params["agent"]
        if not agent or len(agent) > 256:
            raise ApiError(400, "invalid_request", "agent: expected 1..256 characters")
        window = self._window(request.query_params.get("window"))
        snap = await anyio.to_thread.run_sync(lambda: self.monitor.get_metrics(agent, window))
        return json_response(snap)

    async def get_fleet_metrics(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/metrics``: the whole fleet's snapshot (agent ``*``)."""
        window = self._window(request.query_params.get("window"))
        snap = await anyio.to_thread.run_sync(
            lambda: self.monitor.get_metrics(None, window, fleet=True)
        )
        return json_response(snap)

    def _window(self, raw: str | None) -> int | None:
        window: int | None = _int(raw, "window", default=None, low=1, high=self.monitor.max_window)
        return window

    async def get_stats(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/stats``: Redline's own health, and the server's."""
        stats = self.monitor.stats()
        stats["server"] = {
            "uptime_seconds": time.time() - self.started_at,
            "stream_clients": self.hub.clients,
            "stream_dropped": self.hub.dropped,
            "rate_limited": self.limiter.limited,
        }
        return json_response(stats)

    # -- alerts -----------------------------------------------------------------------------
    async def get_alerts(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/alerts``: the alert history, newest first, optionally by state."""
        q = request.query_params
        state = q.get("state")
        if state is not None:
            state = _choice(state, ("firing", "acknowledged", "resolved"), "state")
        limit = _int(q.get("limit"), "limit", default=100, low=1, high=1000)
        agent = _text(q.get("agent"), "agent")
        out = []
        seen: set[str] = set()
        for alert in reversed(list(self.monitor.alerts.history)):
            if alert.id in seen:  # the history keeps every state change; show the latest
                continue
            seen.add(alert.id)
            if (state is None or alert.state == state) and (agent is None or alert.agent == agent):
                out.append(alert)
                if len(out) >= limit:
                    break
        return json_response(AlertList(alerts=out))

    async def ack_alert(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/alerts/{id}/ack``: acknowledge a firing alert (audited).

        Goes through ``Monitor.ack_alert``: the acknowledgement is stored as an ``alert`` event,
        sent to the channels (PagerDuty/OpsGenie acknowledge), and adopted by the monitor that
        raised the alert if that is another process on the same store.
        """
        assert who is not None
        alert_id = request.path_params["id"]
        body = await self._json_body(request, AckRequest, empty_ok=True)

        def acknowledge() -> Any:
            acked = self.monitor.ack_alert(alert_id, by=who.name)
            if acked is not None:
                self._audit("alert_ack", who, alert_id=alert_id, note=body.note)
            return acked

        acked = await anyio.to_thread.run_sync(acknowledge)
        if acked is None:
            raise ApiError(404, "not_found", f"no firing alert {alert_id!r}")
        return json_response(acked)

    # -- kill switches ----------------------------------------------------------------------
    async def kill(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/kill``: kill an agent, a session or the fleet (actor = the token)."""
        assert who is not None
        req: Any = await self._json_body(request, KillRequest)  # type: ignore[arg-type]
        m = self.monitor

        def run() -> KillRecord:
            if isinstance(req, KillAgent):
                return m.kill_agent(req.target, req.reason, actor=who.name, ttl_seconds=req.ttl)
            if isinstance(req, KillSession):
                return m.kill_session(
                    req.target, req.reason, actor=who.name, ttl_seconds=req.ttl, agent=req.agent
                )
            return m.kill_global(req.reason, actor=who.name, ttl_seconds=req.ttl)

        rec = await anyio.to_thread.run_sync(run)
        return json_response(KillResponse(kill=rec))

    async def revive(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/revive``: lift a kill (actor = the token)."""
        assert who is not None
        req: Any = await self._json_body(request, ReviveRequest)  # type: ignore[arg-type]
        m = self.monitor

        def run() -> bool:
            if isinstance(req, ReviveAgent):
                return m.revive(agent=req.target, actor=who.name)
            if isinstance(req, ReviveSession):
                return m.revive(session_id=req.target, actor=who.name)
            return m.revive_global(actor=who.name)

        lifted = await anyio.to_thread.run_sync(run)
        scope: Any = {ReviveAgent: "agent", ReviveSession: "session"}.get(type(req), "global")
        target = getattr(req, "target", "*")
        return json_response(ReviveResponse(revived=lifted, scope=scope, target=target))

    async def check(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/check``: is this agent/session killed? An O(1) lookup, answered inline."""
        q = request.query_params
        agent = q.get("agent")
        if not agent or len(agent) > 256:
            raise ApiError(400, "invalid_request", "agent: required, 1..256 characters")
        session = _text(q.get("session"), "session")
        try:
            self.monitor.check(agent, session)
        except AgentKilledError as exc:
            expires = None
            for rec in self.monitor.kills():
                if rec.scope == exc.scope and rec.target == exc.target:
                    expires = rec.expires_at
                    break
            return json_response(
                CheckResponse(
                    killed=True,
                    scope=exc.scope,
                    target=exc.target,
                    reason=exc.reason,
                    actor=exc.actor,
                    expires_at=expires,
                )
            )
        return Response(b'{"killed":false}', media_type="application/json")

    async def whoami(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/whoami``: the calling token's name and role (any valid token)."""
        assert who is not None
        return json_response(Identity(name=who.name, role=who.role))  # type: ignore[arg-type]

    async def get_kills(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/kills``: every active kill."""
        return json_response(KillList(kills=self.monitor.kills()))

    # -- the stream ---------------------------------------------------------------------------
    async def stream(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/stream``: Server-Sent Events (events, alerts, kills) as they happen."""
        q = request.query_params
        agent = _text(q.get("agent"), "agent")
        raw_types = q.get("types")
        types = [t.strip() for t in raw_types.split(",") if t.strip()] if raw_types else None
        hub = self.hub
        client = hub.connect(agent=agent, types=types)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in client.frames(hub.heartbeat_seconds, hub.hello()):
                    yield chunk
            finally:
                hub.disconnect(client)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- proof ------------------------------------------------------------------------------
    async def verify(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/verify``: walk the hash chain and checkpoints (admin; audited)."""
        assert who is not None
        public_key = _text(request.query_params.get("public_key"), "public_key")
        if public_key is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", public_key):
            # A key that cannot be a key is the caller's mistake, not damage to the chain.
            raise ApiError(
                400, "invalid_request", "public_key: expected 64 hex digits (an Ed25519 key)"
            )

        def run() -> Any:
            self._audit("verify", who)
            return self.monitor.verify(public_key=public_key)

        try:
            report = await anyio.to_thread.run_sync(run)
        except (RedlineError, ValueError) as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return json_response(report)

    async def export(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/export``: a compliance export streamed as it is written (admin; audited)."""
        assert who is not None
        q = request.query_params
        fmt = _choice(q.get("format", "json"), FORMATS, "format")
        now = self.monitor.clock.time()
        filters: dict[str, Any] = {
            "since": _time(q.get("since"), "since", now),
            "until": _time(q.get("until"), "until", now),
            "agent": _text(q.get("agent"), "agent"),
            "session_id": _text(q.get("session"), "session"),
            "user": _text(q.get("user"), "user"),
            "event_type": _text(q.get("type"), "type"),
        }
        if fmt == "gdpr" and not filters["user"]:
            raise ApiError(400, "invalid_request", "the gdpr export is about one person: pass user")
        await anyio.to_thread.run_sync(
            lambda: self._audit(
                "export", who, format=fmt, filters={k: v for k, v in filters.items() if v}
            )
        )
        pipe = _Pipe()
        monitor = self.monitor

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

    # -- the table --------------------------------------------------------------------------
    def _operations(self) -> list[Operation]:
        agent_q = _str_param("agent", "Only this agent.")
        window = Param(
            "window",
            {"type": "integer", "minimum": 1, "maximum": self.monitor.max_window},
            "Window in seconds (default: metrics.default_window_seconds).",
        )
        time_filters = (
            agent_q,
            _str_param("type", "Only this event type."),
            _str_param("session", "Only this session."),
            _str_param("user", "Only this user."),
            Param("since", _TIME_SCHEMA, "From. " + _TIME_DESC),
            Param("until", _TIME_SCHEMA, "Until. " + _TIME_DESC),
        )
        body_errors = {
            400: ("Malformed JSON or an invalid field.", ERR),
            413: ("Body larger than max_body_bytes.", ERR),
        }
        return [
            Operation(
                "POST",
                "/v1/events",
                "postEvents",
                "Record a batch of events",
                self.post_events,
                "ingest",
                {
                    200: ("What happened to each event.", IngestResponse),
                    **body_errors,
                    413: ("Body larger than max_body_bytes, or more than max_batch events.", ERR),
                    415: ("Neither JSON nor NDJSON.", ERR),
                },
                body="events",
                description='A JSON array of events, `{"events": [...]}`, or NDJSON '
                "(`Content-Type: application/x-ndjson`). Validated as `Monitor.record()` does: "
                "each event is accepted, repaired or rejected, and only the non-accepted appear "
                "in `results`. The whole body is parsed before anything is recorded: malformed "
                "JSON records nothing.",
                tags=("events",),
            ),
            Operation(
                "GET",
                "/v1/events",
                "getEvents",
                "Query stored events",
                self.get_events,
                "read",
                {200: ("A page of stored events.", "EventPage"), 400: ("Bad parameter.", ERR)},
                params=(
                    *time_filters,
                    Param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "Page size (default 100).",
                    ),
                    Param(
                        "cursor",
                        {"type": "integer", "minimum": 0, "maximum": 2**62},
                        "`next_cursor` of the previous page.",
                    ),
                    Param(
                        "order",
                        {"type": "string", "enum": ["desc", "asc"]},
                        "Newest first (default) or oldest first.",
                    ),
                ),
                tags=("events",),
            ),
            Operation(
                "GET",
                "/v1/agents",
                "getAgents",
                "The fleet: every agent's metrics and kill state",
                self.get_agents,
                "read",
                {200: ("Agents, sorted by name.", AgentList), 400: ("Bad parameter.", ERR)},
                params=(
                    window,
                    Param(
                        "detail",
                        {"type": "string", "enum": ["summary", "full"]},
                        "`full` adds each agent's whole snapshot.",
                    ),
                ),
                tags=("fleet",),
            ),
            Operation(
                "GET",
                "/v1/metrics",
                "getFleetMetrics",
                "Fleet-wide metrics",
                self.get_fleet_metrics,
                "read",
                {
                    200: ("The fleet's snapshot (agent `*`).", "MetricSnapshot"),
                    400: ("Bad parameter.", ERR),
                },
                params=(window,),
                tags=("fleet",),
            ),
            Operation(
                "GET",
                "/v1/metrics/{agent}",
                "getAgentMetrics",
                "One agent's metrics",
                self.get_agent_metrics,
                "read",
                {
                    200: (
                        "The agent's snapshot (zeros when it has no events in the window).",
                        "MetricSnapshot",
                    ),
                    400: ("Bad parameter.", ERR),
                },
                params=(
                    Param(
                        "agent",
                        {"type": "string", "minLength": 1, "maxLength": 256},
                        "The agent.",
                        "path",
                        True,
                    ),
                    window,
                ),
                tags=("fleet",),
            ),
            Operation(
                "GET",
                "/v1/stats",
                "getStats",
                "Redline's own health counters",
                self.get_stats,
                "read",
                {200: ("Counters (see Monitor.stats()) and the server's.", {"type": "object"})},
                tags=("fleet",),
            ),
            Operation(
                "GET",
                "/v1/alerts",
                "getAlerts",
                "Alerts, newest first",
                self.get_alerts,
                "read",
                {200: ("Alerts.", AlertList), 400: ("Bad parameter.", ERR)},
                params=(
                    Param(
                        "state",
                        {"type": "string", "enum": ["firing", "acknowledged", "resolved"]},
                        "Only alerts in this state.",
                    ),
                    agent_q,
                    Param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "At most this many (default 100).",
                    ),
                ),
                tags=("alerts",),
            ),
            Operation(
                "POST",
                "/v1/alerts/{id}/ack",
                "ackAlert",
                "Acknowledge an alert",
                self.ack_alert,
                "admin",
                {
                    200: ("The alert, now acknowledged.", "Alert"),
                    **body_errors,
                    404: ("No such alert.", ERR),
                },
                params=(
                    Param(
                        "id",
                        {"type": "string", "minLength": 1, "maxLength": 128},
                        "The alert's id.",
                        "path",
                        True,
                    ),
                ),
                body=AckRequest,
                description="Marks the alert acknowledged, records an `alert` event with its new "
                "state and a `security` event (action `alert_ack`), both with the token's name as "
                "actor. Acknowledging twice changes nothing.",
                tags=("alerts",),
            ),
            Operation(
                "POST",
                "/v1/kill",
                "kill",
                "Kill an agent, a session or the fleet",
                self.kill,
                "admin",
                {200: ("The kill now in force.", KillResponse), **body_errors},
                body="KillRequest",
                description="Committed to the store before the response (every monitor on the "
                "store obeys it), recorded as a `kill` event with the token's name as actor.",
                tags=("kill switches",),
            ),
            Operation(
                "POST",
                "/v1/revive",
                "revive",
                "Lift a kill",
                self.revive,
                "admin",
                {200: ("Whether a kill was lifted.", ReviveResponse), **body_errors},
                body="ReviveRequest",
                tags=("kill switches",),
            ),
            Operation(
                "GET",
                "/v1/check",
                "check",
                "Is this agent (or session) killed?",
                self.check,
                "check",
                {
                    200: ("`killed: false`, or the covering kill.", CheckResponse),
                    400: ("No agent given.", ERR),
                },
                params=(
                    Param(
                        "agent",
                        {"type": "string", "minLength": 1, "maxLength": 256},
                        "The agent.",
                        required=True,
                    ),
                    _str_param("session", "Its session."),
                ),
                description='Always 200: `{"killed": false}` or `{"killed": true, scope, target, '
                "reason, actor, expires_at}` (global before agent before session). An O(1) lookup.",
                tags=("kill switches",),
            ),
            Operation(
                "GET",
                "/v1/whoami",
                "whoami",
                "The calling token's name and role",
                self.whoami,
                "check",
                {200: ("Who is calling.", Identity)},
                tags=("operations",),
            ),
            Operation(
                "GET",
                "/v1/kills",
                "getKills",
                "Active kills",
                self.get_kills,
                "read",
                {200: ("Every active kill.", KillList)},
                tags=("kill switches",),
            ),
            Operation(
                "GET",
                "/v1/stream",
                "stream",
                "Live events, alerts and kills (Server-Sent Events)",
                self.stream,
                "read",
                {200: ("A `text/event-stream`.", "sse")},
                params=(
                    agent_q,
                    Param(
                        "types",
                        {"type": "string", "maxLength": 1000},
                        "Comma-separated event types (default: all).",
                    ),
                ),
                description="Frames: `hello` first, then `event` (ordinary events), `kill`, "
                '`revive`, `alert`, `anomaly`, and `dropped` (`{"dropped": n}`: messages lost '
                "because this client lagged); `: heartbeat` comments keep the connection open.",
                tags=("events",),
            ),
            Operation(
                "GET",
                "/v1/verify",
                "verify",
                "Verify the hash chain",
                self.verify,
                "admin",
                {200: ("The verification report.", "VerifyReport"), 400: ("Bad parameter.", ERR)},
                params=(
                    Param(
                        "public_key",
                        {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                        "Hex Ed25519 key the auditor trusts (default: the store's).",
                        "query",
                        False,
                    ),
                ),
                tags=("audit",),
            ),
            Operation(
                "GET",
                "/v1/export",
                "export",
                "Compliance export, streamed",
                self.export,
                "admin",
                {
                    200: ("The report (JSON, JSONL or CSV by format).", "export"),
                    400: ("Bad parameter.", ERR),
                },
                params=(
                    Param(
                        "format",
                        {"type": "string", "enum": list(FORMATS)},
                        "Report format (default json).",
                    ),
                    *time_filters,
                ),
                description="Recorded as a `security` event (action `export`) before it starts.",
                tags=("audit",),
            ),
            Operation(
                "GET",
                "/healthz",
                "healthz",
                "Liveness (no token)",
                self.healthz,
                None,
                {200: ("The process answers.", Health)},
                tags=("operations",),
            ),
            Operation(
                "GET",
                "/readyz",
                "readyz",
                "Readiness (no token)",
                self.readyz,
                None,
                {200: ("Ready.", Ready), 503: ("Not ready; `problems` says why.", Ready)},
                description="Ready when the store answers a one-row query within 2 s and the "
                "writer is not stalled (events queued but nothing written for "
                "`ready_stall_seconds`).",
                tags=("operations",),
            ),
            Operation(
                "GET",
                "/metrics",
                "prometheusMetrics",
                "Prometheus exposition",
                self.prometheus,
                "read",
                {
                    200: ("Prometheus text (or OpenMetrics when asked for).", "prometheus"),
                    503: ("prometheus-client is not installed.", ERR),
                },
                tags=("operations",),
            ),
            Operation(
                "GET",
                "/v1/openapi.json",
                "openapi",
                "This document (no token)",
                self.openapi,
                None,
                {200: ("OpenAPI 3.1.", {"type": "object"})},
                tags=("operations",),
            ),
            Operation(
                "GET",
                "/",
                "dashboard",
                "The dashboard page (no token; its data calls carry one)",
                self.dashboard,
                None,
                {200: ("HTML.", "html")},
                tags=("dashboard",),
            ),
            Operation(
                "GET",
                "/assets/{name}",
                "dashboardAsset",
                "The dashboard's script and style sheet (no token)",
                self.asset,
                None,
                {200: ("JavaScript or CSS.", "asset"), 404: ("No such asset.", ERR)},
                params=(
                    Param(
                        "name",
                        {"type": "string", "enum": ["app.js", "app.css"]},
                        "The file.",
                        "path",
                        True,
                    ),
                ),
                tags=("dashboard",),
            ),
        ]

    # -- operations -------------------------------------------------------------------------
    async def healthz(self, request: Request, who: Principal | None) -> Response:
        """``GET /healthz``: the process answers."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self, request: Request, who: Principal | None) -> Response:
        """``GET /readyz``: the store answers and the writer keeps up."""
        m = self.monitor
        problems: list[str] = []

        def probe() -> None:
            list(m.store.query(EventQuery(limit=1)))

        try:
            with anyio.fail_after(2.0):
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
        except TimeoutError:
            problems.append("the store did not answer a one-row query within 2 s")
        except Exception as exc:
            problems.append(f"the store failed a one-row query: {exc}")
        stats = m.stats()
        queued = int(stats["queued"])
        last = m.last_write_at
        idle = time.time() - (last if last is not None else self.started_at)
        if queued > 0 and idle > self.config.ready_stall_seconds:
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
        if self.metrics_app is None:
            raise ApiError(
                503,
                "unavailable",
                "Prometheus metrics need the prometheus-client package: "
                "pip install 'redline[prometheus]'",
            )
        return _Delegate(self.metrics_app)

    async def openapi(self, request: Request, who: Principal | None) -> Response:
        """``GET /v1/openapi.json``: the document built from this table."""
        from redline.server.openapi import build_document

        if self._openapi is None:
            self._openapi = _encode(
                build_document(self.operations, max_batch=self.config.max_batch)
            )
        return Response(self._openapi, media_type="application/json")

    async def dashboard(self, request: Request, who: Principal | None) -> Response:
        """``GET /``: the dashboard page."""
        return self._static("index.html")

    async def asset(self, request: Request, who: Principal | None) -> Response:
        """``GET /assets/{name}``: the dashboard's script and style sheet."""
        name = request.path_params["name"]
        if name not in _ASSETS or name == "index.html":
            raise ApiError(404, "not_found", f"no asset {name[:60]!r}")
        return self._static(name)

    def _static(self, name: str) -> Response:
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = (_DASHBOARD / name).read_bytes()
        return Response(
            body,
            media_type=_ASSETS[name],
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
        )


# -- helpers --------------------------------------------------------------------------------------

#: Bounds on numbers from the network: beyond them a value is nonsense that would only overflow
#: sums and sketches (a 1e308 ms latency), so it is dropped and the event marked repaired.
_BOUNDS: Final = {
    "cost_usd": 1e6,
    "latency_ms": 1e9,
    "tokens_in": 2**53,
    "tokens_out": 2**53,
    "tokens_cached": 2**53,
}
#: Timestamps from 1970 up to the year 5138; anything else is set to now (and reported).
_MAX_TIMESTAMP: Final = 1e11


_BOUND_ITEMS: Final = tuple(_BOUNDS.items())


def _bounded(fields: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``fields`` with out-of-range numbers dropped (timestamps set to now) and the originals kept
    under ``data["_out_of_range"]`` as evidence; each noted."""
    originals: dict[str, Any] | None = None
    get = fields.get
    for name, bound in _BOUND_ITEMS:
        value = get(name)
        if value is not None and isinstance(value, (int, float)) and not -bound <= value <= bound:
            originals = originals or {}
            originals[name] = value
            notes.append(f"{name}_out_of_range: {name} was {value!r} (limit {bound:g}); dropped")
    ts = get("timestamp")
    if isinstance(ts, (int, float)) and not 0 <= ts <= _MAX_TIMESTAMP:
        originals = originals or {}
        originals["timestamp"] = ts
        notes.append(f"timestamp_out_of_range: timestamp was {ts!r}; set to now")
    if originals is None:
        return fields
    out = {**fields, **dict.fromkeys(originals)}
    if "timestamp" in originals:
        out["timestamp"] = time.time()
    data = fields.get("data", {})
    if isinstance(data, dict):
        out["data"] = {**data, "_out_of_range": originals}
    return out


def _event_dict(stored: StoredEvent) -> dict[str, Any]:
    """A stored event for the API: its fields, ``seq`` and hashes; ``event_type`` always set."""
    out = stored.to_dict()
    out.setdefault("event_type", stored.event.event_type)
    return out


async def _drain(request: Request, seen: int) -> None:
    """Read (and drop) what is left of an oversize body, up to a cap, so the 413 is seen."""
    if seen > _DRAIN_LIMIT:
        return
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > _DRAIN_LIMIT:
                return
    except Exception:  # the client may give up first; nothing to do
        return


def _text(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 256:
        raise ApiError(400, "invalid_request", f"{name}: at most 256 characters")
    return value


def _int(value: str | None, name: str, *, default: Any, low: int, high: int) -> Any:
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


def _choice(value: str, allowed: Any, name: str) -> str:
    if value not in allowed:
        raise ApiError(
            400,
            "invalid_request",
            f"{name}: expected one of {', '.join(allowed)}, got {value[:40]!r}",
        )
    return value


def _time(value: str | None, name: str, now: float) -> float | None:
    if value is None:
        return None
    if _EPOCH_OR_AGE.match(value):
        return parse_time(value, now=now)
    m = _RFC3339.match(value)
    if m is not None:
        text = value.upper().replace("Z", "+00:00")
        if m.group(4) is not None and m.group(6) == "60":  # a leap second: the one before
            text = text[:17] + "59" + text[19:]
        with contextlib.suppress(ValueError, OverflowError):  # out of range: the 400 below
            return datetime.fromisoformat(text).timestamp() if m.group(4) else _date(text)
    raise ApiError(
        400,
        "invalid_request",
        f"{name}: cannot read {value[:40]!r} as a time: use RFC 3339 "
        "(2026-11-21T10:00:00+01:00), a date (2026-11-21), epoch seconds, an age (30m, 2h, 1d) "
        "or now",
    )


def _date(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class _Delegate(Response):
    """A "response" that hands the request to another ASGI app (the Prometheus exporter)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class _Pipe:
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
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(None)

    def fail(self, exc: BaseException) -> None:
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
