"""Python logging, both ways: events as JSON log lines, and log records as events.

* :class:`EventLogger` subscribes to a monitor and logs every event (or the types you pick) as
  one JSON line on ``logging.getLogger("redline.events")``: ``timestamp`` (ISO 8601, UTC),
  ``level``, ``event_type``, ``agent``, ``session_id``, ``tenant_id``, ``user_id``,
  ``trace_id`` and the event's measurements. Ship it to Loki, CloudWatch or ELK with any handler.
* :class:`RedlineJsonFormatter` gives every other log record the same shape, filling
  ``trace_id``/``span_id`` from the current trace, so application logs and Redline events join.
* :func:`redline_processor` does the same for structlog: add it to ``processors``.
* :class:`RedlineLogHandler` goes the other way: an agent framework's log records become
  Redline events (``ERROR`` and above → ``error`` events; extras copied into ``data``).

Trace ids in logs are W3C width (Redline's short ids zero-padded), the form tracing backends
show, so a log line links to the span :mod:`redline.export.otel` exported for the same work.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from redline.events import AgentEvent
from redline.tracing import current_trace

__all__ = [
    "EventLogger",
    "RedlineJsonFormatter",
    "RedlineLogHandler",
    "event_fields",
    "redline_processor",
]

#: Log level of an event when it sets none, by type.
_TYPE_LEVELS: Final = {
    "error": logging.ERROR,
    "kill": logging.CRITICAL,
    "security": logging.WARNING,
    "denial": logging.WARNING,
    "anomaly": logging.WARNING,
    "alert": logging.WARNING,
    "guardrail_trigger": logging.WARNING,
    "revive": logging.WARNING,
}
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "low": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "medium": logging.WARNING,
    "error": logging.ERROR,
    "high": logging.ERROR,
    "critical": logging.CRITICAL,
}
_MEASURES: Final = (
    "cost_usd", "latency_ms", "tokens_in", "tokens_out", "tokens_cached", "model", "tool",
    "status", "span_id", "parent_span_id", "killed_scope",
)  # fmt: skip
#: Attributes every LogRecord has; anything else on a record is an ``extra``.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_HEX: Final = frozenset("0123456789abcdef")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="microseconds")


def _w3c(trace_id: str | None, width: int = 32) -> str | None:
    """A short hex id zero-padded to W3C width; anything else unchanged."""
    if not trace_id:
        return None
    low = trace_id.lower()
    if len(low) < width and set(low) <= _HEX:
        return low.rjust(width, "0")
    return trace_id


def level_of(event: AgentEvent) -> int:
    """The logging level of an event: its ``level`` if set, else one by type (INFO otherwise)."""
    if event.level:
        return _LEVELS.get(event.level.lower(), logging.INFO)
    return _TYPE_LEVELS.get(event.event_type, logging.INFO)


def event_fields(event: AgentEvent, *, include_data: bool = True) -> dict[str, Any]:
    """The JSON object :class:`EventLogger` writes for ``event`` (None fields left out)."""
    out: dict[str, Any] = {
        "timestamp": _iso(event.timestamp),
        "level": logging.getLevelName(level_of(event)).lower(),
        "event_type": event.event_type,
        "agent": event.agent,
        "session_id": event.session_id,
        "tenant_id": event.tenant,
        "user_id": event.user,
        "trace_id": _w3c(event.trace_id),
    }
    for name in _MEASURES:
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    if event.tags:
        out["tags"] = list(event.tags)
    if include_data and event.data:
        out["data"] = event.data
    return {k: v for k, v in out.items() if v is not None}


class EventLogger:
    """Logs each event the monitor records as one JSON line (see the module docstring).

    ``event_types`` limits it to some types (subscribed per type: the others cost nothing);
    ``include_data=False`` leaves ``data`` out. Records carry the fields as attributes too
    (``record.redline_event``), for handlers that want them structured.
    """

    def __init__(
        self,
        monitor: Any,
        logger: logging.Logger | None = None,
        *,
        event_types: Iterable[str] | None = None,
        include_data: bool = True,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("redline.events")
        self.include_data = include_data
        types = list(event_types) if event_types is not None else [None]
        self._unsubscribe = [monitor.subscribe(self, t) for t in types]

    def __call__(self, event: AgentEvent) -> None:
        level = level_of(event)
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        fields = event_fields(event, include_data=self.include_data)
        line = json.dumps(fields, ensure_ascii=False, default=str, separators=(",", ":"))
        logger.log(level, "%s", line, extra={"redline_event": fields})

    def close(self) -> None:
        """Stop logging events."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []


def _trace_fields() -> dict[str, str]:
    trace = current_trace()
    if trace is None:
        return {}
    out = {"trace_id": trace.w3c_trace_id, "span_id": trace.w3c_span_id}
    if trace.parent_span_id is not None:
        out["parent_span_id"] = trace.parent_span_id.rjust(16, "0")
    return out


class RedlineJsonFormatter(logging.Formatter):
    """Formats any record as one JSON line with Redline's field names.

    ``timestamp`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, the record's extras
    (``agent``, ``session_id``, ``tenant_id``, ``user_id`` ... whatever was passed), the current
    trace's ``trace_id``/``span_id`` when the record has none, and ``exception`` text. A record
    logged by :class:`EventLogger` is written as the event's JSON, unchanged.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "redline_event", None)
        if isinstance(fields, dict):
            return json.dumps(fields, ensure_ascii=False, default=str, separators=(",", ":"))
        out: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        for key, value in _trace_fields().items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str, separators=(",", ":"))


def redline_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: adds the current trace's ``trace_id``/``span_id`` if absent.

    ``structlog.configure(processors=[..., redline_processor, JSONRenderer()])``; fields the
    caller bound (``agent``, ``session_id``, ``tenant_id``, ``user_id``) are left as they are.
    """
    for key, value in _trace_fields().items():
        event_dict.setdefault(key, value)
    return event_dict


#: Record extras that fill an event's own fields rather than ``data``.
_FIELD_EXTRAS: Final = {
    "agent": "agent",
    "session_id": "session_id",
    "user": "user",
    "user_id": "user",
    "tenant": "tenant",
    "tenant_id": "tenant",
    "trace_id": "trace_id",
    "span_id": "span_id",
    "parent_span_id": "parent_span_id",
    "cost_usd": "cost_usd",
    "latency_ms": "latency_ms",
    "model": "model",
    "tool": "tool",
    "status": "status",
    "event_type": "event_type",
}


class RedlineLogHandler(logging.Handler):
    """A ``logging.Handler`` that records an agent framework's log records as Redline events.

    ``event_type_map`` maps a level (number or name) to an event type; a record takes the entry
    of the highest level at or below its own (default: ``ERROR`` and above → ``"error"``, below →
    ``default_event_type``, ``"log"``). ``agent`` and ``session_id`` are used unless the record
    carries its own (``extra={"agent": ...}``); other extras go into ``data`` with ``message``,
    ``logger`` and, for exceptions, ``error_type`` and ``error``. Never raises: failures are
    counted in :attr:`errors`. Records from Redline's own loggers are ignored (no feedback loop).
    """

    def __init__(
        self,
        monitor: Any,
        agent: str = "app",
        *,
        session_id: str | None = None,
        event_type_map: Mapping[int | str, str] | None = None,
        default_event_type: str = "log",
        level: int | str = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.monitor = monitor
        self.agent = agent
        self.session_id = session_id
        mapping = event_type_map if event_type_map is not None else {logging.ERROR: "error"}
        self._map = sorted(
            ((_level_number(k), v) for k, v in mapping.items()), key=lambda kv: kv[0], reverse=True
        )
        self.default_event_type = default_event_type
        self.errors = 0
        self._busy = threading.local()

    def _event_type(self, levelno: int) -> str:
        for threshold, event_type in self._map:
            if levelno >= threshold:
                return event_type
        return self.default_event_type

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "redline" or record.name.startswith("redline."):
            return
        if getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            self.monitor.record(self._event(record))
        except Exception:
            self.errors += 1
        finally:
            self._busy.on = False

    def _event(self, record: logging.LogRecord) -> AgentEvent:
        fields: dict[str, Any] = {
            "timestamp": record.created,
            "agent": self.agent,
            "session_id": self.session_id,
            "event_type": self._event_type(record.levelno),
            "level": record.levelname.lower(),
        }
        data: dict[str, Any] = {"message": record.getMessage(), "logger": record.name}
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_") or key == "redline_event":
                continue
            target = _FIELD_EXTRAS.get(key)
            if target is not None and value is not None:
                fields[target] = value
            else:
                data[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _tb = record.exc_info
            data.setdefault("error_type", exc_type.__name__)
            data.setdefault("error", str(exc)[:500])
            if fields["event_type"] == self.default_event_type and record.levelno >= logging.ERROR:
                fields["event_type"] = "error"
        if "trace_id" not in fields:
            trace = current_trace()
            if trace is not None:
                fields["trace_id"] = trace.trace_id
                fields["span_id"] = trace.span_id
        return AgentEvent(data=data, **fields)


def _level_number(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown logging level {level!r}")
    return number
