"""Specification of baselines: Welford and EWMA statistics, sampling per interval, persistence."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redline import AgentEvent, Monitor, parse_config
from redline.config import BaselineConfig
from redline.detect.zscore import BaselineBook
from redline.metrics.baselines import EWMABaseline, WelfordBaseline
from redline.testing import ManualClock

NOW = 1_700_000_040.0  # a whole minute

samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=200,
)


# --- Welford --------------------------------------------------------------------------------


@settings(database=None)  # no example database: runs are independent
@given(samples)
def test_welford_matches_statistics(values: list[float]) -> None:
    """Welford's running mean and sample deviation equal ``statistics.mean`` / ``stdev``."""
    b = WelfordBaseline()
    for v in values:
        b.update(v)
    assert b.count == len(values)
    assert math.isclose(b.mean, statistics.mean(values), rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(b.stddev, statistics.stdev(values), rel_tol=1e-6, abs_tol=1e-5)


@settings(database=None)
@given(samples, st.floats(min_value=-1e3, max_value=1e3), st.integers(min_value=1, max_value=50))
def test_update_many_equals_repeated_updates(
    values: list[float], value: float, times: int
) -> None:
    """Adding ``times`` identical samples at once equals adding them one by one."""
    one, many = WelfordBaseline(), WelfordBaseline()
    for v in values:
        one.update(v)
        many.update(v)
    for _ in range(times):
        one.update(value)
    many.update_many(value, times)
    assert many.count == one.count
    assert math.isclose(many.mean, one.mean, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(many.stddev, one.stddev, rel_tol=1e-6, abs_tol=1e-5)


def test_z_score_is_undefined_below_two_samples() -> None:
    """With fewer than two samples there is no deviation, so no z-score."""
    b = WelfordBaseline()
    assert b.z_score(1.0) is None
    b.update(1.0)
    assert b.z_score(5.0) is None


def test_z_score_of_a_known_series() -> None:
    """z = (value − mean) ÷ sample deviation."""
    b = WelfordBaseline()
    for v in (2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0):
        b.update(v)
    assert b.mean == 5.0
    assert b.z_score(5.0 + b.stddev * 2) == pytest.approx(2.0)


def test_flat_baseline_makes_any_change_infinitely_anomalous() -> None:
    """A metric that was always exactly the same scores ±inf for any other value, 0 for itself."""
    b = WelfordBaseline()
    for _ in range(10):
        b.update(0.0)
    assert b.z_score(0.0) == 0.0
    assert b.z_score(5.0) == math.inf
    assert b.z_score(-1.0) == -math.inf


def test_welford_round_trips_through_a_dict() -> None:
    """``to_dict`` / ``from_dict`` restore a baseline exactly."""
    b = WelfordBaseline()
    for v in (1.0, 2.0, 10.0):
        b.update(v)
    c = WelfordBaseline.from_dict(json.loads(json.dumps(b.to_dict())))
    assert (c.count, c.mean, c.stddev) == (b.count, b.mean, b.stddev)


# --- EWMA -----------------------------------------------------------------------------------


def test_ewma_follows_a_level_shift() -> None:
    """An EWMA baseline forgets: after a lasting shift its mean moves to the new level."""
    b = EWMABaseline(alpha=0.2)
    for _ in range(50):
        b.update(10.0)
    for _ in range(50):
        b.update(20.0)
    assert b.mean == pytest.approx(20.0, abs=0.01)


def test_ewma_scores_deviations() -> None:
    """An EWMA baseline gives a large z-score to a value far from its recent level."""
    b = EWMABaseline(alpha=0.1)
    for i in range(100):
        b.update(10.0 + (i % 3))
    z = b.z_score(100.0)
    assert z is not None
    assert z > 10


def test_ewma_rejects_a_bad_alpha() -> None:
    """``alpha`` outside (0, 1] is a programming error and raises."""
    with pytest.raises(ValueError, match="alpha"):
        EWMABaseline(alpha=0.0)


def test_ewma_round_trips_through_a_dict() -> None:
    """An EWMA baseline restores from its dict, alpha included."""
    b = EWMABaseline(alpha=0.3)
    for v in (1.0, 5.0, 3.0):
        b.update(v)
    c = EWMABaseline.from_dict(b.to_dict())
    assert (c.alpha, c.count, c.mean, c.var) == (b.alpha, b.count, b.mean, b.var)


def test_book_uses_the_configured_method() -> None:
    """``baselines.method: ewma`` makes every new baseline an EWMA one."""
    assert isinstance(BaselineBook(BaselineConfig(method="ewma")).get("a", "m"), EWMABaseline)
    assert isinstance(BaselineBook(BaselineConfig()).get("a", "m"), WelfordBaseline)


# --- in the monitor: one sample per closed interval -----------------------------------------


def _monitor(clock: ManualClock, **baselines: object) -> Monitor:
    cfg = {"interval_seconds": 60, "metrics": ["event_count"], **baselines}
    return Monitor(parse_config({"baselines": cfg}), clock=clock)


def test_baselines_sample_once_per_interval_not_per_event() -> None:
    """Ten events in one interval are one sample of ``event_count`` (10), not ten samples."""
    clock = ManualClock(NOW)
    m = _monitor(clock)
    for minute in range(3):
        for i in range(10):
            m.record(AgentEvent(timestamp=NOW + minute * 60 + i, agent="a"))
    clock.set(NOW + 180)
    m.get_metrics("a")
    assert m.baseline("a", "event_count") == {"mean": 10.0, "stddev": 0.0, "count": 3.0}
    m.close()


def test_quiet_intervals_are_learned_as_zero() -> None:
    """Intervals with no events are samples of zero, so a bursty agent's baseline is honest."""
    clock = ManualClock(NOW)
    m = _monitor(clock)
    m.record(AgentEvent(timestamp=NOW, agent="a"))
    m.record(AgentEvent(timestamp=NOW + 240, agent="a"))
    b = m.baseline("a", "event_count")
    m.close()
    assert b is not None
    assert b["count"] == 4.0  # the busy minute and three empty ones
    assert b["mean"] == pytest.approx(0.25)


def test_no_baseline_before_the_first_interval_closes() -> None:
    """A baseline exists only once an interval of the agent has closed."""
    clock = ManualClock(NOW)
    m = _monitor(clock)
    m.record(AgentEvent(timestamp=NOW, agent="a"))
    assert m.baseline("a", "event_count") is None
    m.close()


def test_disabled_baselines_learn_nothing() -> None:
    """``baselines.enabled: false`` keeps no baseline."""
    clock = ManualClock(NOW)
    m = _monitor(clock, enabled=False)
    m.record(AgentEvent(timestamp=NOW, agent="a"))
    m.record(AgentEvent(timestamp=NOW + 120, agent="a"))
    assert m.baseline("a", "event_count") is None
    m.close()


def test_baselines_persist_across_restarts(tmp_path: Path) -> None:
    """With ``storage_path``, a new monitor starts from what the last one learned."""
    path = tmp_path / "baselines.json"
    clock = ManualClock(NOW)
    m = _monitor(clock, storage_path=str(path))
    for minute in range(5):
        m.record(AgentEvent(timestamp=NOW + minute * 60, agent="a"))
    m.close()
    learned = m.baseline("a", "event_count")
    assert path.exists()
    again = _monitor(ManualClock(NOW + 600), storage_path=str(path))
    assert again.baseline("a", "event_count") == learned
    again.close()


def test_a_corrupt_baseline_file_is_survived(tmp_path: Path) -> None:
    """An unreadable baseline file is logged and ignored; the monitor starts fresh."""
    path = tmp_path / "baselines.json"
    path.write_text("{not json", encoding="utf-8")
    m = _monitor(ManualClock(NOW), storage_path=str(path))
    assert m.baseline("a", "event_count") is None
    m.close()
