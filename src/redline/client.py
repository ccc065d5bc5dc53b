"""``RemoteMonitor``: a :class:`~redline.Monitor`-shaped client of a Redline server.

An agent that cannot share a store with the fleet (another host, a sandbox) records to a server
over HTTP instead::

    from redline.client import RemoteMonitor
    with RemoteMonitor("http://redline.internal:8765", token=os.environ["REDLINE_TOKEN"]) as mon:
        mon.check("sales-agent")                      # raises AgentKilledError when killed
        mon.record(AgentEvent(agent="sales-agent", event_type="llm_call", cost_usd=0.01))

``record()`` never blocks and never raises: events go into a bounded queue (the oldest dropped,
and counted, when it is full) that a daemon thread sends in batches of ``batch_size``, or every
``flush_interval`` seconds, retrying with jittered exponential backoff (honouring ``Retry-After``).
The queue and thread are a :class:`redline._batch.BatchWorker`: flushed once at interpreter exit
(before the local monitors), and re-made in a child after ``os.fork()`` (the child sends only its
own events, over connections of its own; the parent still sends what it had queued).
``check()`` asks the server each time, or reuses an answer for ``check_cache_ttl`` seconds. Kill
and revive calls are recorded on the server with the *token's* name as the actor.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
import msgspec

from redline import _lifecycle
from redline._batch import BatchWorker
from redline.events import AgentEvent
from redline.exceptions import AgentKilledError, RedlineError
from redline.store.base import KillRecord

__all__ = ["RemoteError", "RemoteMonitor"]

log = logging.getLogger("redline.client")

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RemoteError(RedlineError):
    """The server refused or failed a call; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


def _stringify(value: Any) -> Any:
    return str(value)


class RemoteMonitor:
    """Record events to, and check kills with, a Redline server (``redline serve``).

    ``url`` is the server's base URL; ``token`` a bearer token (``ingest`` to record and check,
    ``admin`` to kill and revive). ``batch_size`` events go per request, at least every
    ``flush_interval`` seconds; ``queue_size`` bounds what waits (the oldest are dropped when it
    is full); ``max_retries`` attempts per batch before it is dropped (counted as ``failed``).
    ``check_cache_ttl`` reuses a check's answer that long (0: ask every time). With
    ``fail_closed=True`` a check that cannot reach the server raises :class:`AgentKilledError`
    (scope ``"unknown"``); by default it logs and lets the agent go on. ``transport`` is an
    ``httpx`` transport (tests, proxies).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        check_cache_ttl: float = 0.0,
        queue_size: int = 100_000,
        timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        fail_closed: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1 or queue_size < 1:
            raise ValueError("batch_size and queue_size must be at least 1")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.url = url.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.check_cache_ttl = check_cache_ttl
        self.queue_size = queue_size
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.fail_closed = fail_closed
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._http = self._connect()
        self._inherited: list[httpx.Client] = []
        self._encode = msgspec.json.Encoder(enc_hook=_stringify).encode
        self._closed = False
        self._cache: dict[tuple[str, str | None], tuple[float, KillRecord | None]] = {}
        self._rng = random.Random()
        self._logged: set[str] = set()
        # Counters (see stats()).
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.batches = 0
        self.repaired = 0
        self.rejected = 0
        self._integration_errors: dict[str, int] = {}
        self._worker: BatchWorker[AgentEvent | Mapping[str, Any]] = BatchWorker(
            self._send_batch,
            name="client",
            queue_size=queue_size,
            batch_size=batch_size,
            interval=flush_interval,
            full_policy="drop_oldest",
            exit_phase=_lifecycle.PRODUCERS,
        )
        _lifecycle.after_fork_in_child(self._after_fork)

    def _connect(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self._token}", "User-Agent": "redline-client"},
            timeout=self._timeout,
            transport=self._transport,
        )

    def _after_fork(self) -> None:
        """In a forked child: connections of its own (the sender re-makes itself).

        The parent's pooled connections are the parent's: the child must neither use nor close
        them (closing a TLS connection would end the parent's session), so they are only kept
        out of reach of the garbage collector.
        """
        if self._closed:
            return
        self._inherited.append(self._http)
        self._http = self._connect()
        self._cache.clear()

    # -- recording ------------------------------------------------------------------------------
    def record(self, event: AgentEvent | Mapping[str, Any]) -> None:
        """Queue one event for the server. Never blocks, never raises; drops the oldest when full."""
        self._worker.put(event)

    @property
    def dropped(self) -> int:
        """Events dropped: the queue was full (the oldest went), or the client was closed."""
        return self._worker.dropped

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send everything recorded so far (or give it up after retries); False on timeout."""
        return self._worker.force_flush(timeout)

    def _send_batch(self, batch: list[AgentEvent | Mapping[str, Any]]) -> None:
        """The worker's export: one batch, retried; a bug here is counted, never raised."""
        try:
            self._send(batch)
        except Exception:
            self.failed += len(batch)
            log.exception("redline client: sending a batch failed")

    def _send(self, batch: list[AgentEvent | Mapping[str, Any]]) -> None:
        body = self._encode(batch)
        attempt = 0
        while True:
            status, wait, message = 0, 0.0, ""
            try:
                r = self._http.post(
                    "/v1/events", content=body, headers={"Content-Type": "application/json"}
                )
                status = r.status_code
                if status == 200:
                    result = r.json()
                    self.sent += len(batch)
                    self.batches += 1
                    self.repaired += int(result.get("repaired", 0))
                    self.rejected += int(result.get("rejected", 0))
                    return
                message = _message(r)
                if status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    self._send(batch[:half])
                    self._send(batch[half:])
                    return
                wait = _retry_after(r)
            except httpx.HTTPError as exc:
                message = f"{type(exc).__name__}: {exc}"
            if (status and status not in _RETRY_STATUS) or attempt >= self.max_retries:
                self.failed += len(batch)
                self._log_once(
                    f"send:{status}",
                    "redline client: dropped %d events after %d attempts (%s)",
                    len(batch),
                    attempt + 1,
                    message if not status else f"{status} {message}",
                )
                return
            attempt += 1
            self.retried += 1
            backoff = min(self.backoff_cap, self.backoff_base * 2**attempt)
            delay = max(wait, self._rng.uniform(0, backoff))  # full jitter, or Retry-After
            time.sleep(min(delay, self.backoff_cap))

    # -- kill switches --------------------------------------------------------------------------
    def check(self, agent: str, session_id: str | None = None) -> None:
        """Raise :class:`AgentKilledError` if the server says a kill covers ``agent``/session."""
        rec = self._covering(agent, session_id)
        if rec is not None:
            raise AgentKilledError(rec.scope, rec.target, rec.reason, rec.actor)

    def is_killed(self, agent: str, session_id: str | None = None) -> bool:
        """Whether a kill covers ``agent`` or its session (per the server)."""
        return self._covering(agent, session_id) is not None

    def _covering(self, agent: str, session_id: str | None) -> KillRecord | None:
        key = (agent, session_id)
        if self.check_cache_ttl > 0:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        params = {"agent": agent}
        if session_id:
            params["session"] = session_id
        try:
            r = self._http.get("/v1/check", params=params)
        except httpx.HTTPError as exc:
            return self._unavailable(agent, f"{type(exc).__name__}: {exc}")
        if r.status_code != 200:
            return self._unavailable(agent, f"{r.status_code} {_message(r)}")
        try:
            rec = _kill_from_check(r, agent)
        except ValueError as exc:
            # A proxy's HTML page, a JSON array, null: not an answer. Only the documented stop
            # (AgentKilledError, when failing closed) may reach the agent, never a parse error.
            return self._unavailable(agent, f"unreadable /v1/check answer: {exc}")
        if self.check_cache_ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.check_cache_ttl, rec)
        return rec

    def _unavailable(self, agent: str, why: str) -> KillRecord | None:
        if self.fail_closed:
            return KillRecord(
                scope="unknown",
                target=agent,
                reason=f"kill state unavailable ({why}); failing closed",
                created_at=time.time(),
            )
        self._log_once("check", "redline client: check failed (%s); letting the agent go on", why)
        return None

    def kill_agent(
        self, agent: str, reason: str = "", *, ttl_seconds: float | None = None
    ) -> KillRecord:
        """Kill ``agent`` on the server (needs an admin token)."""
        return self._kill({"scope": "agent", "target": agent}, reason, ttl_seconds)

    def kill_session(
        self,
        session_id: str,
        reason: str = "",
        *,
        ttl_seconds: float | None = None,
        agent: str | None = None,
    ) -> KillRecord:
        """Kill one session on the server (needs an admin token)."""
        body: dict[str, Any] = {"scope": "session", "target": session_id}
        if agent:
            body["agent"] = agent
        return self._kill(body, reason, ttl_seconds)

    def kill_global(self, reason: str = "", *, ttl_seconds: float | None = None) -> KillRecord:
        """Kill every agent on the server (needs an admin token)."""
        return self._kill({"scope": "global"}, reason, ttl_seconds)

    def _kill(self, body: dict[str, Any], reason: str, ttl: float | None) -> KillRecord:
        body["reason"] = reason
        if ttl is not None:
            body["ttl"] = ttl
        result = self._call("POST", "/v1/kill", body)
        self._cache.clear()
        return msgspec.convert(result["kill"], KillRecord)

    def revive(self, agent: str | None = None, session_id: str | None = None) -> bool:
        """Lift the kill on ``agent`` and/or ``session_id``; True if anything was lifted."""
        if agent is None and session_id is None:
            raise ValueError("revive() needs an agent or a session_id (revive_global() for all)")
        lifted = False
        if agent is not None:
            lifted |= bool(
                self._call("POST", "/v1/revive", {"scope": "agent", "target": agent})["revived"]
            )
        if session_id is not None:
            lifted |= bool(
                self._call("POST", "/v1/revive", {"scope": "session", "target": session_id})[
                    "revived"
                ]
            )
        self._cache.clear()
        return lifted

    def revive_global(self) -> bool:
        """Lift the fleet-wide kill; True if there was one."""
        lifted = bool(self._call("POST", "/v1/revive", {"scope": "global"})["revived"])
        self._cache.clear()
        return lifted

    def kills(self) -> list[KillRecord]:
        """Every active kill on the server (needs a read or admin token)."""
        return [msgspec.convert(k, KillRecord) for k in self._call("GET", "/v1/kills")["kills"]]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RemoteError(0, f"{self.url}{path}: {type(exc).__name__}: {exc}") from exc
        if r.status_code != 200:
            raise RemoteError(r.status_code, _message(r))
        try:
            body = r.json()
        except ValueError as exc:
            raise RemoteError(
                r.status_code, f"{self.url}{path}: not JSON: {r.text[:200]!r}"
            ) from exc
        if not isinstance(body, dict):
            raise RemoteError(r.status_code, f"{self.url}{path}: expected a JSON object")
        return body

    # -- health and lifecycle -------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The client's own counters: queued, sent, batches, retried, dropped, failed, ..."""
        return {
            "queued": self._worker.queued,
            "sent": self.sent,
            "batches": self.batches,
            "retried": self.retried,
            "dropped": self.dropped,
            "failed": self.failed,
            "repaired": self.repaired,
            "rejected": self.rejected,
            "integration_errors": sum(self._integration_errors.values()),
            "integration_errors_by_name": dict(self._integration_errors),
        }

    def note_integration_error(self, integration: str) -> None:
        """Count a failure an integration swallowed (see :mod:`redline.integrations`)."""
        self._integration_errors[integration] = self._integration_errors.get(integration, 0) + 1

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the sender and close connections. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        ok = self._worker.shutdown(timeout)
        self._http.close()
        return ok

    def __enter__(self) -> RemoteMonitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _log_once(self, key: str, fmt: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(fmt + " (further cases are counted in stats())", *args)


def _kill_from_check(r: httpx.Response, agent: str) -> KillRecord | None:
    """The kill a ``/v1/check`` answer reports; ``ValueError`` for anything but its schema."""
    body = r.json()  # ValueError (JSONDecodeError) when it is not JSON at all
    if not isinstance(body, dict) or not isinstance(body.get("killed"), bool):
        raise ValueError(f"expected an object with a boolean 'killed', got {r.text[:80]!r}")
    if not body["killed"]:
        return None

    def text(key: str, default: str) -> str:
        value = body.get(key)
        return value if isinstance(value, str) else default

    expires = body.get("expires_at")
    if isinstance(expires, bool) or not isinstance(expires, (int, float, type(None))):
        expires = None
    return KillRecord(
        scope=text("scope", "unknown"),
        target=text("target", agent),
        reason=text("reason", ""),
        actor=text("actor", ""),
        created_at=0.0,
        expires_at=None if expires is None else float(expires),
    )


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)[:200]


def _retry_after(r: httpx.Response) -> float:
    value = r.headers.get("retry-after")
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
