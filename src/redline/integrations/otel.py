"""Govern agents that already emit OpenTelemetry: a span processor that records GenAI spans.

Add it to the ``TracerProvider`` the application already has::

    from redline.integrations.otel import RedlineSpanProcessor
    provider.add_span_processor(RedlineSpanProcessor(monitor))

On every span's end it maps GenAI spans (the OpenTelemetry GenAI conventions, OpenInference
and OpenLLMetry; see :mod:`redline.integrations._spanmap`) to ``llm_call``, ``tool_call`` and
``error`` events with their trace and span ids, and records them. Other spans cost a few
dictionary lookups and are ignored. ``monitor.record()`` never blocks, so span processing is
never held up; any failure here is counted (``monitor.stats()["integration_errors"]``) and never
reaches the application.

A span processor sees a call only after it happened, so it cannot stop it; what it records feeds
kill policies and budgets, and the guards (``monitor.check()``, the framework integrations)
enforce them at the agent's next step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redline.integrations._base import Governed, StepRecorder, require
from redline.integrations._spanmap import SpanData, SpanMapper, genai_kind

require("opentelemetry.sdk.trace", "otel", "otel")

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span

__all__ = ["RedlineSpanProcessor", "span_data"]


class RedlineSpanProcessor(SpanProcessor):
    """Records the GenAI spans a ``TracerProvider`` finishes as Redline events.

    ``agent_attribute`` names the resource attribute that identifies the agent when a span has
    no ``gen_ai.agent.name`` (``service.name`` by default); ``agents`` maps its values to agent
    names. ``capture_content`` copies tool results (prompts and completions are never copied).
    """

    def __init__(
        self,
        monitor: Governed,
        *,
        agent_attribute: str = "service.name",
        agents: Mapping[str, str] | None = None,
        capture_content: bool = False,
    ) -> None:
        self.monitor = monitor
        self.mapper = SpanMapper(
            agent_attribute=agent_attribute, agents=agents, capture_content=capture_content
        )
        self._quiet = StepRecorder(monitor, integration="otel")
        #: Spans recorded as events, and GenAI spans that could not be mapped.
        self.recorded = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts: it is recorded when it ends."""

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if not attributes or genai_kind(attributes) is None:
            return
        with self._quiet.quietly():
            event = self.mapper.to_event(span_data(span))
            if event is not None:
                self.monitor.record(event)
                self.recorded += 1

    def shutdown(self) -> None:
        """Nothing is buffered here: the monitor owns the queue."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the monitor's queue when it has one (a local monitor), else nothing to do."""
        flush = getattr(self.monitor, "flush", None)
        if flush is None:
            return True
        try:
            return bool(flush(timeout=timeout_millis / 1000.0))
        except TypeError:
            return bool(flush())


def span_data(span: ReadableSpan) -> SpanData:
    """The mapping's view of an SDK span."""
    ctx = span.get_span_context()
    parent = span.parent
    status = span.status
    exc_type: str | None = None
    exc_message: str | None = None
    for ev in span.events:
        if ev.name == "exception" and ev.attributes:
            t = ev.attributes.get("exception.type")
            m = ev.attributes.get("exception.message")
            exc_type = str(t) if t is not None else exc_type
            exc_message = str(m) if m is not None else exc_message
    resource: Mapping[str, Any] = dict(span.resource.attributes) if span.resource else {}
    return SpanData(
        name=span.name,
        # A plain dict: the SDK's BoundedAttributes takes a lock on every lookup.
        attributes=dict(span.attributes or {}),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        trace_id=f"{ctx.trace_id:032x}" if ctx is not None and ctx.trace_id else None,
        span_id=f"{ctx.span_id:016x}" if ctx is not None and ctx.span_id else None,
        parent_span_id=f"{parent.span_id:016x}" if parent is not None and parent.span_id else None,
        error=status is not None and status.status_code is StatusCode.ERROR,
        status_message=(status.description or "") if status is not None else "",
        resource=resource,
        exception_type=exc_type,
        exception_message=exc_message,
    )
