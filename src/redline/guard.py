"""``monitor.guard()``: check before a block of agent work, record it after.

A context manager and a decorator (``contextlib.ContextDecorator``), re-entrant per thread: a
decorated tool that calls another decorated tool times each call on its own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from redline.events import AgentEvent

if TYPE_CHECKING:
    from redline.monitor import Monitor

__all__ = ["Guard"]


class Guard(contextlib.ContextDecorator):
    """What :meth:`Monitor.guard` returns: check on entry, record on exit."""

    def __init__(
        self,
        monitor: Monitor,
        agent: str,
        session_id: str | None,
        event_type: str,
        tool: str | None,
        fields: dict[str, Any],
        estimate_usd: float | None = None,
    ) -> None:
        self._monitor = monitor
        self._agent = agent
        self._session = session_id
        self._type = event_type
        self._tool = tool
        self._fields = fields
        self._estimate = estimate_usd
        self._local = threading.local()

    def __enter__(self) -> Guard:
        self._monitor.check(self._agent, self._session)
        held: list[Any] = getattr(self._local, "held", [])
        if self._estimate is not None:
            res = self._monitor.reserve(
                self._agent,
                estimate_usd=self._estimate,
                session_id=self._session,
                user=self._fields.get("user"),
                tenant=self._fields.get("tenant"),
                model=self._fields.get("model"),
            )
            held.append((res, self._monitor._spend_into(res)))
        else:
            held.append(None)
        self._local.held = held
        starts: list[float] = getattr(self._local, "starts", [])
        starts.append(time.perf_counter())
        self._local.starts = starts
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        latency = (time.perf_counter() - self._local.starts.pop()) * 1000.0
        data = dict(self._fields.get("data") or {})
        fields = {k: v for k, v in self._fields.items() if k != "data"}
        fields.setdefault("timestamp", self._monitor.clock.time())
        if exc_type is not None:
            data["error_type"] = exc_type.__name__
            data["error"] = str(exc)[:500]
        self._monitor.record(
            AgentEvent(
                agent=self._agent,
                event_type=self._type,
                session_id=self._session,
                tool=self._tool,
                latency_ms=latency,
                status="ok" if exc_type is None else "error",
                data=data,
                **fields,
            )
        )
        held = self._local.held.pop()
        if held is not None:
            res, token = held
            self._monitor._spend_done(token)
            res.commit(res.recorded)  # what the block recorded, even when it failed
