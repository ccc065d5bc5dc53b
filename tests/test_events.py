"""Specification of events and the bad-input policy: repaired or rejected, counted, never raised.

One test per row of the table in :mod:`redline.validation`, then strict mode, where every row
raises :class:`~redline.InvalidEventError` instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redline import (
    CATEGORIES,
    EVENT_TYPES,
    AgentEvent,
    InvalidEventError,
    Monitor,
    category_of,
    parse_config,
)
from redline.testing import ManualClock
from redline.validation import EventValidator

NOW = 1_700_000_040.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def monitor(clock: ManualClock) -> Iterator[Monitor]:
    m = Monitor(clock=clock)
    yield m
    m.close()


def only_event(monitor: Monitor) -> AgentEvent:
    """The single event the monitor stored."""
    rows = list(monitor.events(order="asc"))
    assert len(rows) == 1, [r.event for r in rows]
    return rows[0].event


def ev(**fields: Any) -> AgentEvent:
    """An event at the test clock's time unless told otherwise."""
    fields.setdefault("timestamp", NOW)
    fields.setdefault("agent", "agent-1")
    return AgentEvent(**fields)


# --- AgentEvent ---------------------------------------------------------------------------


def test_event_has_the_peer_fields_and_redline_fields() -> None:
    """``AgentEvent`` takes the peer's fields by keyword, plus tokens, model, tool and trace ids."""
    e = AgentEvent(
        timestamp=NOW, agent="a", event_type="llm_call", data={"k": 1}, session_id="s",
        user="u", cost_usd=0.5, latency_ms=12.0, tags=["t"], tenant="acme", tokens_in=10,
        tokens_out=5, tokens_cached=2, model="gpt-4", tool="search", trace_id="t1",
        span_id="sp", parent_span_id="p", level="info",
    )
    assert e.to_dict()["tokens_in"] == 10
    assert e.category == "performance"


def test_event_timestamp_defaults_to_now() -> None:
    """An event built without a timestamp carries the current wall-clock time."""
    before = time.time()
    e = AgentEvent(agent="a")
    assert before <= e.timestamp <= time.time()


def test_to_dict_omits_defaults() -> None:
    """``to_dict()`` keeps the stored form compact: fields left at their default are omitted."""
    assert AgentEvent(timestamp=1.0, agent="a").to_dict() == {"timestamp": 1.0, "agent": "a"}


def test_every_meaningful_type_has_a_category() -> None:
    """Each event type DESIGN.md lists maps to one of the six categories."""
    listed = {
        "action", "llm_call", "tool_call", "decision", "denial", "approval_request",
        "approval_response", "guardrail_trigger", "cost", "error", "security", "user_input",
        "session_start", "session_end", "kill", "revive", "anomaly", "alert",
        "budget",  # issue 14: budget decisions, written only by the monitor
    }
    assert listed == set(EVENT_TYPES)
    assert {category_of(t) for t in listed} <= set(CATEGORIES)


def test_unknown_types_are_actions() -> None:
    """A type Redline does not know is stored as given and categorised as an action."""
    assert category_of("my_custom_step") == "action"


# --- the good path --------------------------------------------------------------------------


def test_a_good_event_passes_untouched(clock: ManualClock) -> None:
    """A well-formed event is returned as the same object: no copy, nothing counted."""
    v = EventValidator(clock=clock.time)
    e = ev(cost_usd=0.1, latency_ms=3.0, tokens_in=5, data={"model": "gpt-4"})
    assert v.check(e) is e
    assert v.repaired == {}
    assert v.rejected == {}


def test_a_mapping_is_accepted_as_an_event(monitor: Monitor) -> None:
    """``record()`` also takes a plain dict with the event's fields."""
    monitor.record({"timestamp": NOW, "agent": "a", "event_type": "error", "cost_usd": 0.2})
    stored = only_event(monitor)
    assert (stored.agent, stored.event_type, stored.cost_usd) == ("a", "error", 0.2)


def test_unknown_mapping_keys_are_kept_as_evidence(monitor: Monitor) -> None:
    """Keys a mapping has that ``AgentEvent`` lacks are kept under ``data["_extra"]``."""
    monitor.record({"timestamp": NOW, "agent": "a", "colour": "red", "data": {"k": 1}})
    stored = only_event(monitor)
    assert stored.data == {"k": 1, "_extra": {"colour": "red"}}
    assert monitor.stats()["repaired_by_reason"] == {"unknown_fields": 1}


def test_an_integer_timestamp_is_accepted(monitor: Monitor) -> None:
    """An integral epoch timestamp is stored as a float and is not counted as a repair."""
    monitor.record(ev(timestamp=int(NOW)))
    assert only_event(monitor).timestamp == NOW
    assert monitor.stats()["repaired"] == 0


# --- one test per row of the bad-input table ------------------------------------------------


@pytest.mark.parametrize("bad", ["not an event", 42, None, ["agent", "a"], object()])
def test_row_not_an_event_is_rejected(monitor: Monitor, bad: Any) -> None:
    """Something that is neither an ``AgentEvent`` nor a mapping is dropped and counted."""
    monitor.record(bad)
    assert list(monitor.events()) == []
    assert monitor.stats()["rejected_by_reason"] == {"not_an_event": 1}


@pytest.mark.parametrize("agent", ["", "   ", "\t\n"])
def test_row_agent_empty_is_rejected(monitor: Monitor, agent: str) -> None:
    """An event with an empty or blank agent has nothing to attribute it to: dropped, counted."""
    monitor.record(ev(agent=agent))
    assert list(monitor.events()) == []
    assert monitor.stats()["rejected_by_reason"] == {"agent_empty": 1}
    assert monitor.get_all_metrics() == []


def test_row_agent_not_a_string_is_stringified(monitor: Monitor) -> None:
    """A non-string agent is stored as ``str(agent)``; the original is kept as evidence."""
    monitor.record(ev(agent=42))
    stored = only_event(monitor)
    assert stored.agent == "42"
    assert stored.data["_repaired"]["agent"] == "42"
    assert monitor.stats()["repaired_by_reason"] == {"agent_type": 1}


def test_row_event_type_not_a_string_is_stringified(monitor: Monitor) -> None:
    """A non-string event type is stored as ``str(event_type)``."""
    monitor.record(ev(event_type=7))
    assert only_event(monitor).event_type == "7"
    assert monitor.stats()["repaired_by_reason"] == {"event_type_type": 1}


def test_row_event_type_empty_becomes_action(monitor: Monitor) -> None:
    """An empty event type is recorded as ``"action"`` and counted in the metrics as one."""
    monitor.record(ev(event_type=""))
    assert only_event(monitor).event_type == "action"
    assert monitor.get_metrics("agent-1").action_count == 1
    assert monitor.stats()["repaired_by_reason"] == {"event_type_empty": 1}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "yesterday", None, True])
def test_row_timestamp_not_finite_is_set_to_now(
    monitor: Monitor, clock: ManualClock, bad: Any
) -> None:
    """A timestamp that is not a finite number becomes the monitor's now; the original is kept."""
    clock.advance(5)
    monitor.record(ev(timestamp=bad))
    stored = only_event(monitor)
    assert stored.timestamp == clock.time()
    assert stored.data["_repaired"]["timestamp"] == repr(bad)
    assert monitor.stats()["repaired_by_reason"] == {"timestamp_invalid": 1}


def test_row_timestamp_in_the_future_is_set_to_now(monitor: Monitor) -> None:
    """A timestamp ahead of now by more than the allowed skew (300 s) becomes now."""
    monitor.record(ev(timestamp=NOW + 3600))
    stored = only_event(monitor)
    assert stored.timestamp == NOW
    assert stored.data["_repaired"]["timestamp"] == NOW + 3600
    assert monitor.stats()["repaired_by_reason"] == {"timestamp_future": 1}


def test_timestamp_within_the_skew_is_kept(monitor: Monitor) -> None:
    """A timestamp slightly ahead of now (clock skew between hosts) is kept as given."""
    monitor.record(ev(timestamp=NOW + 60))
    assert only_event(monitor).timestamp == NOW + 60
    assert monitor.stats()["repaired"] == 0


@pytest.mark.parametrize("field", ["cost_usd", "latency_ms"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "abc", True, [1]])
def test_row_bad_cost_or_latency_is_dropped(monitor: Monitor, field: str, bad: Any) -> None:
    """A NaN, infinite, negative or non-numeric cost or latency is set to ``None`` and counted."""
    monitor.record(ev(**{field: bad}))
    stored = only_event(monitor)
    assert getattr(stored, field) is None
    assert field in stored.data["_repaired"]
    assert monitor.stats()["repaired_by_reason"] == {f"{field}_invalid": 1}


def test_a_nan_cost_never_poisons_the_metrics(monitor: Monitor) -> None:
    """After a NaN cost, ``cost_per_minute`` still adds up the good costs."""
    monitor.record(ev(cost_usd=math.nan))
    monitor.record(ev(cost_usd=0.5))
    assert monitor.get_metrics("agent-1").cost_total == 0.5


@pytest.mark.parametrize(("given", "stored"), [("0.25", 0.25), (2, 2.0)])
def test_numeric_cost_is_parsed(monitor: Monitor, given: Any, stored: float) -> None:
    """A numeric string or an int cost is converted to a float, not dropped."""
    monitor.record(ev(cost_usd=given))
    assert only_event(monitor).cost_usd == stored
    assert monitor.stats()["repaired"] == 0


@pytest.mark.parametrize("field", ["tokens_in", "tokens_out", "tokens_cached"])
@pytest.mark.parametrize("bad", [-1, 1.5, "many", math.nan, False])
def test_row_bad_tokens_are_dropped(monitor: Monitor, field: str, bad: Any) -> None:
    """A negative, fractional or non-numeric token count is set to ``None`` and counted."""
    monitor.record(ev(**{field: bad}))
    assert getattr(only_event(monitor), field) is None
    assert monitor.stats()["repaired_by_reason"] == {f"{field}_invalid": 1}


@pytest.mark.parametrize("bad", [{}, "yes", 1, [True]])
def test_a_cost_estimated_that_is_not_a_bool_is_cleared(monitor: Monitor, bad: Any) -> None:
    """``cost_estimated`` is true, false or unset: anything else (from an untrusted client)
    is cleared and counted, so the stored event can always be read back."""
    monitor.record(ev(cost_estimated=bad))
    assert only_event(monitor).cost_estimated is None
    assert monitor.stats()["repaired_by_reason"] == {"cost_estimated_invalid": 1}


def test_integral_float_tokens_are_converted(monitor: Monitor) -> None:
    """``tokens_in=10.0`` is stored as the integer 10 and counted in the token metrics."""
    monitor.record(ev(tokens_in=10.0, tokens_out="3"))
    stored = only_event(monitor)
    assert (stored.tokens_in, stored.tokens_out) == (10, 3)
    assert type(stored.tokens_in) is int
    assert monitor.get_metrics("agent-1").tokens_in == 10


@pytest.mark.parametrize(
    "field",
    ["session_id", "user", "tenant", "model", "tool", "status", "trace_id", "span_id",
     "parent_span_id", "level"],
)
def test_row_text_fields_not_strings_are_stringified(monitor: Monitor, field: str) -> None:
    """Optional text fields given a non-string are stored as ``str(value)``."""
    monitor.record(ev(**{field: 123}))
    assert getattr(only_event(monitor), field) == "123"
    assert monitor.stats()["repaired_by_reason"] == {f"{field}_type": 1}


@pytest.mark.parametrize(
    ("tags", "stored"),
    [("urgent", ["urgent"]), ([1, "a"], ["1", "a"]), (("x", "y"), ["x", "y"]), (None, [])],
)
def test_row_tags_not_a_list_of_strings(monitor: Monitor, tags: Any, stored: list[str]) -> None:
    """Tags become a list of strings: items ``str()``-ed, a lone value wrapped."""
    monitor.record(ev(tags=tags))
    assert only_event(monitor).tags == stored
    assert monitor.stats()["repaired_by_reason"] == {"tags_type": 1}


@pytest.mark.parametrize(
    ("data", "stored"),
    [("hello", {"value": "hello"}), ([1, 2], {"value": [1, 2]}), (None, {})],
)
def test_row_data_not_a_dict_is_wrapped(monitor: Monitor, data: Any, stored: Any) -> None:
    """A ``data`` that is not a dict is stored as ``{"value": data}``."""
    monitor.record(ev(data=data))
    assert only_event(monitor).data == stored
    assert monitor.stats()["repaired_by_reason"] == {"data_type": 1}


class _Opaque:
    def __str__(self) -> str:
        return "opaque-thing"


def test_row_unserialisable_data_values_are_stringified(monitor: Monitor) -> None:
    """Values JSON cannot encode are ``str()``-ed; the rest of ``data`` is kept as it was."""
    monitor.record(ev(data={"obj": _Opaque(), "n": 1, "nested": {"o": _Opaque()}}))
    assert only_event(monitor).data == {
        "obj": "opaque-thing", "n": 1, "nested": {"o": "opaque-thing"},
    }
    assert monitor.stats()["repaired_by_reason"] == {"data_unserialisable": 1}


def test_row_oversize_data_keeps_a_preview(clock: ManualClock) -> None:
    """``data`` above ``events.max_data_bytes`` is replaced by a preview and its original size."""
    m = Monitor(parse_config({"events": {"max_data_bytes": 1024}}), clock=clock)
    m.record(ev(data={"blob": "x" * 5000}))
    data = only_event(m).data
    m.close()
    assert data["_truncated"] is True
    assert data["_original_bytes"] > 5000
    assert data["_preview"].startswith('{"blob":"xxx')
    assert len(data["_preview"]) <= 1024
    assert m.stats()["repaired_by_reason"] == {"data_oversize": 1}


# --- the policy as a whole ------------------------------------------------------------------


def test_repaired_events_are_still_counted(monitor: Monitor) -> None:
    """A repaired event feeds the metrics like any other."""
    monitor.record(ev(latency_ms="fast", cost_usd=0.3))
    snap = monitor.get_metrics("agent-1")
    assert (snap.event_count, snap.cost_total, snap.avg_latency_ms) == (1, 0.3, 0.0)


def test_each_reason_is_logged_once(monitor: Monitor, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of the same bad input logs one warning; the rest are only counted."""
    with caplog.at_level(logging.WARNING, logger="redline"):
        for _ in range(50):
            monitor.record(ev(cost_usd=-1.0))
    assert len([r for r in caplog.records if "cost_usd" in r.getMessage()]) == 1
    assert monitor.stats()["repaired_by_reason"] == {"cost_usd_invalid": 50}


def test_bad_input_never_raises_into_the_agent(monitor: Monitor) -> None:
    """By default no input, however broken, makes ``record()`` raise."""
    for bad in (None, "x", ev(agent=""), ev(timestamp="?", cost_usd="?", tags=3, data=1)):
        monitor.record(bad)
    assert monitor.stats()["internal_errors"] == 0


def test_row_timestamp_older_than_the_horizon_is_set_to_now(monitor: Monitor) -> None:
    """A timestamp older than ``events.max_age_seconds`` (30 days) becomes now, the original
    kept: an agent or ingest token cannot send 1970 and open a partition per day."""
    monitor.record(ev(timestamp=0.0))
    monitor.record(ev(timestamp=NOW - 29 * 86_400))
    stored = [e.event for e in monitor.events(order="asc")]
    assert stored[0].timestamp == NOW
    assert stored[0].data["_repaired"]["timestamp"] == 0.0
    assert stored[1].timestamp == NOW - 29 * 86_400
    assert monitor.stats()["repaired_by_reason"] == {"timestamp_too_old": 1}


def test_the_past_horizon_can_be_lifted(clock: ManualClock) -> None:
    """``events.max_age_seconds: null`` accepts any past time (a replay of an old archive)."""
    from redline import parse_config

    m = Monitor(parse_config({"events": {"max_age_seconds": None}}), clock=clock)
    m.record(ev(timestamp=1000.0))
    assert [e.event.timestamp for e in m.events()] == [1000.0]
    m.close()


# --- strict mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not an event", "not_an_event"),
        (ev(agent=""), "agent_empty"),
        (ev(agent=42), "agent_type"),
        (ev(event_type=7), "event_type_type"),
        (ev(event_type=""), "event_type_empty"),
        (ev(timestamp=math.nan), "timestamp_invalid"),
        (ev(timestamp=NOW + 3600), "timestamp_future"),
        (ev(timestamp=1.0), "timestamp_too_old"),
        (ev(cost_usd=-1.0), "cost_usd_invalid"),
        (ev(latency_ms=math.inf), "latency_ms_invalid"),
        (ev(tokens_in=-3), "tokens_in_invalid"),
        (ev(user=5), "user_type"),
        (ev(tags="solo"), "tags_type"),
        (ev(data="text"), "data_type"),
        (ev(data={"o": _Opaque()}), "data_unserialisable"),
        ({"timestamp": NOW, "agent": "a", "colour": "red"}, "unknown_fields"),
    ],
)
def test_strict_mode_raises_for_every_row(clock: ManualClock, bad: Any, reason: str) -> None:
    """With ``strict=True`` each problem raises ``InvalidEventError`` naming it; nothing is stored."""
    m = Monitor(clock=clock, strict=True)
    with pytest.raises(InvalidEventError) as info:
        m.record(bad)
    assert info.value.problems[0][0] == reason
    assert list(m.events()) == []
    m.close()


def test_strict_mode_rejects_oversize_data(clock: ManualClock) -> None:
    """Strict mode raises for ``data`` above ``max_data_bytes`` instead of truncating it."""
    m = Monitor(parse_config({"events": {"strict": True, "max_data_bytes": 256}}), clock=clock)
    with pytest.raises(InvalidEventError, match="data_oversize"):
        m.record(ev(data={"blob": "x" * 1000}))
    m.close()


def test_invalid_event_error_is_a_value_error() -> None:
    """``InvalidEventError`` is a ``ValueError`` so generic handlers catch it."""
    assert issubclass(InvalidEventError, ValueError)


def test_strict_mode_accepts_good_events(clock: ManualClock) -> None:
    """Strict mode changes nothing for well-formed events."""
    m = Monitor(clock=clock, strict=True)
    m.record(ev(cost_usd=0.1))
    assert m.get_metrics("agent-1").event_count == 1
    m.close()


def test_lone_surrogates_and_non_string_keys_are_repaired_and_stored(tmp_path: Path) -> None:
    """Text UTF-8 cannot hold and non-string keys are repaired, so the store never chokes."""
    from redline import Monitor, parse_config

    m = Monitor(parse_config({"storage": {"path": str(tmp_path / "e.db")}}))
    m.record(AgentEvent(agent="a\ud800", data={"q": "x\udfff", 1: "one"}, session_id="s\ud801"))
    m.record(AgentEvent(agent="b", data={"ok": True}))
    assert m.flush(5.0)
    stored = {e["agent"]: e for e in m.get_events()}
    assert set(stored) == {"a\ufffd", "b"}
    assert stored["a\ufffd"]["data"]["q"] == "x\ufffd"
    assert stored["a\ufffd"]["data"]["1"] == "one"
    assert m.stats()["write_errors"] == 0
    m.close()


def test_absurd_costs_and_latencies_are_repaired_not_summed() -> None:
    """A latency of 1e300 ms would overflow the sketch: it is dropped and counted instead."""
    from redline import Monitor

    with Monitor() as m:
        m.record(AgentEvent(agent="a", latency_ms=1.7e308, cost_usd=1e300))
        snap = m.get_metrics("a")
        assert (snap.event_count, snap.p99_latency_ms, snap.cost_total) == (1, 0.0, 0.0)
        assert m.stats()["repaired_by_reason"] == {"cost_usd_invalid": 1, "latency_ms_invalid": 1}


def test_a_cleared_field_is_not_called_a_dropped_event(monitor: Monitor) -> None:
    """The repair note says the field was cleared and the event kept: "dropped" is reserved
    for events (``stats()["dropped"]``)."""
    status, reasons = monitor.record_checked(ev(cost_usd="abc"))
    assert status == "repaired"
    assert reasons == ["cost_usd_invalid: cost_usd was 'abc'; field cleared, event kept"]
