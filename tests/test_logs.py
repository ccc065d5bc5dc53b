"""Specification of logging both ways: events as JSON lines, log records as events."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.export.logs import (
    EventLogger,
    RedlineJsonFormatter,
    RedlineLogHandler,
    event_fields,
    redline_processor,
)
from redline.testing import ManualClock, RecordingSubscriber
from redline.tracing import CausalTraceId, start_span

T0 = 1_700_000_040.0
QUIET = {
    "detectors": {name: {"enabled": False} for name in ("loop", "stuck", "suspicious", "drift")}
}


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor(parse_config(QUIET), clock=ManualClock(T0))
    yield m
    m.close()


@pytest.fixture
def live() -> Iterator[Monitor]:
    """A monitor on the wall clock: log records carry real timestamps."""
    m = Monitor(parse_config(QUIET))
    yield m
    m.close()


@pytest.fixture
def stream() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger writing bare messages into a string buffer."""
    logger = logging.getLogger(f"test.redline.{id(object())}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    yield logger, buffer
    logger.removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_event_is_one_json_line(
    monitor: Monitor, stream: tuple[logging.Logger, io.StringIO]
) -> None:
    """Every recorded event becomes one JSON line with the fields log searches filter on."""
    logger, buffer = stream
    EventLogger(monitor, logger)
    trace = CausalTraceId()
    monitor.record(AgentEvent(timestamp=T0, agent="sales", event_type="tool_call", tool="crm",
                              session_id="s-1", user="u-7", tenant="acme",
                              trace_id=trace.trace_id, latency_ms=12.5,
                              data={"rows": 3}))  # fmt: skip
    [line] = lines(buffer)
    assert line == {
        "timestamp": "2023-11-14T22:14:00.000000+00:00",
        "level": "info",
        "event_type": "tool_call",
        "agent": "sales",
        "session_id": "s-1",
        "tenant_id": "acme",
        "user_id": "u-7",
        "trace_id": trace.w3c_trace_id,
        "tool": "crm",
        "latency_ms": 12.5,
        "data": {"rows": 3},
    }


def test_levels_follow_the_event(
    monitor: Monitor, stream: tuple[logging.Logger, io.StringIO]
) -> None:
    """Errors log at ERROR, denials at WARNING, kills at CRITICAL; ``level`` on an event wins."""
    logger, buffer = stream
    EventLogger(monitor, logger)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="error"))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="denial"))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="action", level="debug"))
    monitor.kill_agent("a", reason="test")
    levels = {(line["event_type"], line["level"]) for line in lines(buffer)}
    assert {("error", "error"), ("denial", "warning"), ("action", "debug"),
            ("kill", "critical")} <= levels  # fmt: skip


def test_disabled_levels_cost_nothing(
    monitor: Monitor, stream: tuple[logging.Logger, io.StringIO]
) -> None:
    """Below the logger's level nothing is formatted or written."""
    logger, buffer = stream
    logger.setLevel(logging.WARNING)
    EventLogger(monitor, logger)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="action"))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="denial"))
    assert [line["event_type"] for line in lines(buffer)] == ["denial"]


def test_event_types_filter_and_close(
    monitor: Monitor, stream: tuple[logging.Logger, io.StringIO]
) -> None:
    """``event_types`` picks what is logged; ``close()`` stops logging."""
    logger, buffer = stream
    events = EventLogger(monitor, logger, event_types=["denial"], include_data=False)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="action"))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="denial", data={"x": 1}))
    events.close()
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="denial"))
    [line] = lines(buffer)
    assert line["event_type"] == "denial"
    assert "data" not in line


def test_default_logger_is_redline_events(
    monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a logger, events go to ``redline.events``; records carry the fields too."""
    caplog.set_level(logging.INFO, logger="redline.events")
    EventLogger(monitor)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="action"))
    [record] = [r for r in caplog.records if r.name == "redline.events"]
    assert json.loads(record.getMessage())["agent"] == "a"
    assert record.redline_event["event_type"] == "action"  # type: ignore[attr-defined]


def test_json_formatter_adds_trace_context(stream: tuple[logging.Logger, io.StringIO]) -> None:
    """Application logs formatted by ``RedlineJsonFormatter`` carry extras and the trace."""
    logger, buffer = stream
    logger.handlers[0].setFormatter(RedlineJsonFormatter())
    with start_span() as trace:
        logger.warning("refund %s", "r-1", extra={"agent": "billing", "session_id": "s-2"})
    [line] = lines(buffer)
    assert line["message"] == "refund r-1"
    assert line["level"] == "warning"
    assert line["agent"] == "billing"
    assert line["session_id"] == "s-2"
    assert line["trace_id"] == trace.w3c_trace_id
    assert line["span_id"] == trace.w3c_span_id
    assert line["timestamp"].endswith("+00:00")


def test_json_formatter_keeps_event_lines_verbatim(
    monitor: Monitor, stream: tuple[logging.Logger, io.StringIO]
) -> None:
    """An event line through ``RedlineJsonFormatter`` is the event's JSON, not wrapped again."""
    logger, buffer = stream
    logger.handlers[0].setFormatter(RedlineJsonFormatter())
    EventLogger(monitor, logger)
    event = AgentEvent(timestamp=T0, agent="a", event_type="action")
    monitor.record(event)
    assert lines(buffer) == [event_fields(event)]


def test_structlog_processor_adds_trace_ids() -> None:
    """``redline_processor`` adds trace ids inside a span and leaves bound fields alone."""
    assert redline_processor(None, "info", {"event": "x"}) == {"event": "x"}
    with start_span() as trace, start_span() as child:
        out = redline_processor(None, "info", {"event": "x", "agent": "a"})
    assert out == {
        "event": "x",
        "agent": "a",
        "trace_id": trace.w3c_trace_id,
        "span_id": child.w3c_span_id,
        "parent_span_id": trace.w3c_span_id,
    }


def test_log_records_become_events(live: Monitor) -> None:
    """An ERROR record is an ``error`` event with the message, extras and exception in data."""
    seen = RecordingSubscriber()
    live.subscribe(seen)
    logger = logging.getLogger("framework.agent")
    handler = RedlineLogHandler(live, agent="planner", session_id="s-3")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("thinking", extra={"step": 2})
        try:
            raise TimeoutError("llm took too long")
        except TimeoutError:
            logger.exception("call failed", extra={"model": "gpt-4o", "retry": 1})
    finally:
        logger.removeHandler(handler)
    info, error = seen.events
    assert (info.event_type, info.agent, info.session_id) == ("log", "planner", "s-3")
    assert info.data == {"message": "thinking", "logger": "framework.agent", "step": 2}
    assert error.event_type == "error"
    assert error.level == "error"
    assert error.model == "gpt-4o"
    assert error.data["error_type"] == "TimeoutError"
    assert error.data["error"] == "llm took too long"
    assert error.data["retry"] == 1
    assert live.get_metrics("planner").error_count == 1


def test_event_type_map_and_record_agent(live: Monitor) -> None:
    """Levels map to types by the highest threshold met; a record's own agent wins."""
    seen = RecordingSubscriber()
    live.subscribe(seen)
    logger = logging.getLogger("framework.mapped")
    handler = RedlineLogHandler(
        live, agent="default", event_type_map={"WARNING": "guardrail_trigger",
                                                  logging.CRITICAL: "security"},
    )  # fmt: skip
    logger.addHandler(handler)
    try:
        logger.warning("blocked", extra={"agent": "writer"})
        logger.critical("breach")
        logger.error("between")
    finally:
        logger.removeHandler(handler)
    assert [(e.event_type, e.agent) for e in seen.events] == [
        ("guardrail_trigger", "writer"),
        ("security", "default"),
        ("guardrail_trigger", "default"),
    ]


def test_the_handler_never_raises_and_never_loops(live: Monitor) -> None:
    """A broken live is counted, not raised; Redline's own log records are ignored."""

    class Broken:
        def record(self, event: AgentEvent) -> None:
            raise RuntimeError("down")

    handler = RedlineLogHandler(Broken(), agent="a")
    logger = logging.getLogger("framework.broken")
    logger.addHandler(handler)
    try:
        logger.error("boom")
    finally:
        logger.removeHandler(handler)
    assert handler.errors == 1

    seen = RecordingSubscriber()
    live.subscribe(seen)
    own = RedlineLogHandler(live)
    own.handle(logging.LogRecord("redline", logging.ERROR, __file__, 1, "x", None, None))
    own.handle(logging.LogRecord("redline.events", logging.ERROR, __file__, 1, "x", None, None))
    assert seen.events == []


def test_handler_takes_the_current_trace(live: Monitor) -> None:
    """A record logged inside a Redline span carries that trace onto the event."""
    seen = RecordingSubscriber()
    live.subscribe(seen)
    handler = RedlineLogHandler(live, agent="a")
    with start_span() as trace:
        handler.handle(logging.LogRecord("app", logging.ERROR, __file__, 1, "x", None, None))
    assert seen.events[0].trace_id == trace.trace_id
    assert seen.events[0].span_id == trace.span_id
