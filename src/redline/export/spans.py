"""Events as spans, without any tracing library: the span model, the sink protocol, the builder.

:class:`SpanBuilder` turns Redline events into :class:`SpanRecord` objects following the
OpenTelemetry GenAI semantic conventions; :class:`BusSpanExporter` feeds it from a monitor's bus
and hands the spans to a :class:`SpanSink` (``export(spans)`` / ``shutdown()``, the seed-003
protocol that lets any backend receive spans). :mod:`redline.export.otel` supplies the
OpenTelemetry-backed sink; :class:`MemorySpanSink` keeps spans in a list for tests.

What becomes what:

=============================  =============================================================
``session_start``/``_end``     one ``invoke_agent {agent}`` span (INTERNAL) spanning the pair
``llm_call``                   ``{operation} {model}`` (CLIENT): model, provider, usage,
                               response model/id/finish reasons (see :mod:`.genai`)
``tool_call`` (or ``tool``)    ``execute_tool {tool}`` (INTERNAL: the tool runs in-process)
``kill``, ``denial``,          span events on the open session span of the agent/session;
``anomaly``, ``alert``, ...    without one, a zero-length ``{event_type} {agent}`` span
``error``                      an ``exception`` span event (or a short span, status ERROR)
anything else with latency     ``{event_type} {agent}`` (INTERNAL)
=============================  =============================================================

Timing: ``end = timestamp`` and ``start = timestamp - latency_ms`` (events are recorded when work
finishes). Parents: the event's own ``trace_id``/``span_id``/``parent_span_id`` (Redline's short
ids are zero-padded to W3C width, so a :class:`~redline.tracing.CausalTraceId` keeps its
identity), else the open session span, else the context current when the event was recorded
(an OpenTelemetry span, or Redline's :func:`~redline.tracing.current_trace`). An id used by two
events becomes a parent: the second event gets a fresh id under the first.

Content (prompts, completions, tool arguments) is copied only with ``capture_content=True``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redline import _lifecycle
from redline._batch import BatchWorker
from redline.events import AgentEvent
from redline.export.genai import (
    input_messages,
    operation_of,
    output_messages,
    provider_name,
    provider_of,
    response_attributes,
    to_json,
    usage_attributes,
)
from redline.export.spanmodel import AttrValue, MemorySpanSink, SpanEvent, SpanRecord, SpanSink
from redline.tracing import CausalTraceId, current_trace

__all__ = [
    "BusSpanExporter",
    "MemorySpanSink",
    "SpanBuilder",
    "SpanEvent",
    "SpanRecord",
    "SpanSink",
    "provider_of",
]

log = logging.getLogger("redline")

#: ``(trace_id, span_id)`` as 32 and 16 lowercase hex, or None.
Context = tuple[str, str] | None

_OK = frozenset({"ok", "success", "succeeded", "completed"})
_GOVERNANCE = frozenset(
    {
        "kill",
        "revive",
        "denial",
        "anomaly",
        "alert",
        "guardrail_trigger",
        "security",
        "approval_request",
        "approval_response",
    }
)
#: ``data`` keys copied onto span events: governance metadata, never content.
_EVENT_KEYS = (
    "scope", "target", "reason", "actor", "rule", "kind", "severity", "metric", "value",
    "threshold", "policy", "action", "title", "message", "error_type", "downtime_seconds",
)  # fmt: skip
_HEX = re.compile(r"[0-9a-f]+")
_rng = random.Random()
if hasattr(os, "register_at_fork"):  # pragma: no branch - absent on Windows only
    os.register_at_fork(after_in_child=_rng.seed)


def _hex_id(value: str | None, width: int) -> str | None:
    """``value`` as a zero-padded lowercase hex id of ``width``; None if not a valid id."""
    if not value or len(value) > width:
        return None
    value = value.lower()
    if _HEX.fullmatch(value) is None or not value.strip("0"):
        return None
    return value.rjust(width, "0")


def _new_id(width: int) -> str:
    value = _rng.getrandbits(width * 4)
    while not value:
        value = _rng.getrandbits(width * 4)
    return format(value, f"0{width}x")


def context_of(ctx: object) -> Context:
    """Normalise a captured context (a :class:`CausalTraceId` or a ``(trace, span)`` pair)."""
    if ctx is None:
        return None
    if isinstance(ctx, CausalTraceId):
        return ctx.w3c_trace_id, ctx.w3c_span_id
    if isinstance(ctx, tuple) and len(ctx) == 2:
        trace = _hex_id(str(ctx[0]), 32)
        span = _hex_id(str(ctx[1]), 16)
        if trace and span:
            return trace, span
    return None


@dataclass(slots=True)
class _Open:
    """A session span waiting for its ``session_end``."""

    agent: str
    session_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start: float
    last: float
    attributes: dict[str, AttrValue]
    events: list[SpanEvent] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    provider: str | None = None


class SpanBuilder:
    """Turns events into :class:`SpanRecord` objects; keeps open session spans (bounded)."""

    def __init__(
        self,
        *,
        capture_content: bool = False,
        max_open_sessions: int = 10_000,
        latest: bool = False,
    ) -> None:
        self.capture_content = capture_content
        #: Emit the latest experimental GenAI conventions (see :mod:`redline.export.genai`).
        self.latest = latest
        self.max_open_sessions = max_open_sessions
        self._open: OrderedDict[tuple[str, str], _Open] = OrderedDict()
        self._latest_by_session: dict[str, tuple[str, str]] = {}
        self._latest_by_agent: dict[str, tuple[str, str]] = {}
        self._used: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        #: Sessions closed without a ``session_end`` because too many were open.
        self.evicted_sessions = 0
        _lifecycle.after_fork_in_child(self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's worker may have held it at the fork).

        Open session spans stay: a child that goes on with a session parents its spans under it.
        """
        self._lock = threading.Lock()

    # -- the public step ----------------------------------------------------------------------
    def build(self, event: AgentEvent, ctx: object = None) -> list[SpanRecord]:
        """The spans ``event`` completes (often one, sometimes none), given the captured context."""
        with self._lock:
            return self._build(event, context_of(ctx))

    def close_all(self, at: float | None = None) -> list[SpanRecord]:
        """End every open session span (at its last activity, or ``at``): for shutdown."""
        with self._lock:
            out = [self._finish(o, at if at is not None else o.last, truncated=True) for o in
                   self._open.values()]  # fmt: skip
            self._open.clear()
            self._latest_by_agent.clear()
            self._latest_by_session.clear()
            return out

    # -- internals (lock held) ------------------------------------------------------------------
    def _build(self, ev: AgentEvent, ctx: Context) -> list[SpanRecord]:
        etype = ev.event_type
        if etype == "session_start":
            return self._start_session(ev, ctx)
        if etype == "session_end":
            return self._end_session(ev, ctx)
        session = self._session_for(ev)
        if session is not None:
            session.last = max(session.last, ev.timestamp)
        if etype == "llm_call":
            return [self._chat(ev, ctx, session)]
        if etype == "tool_call" or (ev.tool is not None and etype not in _GOVERNANCE):
            return [self._tool(ev, ctx, session)]
        if etype in _GOVERNANCE or etype == "error":
            annotation = self._annotation(ev)
            if session is not None:
                session.events.append(annotation)
                return []
            span = self._span(ev, ctx, None, f"{etype} {ev.agent}", "internal", ev.timestamp)
            span.events.append(annotation)
            if etype == "error":
                span.status = "error"
                span.attributes["error.type"] = _error_type(ev)
            return [span]
        if ev.latency_ms is not None:
            span = self._span(ev, ctx, session, f"{etype} {ev.agent}", "internal", None)
            return [span]
        if session is not None:
            session.events.append(SpanEvent(f"redline.{etype}", ev.timestamp, _event_attrs(ev)))
        return []

    def _session_for(self, ev: AgentEvent) -> _Open | None:
        if ev.session_id is not None:
            found = self._open.get((ev.agent, ev.session_id))
            if found is not None:
                return found
            key = self._latest_by_session.get(ev.session_id)
            if key is not None:
                return self._open.get(key)
        key = self._latest_by_agent.get(ev.agent)
        if key is not None and ev.event_type in _GOVERNANCE:
            return self._open.get(key)
        return None

    def _ids(
        self, ev: AgentEvent, ctx: Context, session: _Open | None
    ) -> tuple[str, str, str | None]:
        """``(trace_id, span_id, parent_span_id)`` for the span of ``ev``."""
        raw = ev.trace_id
        span = _hex_id(ev.span_id, 16)
        parent = _hex_id(ev.parent_span_id, 16)
        if raw and "/" in raw:
            try:
                parsed = CausalTraceId.from_string(raw)
            except ValueError:
                parsed = None
            if parsed is not None:
                raw = parsed.trace_id
                span = span or parsed.w3c_span_id
                if parsed.parent_span_id is not None:
                    parent = parent or _hex_id(parsed.parent_span_id, 16)
        trace = _hex_id(raw, 32)
        if trace is None:
            if session is not None:
                trace, parent = session.trace_id, session.span_id
            elif ctx is not None:
                trace, parent = ctx
            else:
                trace = _new_id(32)
        elif parent is None:
            if session is not None and session.trace_id == trace:
                parent = session.span_id
            elif ctx is not None and ctx[0] == trace:
                parent = ctx[1]
        if span is not None and (span in self._used or (session and span == session.span_id)):
            # The id names work already exported (or the session itself): nest under it.
            parent, span = span, None
        if span is None:
            span = _new_id(16)
        if parent == span:
            parent = None
        self._use(span)
        return trace, span, parent

    def _use(self, span_id: str) -> None:
        used = self._used
        used[span_id] = None
        if len(used) > 65_536:
            used.popitem(last=False)

    def _span(
        self,
        ev: AgentEvent,
        ctx: Context,
        session: _Open | None,
        name: str,
        kind: str,
        start: float | None,
    ) -> SpanRecord:
        trace, span_id, parent = self._ids(ev, ctx, session)
        end = ev.timestamp
        if start is None:
            start = end - (ev.latency_ms or 0.0) / 1000.0 if ev.latency_ms else end
        attrs: dict[str, AttrValue] = {"redline.event_type": ev.event_type}
        if ev.agent:
            attrs["gen_ai.agent.name"] = ev.agent
        if ev.session_id:
            attrs["gen_ai.conversation.id"] = ev.session_id
        if ev.cost_usd:
            attrs["redline.cost_usd"] = float(ev.cost_usd)
        if ev.killed_scope:
            attrs["redline.killed_scope"] = ev.killed_scope
        if ev.tenant:
            attrs["redline.tenant"] = ev.tenant
        record = SpanRecord(name, kind, trace, span_id, parent, start, end, attrs)
        if ev.status is not None:
            if ev.status in _OK:
                record.status = "ok"
            else:
                record.status = "error"
                record.attributes["error.type"] = _error_type(ev)
                message = ev.data.get("error") if ev.data else None
                if isinstance(message, str):
                    record.status_message = message[:500]
        return record

    def _chat(self, ev: AgentEvent, ctx: Context, session: _Open | None) -> SpanRecord:
        data = ev.data or {}
        model = ev.model or _str(data.get("model"))
        op = operation_of(data)
        span = self._span(ev, ctx, session, f"{op} {model}" if model else op, "client", None)
        a = span.attributes
        a["gen_ai.operation.name"] = op
        provider = provider_name(model, data)
        a["gen_ai.provider.name"] = provider
        if not self.latest:
            a["gen_ai.system"] = provider  # deprecated since 1.37; older backends key on it
        if model:
            a["gen_ai.request.model"] = model
        a.update(usage_attributes(ev))
        a.update(response_attributes(data))
        if session is not None:
            session.tokens_in += ev.tokens_in or 0
            session.tokens_out += ev.tokens_out or 0
            session.provider = session.provider or provider
        if self.capture_content:
            inputs = input_messages(data)
            if inputs is not None:
                a["gen_ai.input.messages"] = inputs
            outputs = output_messages(data)
            if outputs is not None:
                a["gen_ai.output.messages"] = outputs
        return span

    def _tool(self, ev: AgentEvent, ctx: Context, session: _Open | None) -> SpanRecord:
        data = ev.data or {}
        tool = ev.tool or _str(data.get("tool")) or _str(data.get("name"))
        name = f"execute_tool {tool}" if tool else "execute_tool"
        span = self._span(ev, ctx, session, name, "internal", None)
        a = span.attributes
        a["gen_ai.operation.name"] = "execute_tool"
        if tool:
            a["gen_ai.tool.name"] = tool
        call_id = _str(data.get("call_id")) or _str(data.get("tool_call_id"))
        if call_id:
            a["gen_ai.tool.call.id"] = call_id
        if self.capture_content:
            for key, attr in (
                (("args", "arguments", "input"), "gen_ai.tool.call.arguments"),
                (("result", "output"), "gen_ai.tool.call.result"),
            ):
                for k in key:
                    if k in data:
                        a[attr] = to_json(data[k])
                        break
        return span

    def _annotation(self, ev: AgentEvent) -> SpanEvent:
        if ev.event_type == "error":
            attrs: dict[str, AttrValue] = {"exception.type": _error_type(ev)}
            message = ev.data.get("error") or ev.data.get("message") if ev.data else None
            if isinstance(message, str):
                attrs["exception.message"] = message[:500]
            attrs["gen_ai.agent.name"] = ev.agent
            return SpanEvent("exception", ev.timestamp, attrs)
        return SpanEvent(f"redline.{ev.event_type}", ev.timestamp, _event_attrs(ev))

    def _start_session(self, ev: AgentEvent, ctx: Context) -> list[SpanRecord]:
        session_id = ev.session_id or ""
        key = (ev.agent, session_id)
        out: list[SpanRecord] = []
        stale = self._open.pop(key, None)
        if stale is not None:  # started twice: the first one ends where the second begins
            out.append(self._finish(stale, ev.timestamp, truncated=True))
        outer = None
        other = self._latest_by_session.get(session_id) if session_id else None
        if other is not None:
            outer = self._open.get(other)
        trace, span_id, parent = self._ids(ev, ctx, outer)
        data = ev.data or {}
        attrs: dict[str, AttrValue] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": ev.agent,
            "redline.event_type": "session",
        }
        agent_id = _str(data.get("agent_id"))
        if agent_id:  # only a real id: the name is not one
            attrs["gen_ai.agent.id"] = agent_id
        given = provider_of(ev.model, data)
        if given:
            attrs["gen_ai.provider.name"] = given
        if session_id:
            attrs["gen_ai.conversation.id"] = session_id
        if ev.tenant:
            attrs["redline.tenant"] = ev.tenant
        self._open[key] = _Open(
            ev.agent, session_id, trace, span_id, parent, ev.timestamp, ev.timestamp, attrs
        )
        if session_id:
            self._latest_by_session[session_id] = key
        self._latest_by_agent[ev.agent] = key
        if len(self._open) > self.max_open_sessions:
            _, oldest = self._open.popitem(last=False)
            self.evicted_sessions += 1
            self._forget(oldest)
            out.append(self._finish(oldest, oldest.last, truncated=True))
        return out

    def _end_session(self, ev: AgentEvent, ctx: Context) -> list[SpanRecord]:
        key = (ev.agent, ev.session_id or "")
        opened = self._open.pop(key, None)
        if opened is None:
            # An end without a start: a span of the reported latency (or zero length).
            span = self._span(ev, ctx, None, f"invoke_agent {ev.agent}", "internal", None)
            span.attributes["gen_ai.operation.name"] = "invoke_agent"
            span.attributes["gen_ai.provider.name"] = provider_name(ev.model, ev.data)
            agent_id = _str((ev.data or {}).get("agent_id"))
            if agent_id:
                span.attributes["gen_ai.agent.id"] = agent_id
            return [span]
        self._forget(opened)
        record = self._finish(opened, max(ev.timestamp, opened.start))
        if ev.status is not None and ev.status not in _OK:
            record.status = "error"
            record.attributes["error.type"] = _error_type(ev)
        return [record]

    def _forget(self, opened: _Open) -> None:
        key = (opened.agent, opened.session_id)
        if self._latest_by_session.get(opened.session_id) == key:
            del self._latest_by_session[opened.session_id]
        if self._latest_by_agent.get(opened.agent) == key:
            del self._latest_by_agent[opened.agent]

    def _finish(self, o: _Open, end: float, *, truncated: bool = False) -> SpanRecord:
        attrs = dict(o.attributes)
        # Required on agent spans: what the session's inference calls used, else ``_OTHER``.
        attrs.setdefault("gen_ai.provider.name", o.provider or provider_name(None))
        if o.tokens_in:
            attrs["gen_ai.usage.input_tokens"] = o.tokens_in
        if o.tokens_out:
            attrs["gen_ai.usage.output_tokens"] = o.tokens_out
        if truncated:
            attrs["redline.session.truncated"] = True
        record = SpanRecord(
            f"invoke_agent {o.agent}",
            "internal",
            o.trace_id,
            o.span_id,
            o.parent_span_id,
            o.start,
            end,
            attrs,
            list(o.events),
        )
        if any(e.name == "redline.kill" for e in o.events):
            record.status = "error"
            record.attributes["error.type"] = "killed"
        return record


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_type(ev: AgentEvent) -> str:
    data = ev.data or {}
    for key in ("error_type", "type"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    if ev.status and ev.status not in _OK:
        return ev.status
    return "_OTHER"


def _event_attrs(ev: AgentEvent) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {"gen_ai.agent.name": ev.agent}
    data = ev.data or {}
    for key in _EVENT_KEYS:
        value = data.get(key)
        if isinstance(value, (str, bool, int, float)):
            attrs[f"redline.{key}"] = value
    return attrs


def current_redline_context() -> object:
    """The Redline trace current on this thread (captured when an event is recorded)."""
    return current_trace()


class BusSpanExporter:
    """Subscribes to a monitor's bus and exports spans from a background thread.

    The subscriber does two cheap things on the recording thread: it captures the current
    trace context (``context()``; by default Redline's current trace) and puts the event on a
    :class:`~redline._batch.BatchWorker` (``queue_size``; past it the oldest is dropped and
    counted in :attr:`dropped`). The worker, woken every ``interval`` seconds or when 512 events
    wait, builds spans, calls ``on_event`` (metrics) and hands each batch to ``sink``.
    :meth:`force_flush` waits until everything queued has been exported. In a child after
    ``os.fork()`` the queue starts empty (the parent exports what it had queued) and a worker
    of its own starts with the child's first event; at interpreter exit the queue is flushed
    once, after the monitors.
    """

    def __init__(
        self,
        monitor: Any,
        sink: SpanSink,
        *,
        capture_content: bool = False,
        queue_size: int = 10_000,
        context: Callable[[], object] = current_redline_context,
        on_event: Callable[[AgentEvent], None] | None = None,
        interval: float = 0.1,
        latest: bool = False,
    ) -> None:
        self.sink = sink
        self.builder = SpanBuilder(capture_content=capture_content, latest=latest)
        self._context = context
        self._on_event = on_event
        self._worker: BatchWorker[tuple[AgentEvent, object]] = BatchWorker(
            self._export,
            name="spans",
            queue_size=queue_size,
            batch_size=512,
            interval=interval,
            full_policy="drop_oldest",
            exit_phase=_lifecycle.DELIVERY,
        )
        self.exported = 0
        self.errors = 0
        self._unsubscribe: Callable[[], None] | None = monitor.subscribe(self._on_bus_event)

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (or arrived after shutdown)."""
        return self._worker.dropped

    @property
    def queued(self) -> int:
        """Events waiting to become spans."""
        return self._worker.queued

    # -- the recording thread -------------------------------------------------------------------
    def _on_bus_event(self, event: AgentEvent) -> None:
        self._worker.put((event, self._context()))

    # -- the worker -----------------------------------------------------------------------------
    def _export(self, items: list[tuple[AgentEvent, object]]) -> None:
        batch: list[SpanRecord] = []
        for event, ctx in items:
            try:
                batch.extend(self.builder.build(event, ctx))
                if self._on_event is not None:
                    self._on_event(event)
            except Exception:
                self._fail("building a span")
        if batch:
            try:
                self.sink.export(batch)
                self.exported += len(batch)
            except Exception:
                self._fail("exporting spans")

    def _fail(self, what: str) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.exception("redline: %s failed (%d so far); the agent was not affected", what,
                          self.errors)  # fmt: skip

    # -- control --------------------------------------------------------------------------------
    def force_flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every event queued so far has been turned into spans and exported."""
        return self._worker.force_flush(timeout)

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Unsubscribe, export what is queued, end open session spans, shut the sink down."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        ok = self._worker.shutdown(timeout)
        rest = self.builder.close_all()
        try:
            if rest:
                self.sink.export(rest)
            self.sink.shutdown()
        except Exception:
            self._fail("shutting the span sink down")
            return False
        return ok
