"""The span model: what a finished span is, and where finished spans go.

Library-free on purpose: :mod:`redline.export.spans` builds these from events and any
:class:`SpanSink` (an OpenTelemetry SDK via :mod:`redline.export.otel`, a file, a test's
:class:`MemorySpanSink`) receives them. Re-exported by :mod:`redline.export.spans`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["AttrValue", "MemorySpanSink", "SpanEvent", "SpanRecord", "SpanSink"]

AttrValue = str | bool | int | float | tuple[str, ...]


@dataclass(slots=True)
class SpanEvent:
    """A timestamped annotation on a span (OpenTelemetry's span event)."""

    name: str
    timestamp: float
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(slots=True)
class SpanRecord:
    """One finished span. Ids are lowercase hex, 32 (trace) and 16 (span) wide; times epoch s."""

    name: str
    kind: str  # "internal" | "client"
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_time: float
    end_time: float
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    status: str = "unset"  # "unset" | "ok" | "error"
    status_message: str = ""


@runtime_checkable
class SpanSink(Protocol):
    """Where finished spans go: a tracing SDK, a file, a test's list."""

    def export(self, spans: Sequence[SpanRecord]) -> None:
        """Take a batch of finished spans; may be called from a background thread."""

    def shutdown(self) -> None:
        """Flush what is buffered and release resources."""


class MemorySpanSink:
    """Keeps every exported span in :attr:`spans` (for tests and notebooks)."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self._lock = threading.Lock()
        self.shut_down = False

    def export(self, spans: Sequence[SpanRecord]) -> None:
        with self._lock:
            self.spans.extend(spans)

    def shutdown(self) -> None:
        self.shut_down = True

    def named(self, name: str) -> list[SpanRecord]:
        """The spans called ``name``, in export order."""
        with self._lock:
            return [s for s in self.spans if s.name == name]
