"""Specification of chart history: per-minute rollups in every store, ``/v1/metrics/history``.

The same two hours of events go into each backend; each answers the same points (SQLite and
PostgreSQL from the rollups they keep as they write, memory and JSONL from their events). A file
written before rollups existed is backfilled, a bounded step per call. The endpoint parses and
bounds its parameters like every other: roles, defaults, empty ranges, a step wider than the
range, and bad values as 400s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.store._history import HistoryPoint, LatencyHistogram
from redline.store.base import MetricHistory
from redline.store.jsonl import JsonlStore
from redline.store.memory import MemoryStore
from redline.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 3600)  # on the hour
TWO_HOURS = 7200


def workload() -> list[AgentEvent]:
    """Two hours, two agents: a call a minute each, an error every 10th minute for one, a denial
    every 30th, latencies 100..159 ms, cost 0.01 a call."""
    out = []
    for minute in range(120):
        for agent in ("sales", "support"):
            ts = T0 + minute * 60 + (7 if agent == "sales" else 31)
            kind = "llm_call"
            if agent == "support" and minute % 10 == 0:
                kind = "error"
            if agent == "sales" and minute % 30 == 0:
                kind = "denial"
            out.append(
                AgentEvent(
                    timestamp=ts,
                    agent=agent,
                    event_type=kind,
                    latency_ms=100.0 + minute % 60,
                    cost_usd=0.01,
                    tokens_in=100,
                    tokens_out=20,
                )
            )
    return out


def check(points: list[HistoryPoint], *, agent: str | None) -> None:
    assert len(points) == 8  # 15-minute steps over two hours
    assert [p.t for p in points] == [T0 + i * 900 for i in range(8)]
    per_agent = 1 if agent else 2
    assert all(p.events == 15 * per_agent for p in points)
    assert sum(p.errors for p in points) == (12 if agent in (None, "support") else 0)
    assert sum(p.denials for p in points) == (4 if agent in (None, "sales") else 0)
    assert sum(p.cost_usd for p in points) == pytest.approx(0.01 * 120 * per_agent)
    assert all(p.tokens == 120 * 15 * per_agent for p in points)
    first = points[0]  # latencies 100..114 ms in the first quarter hour
    assert first.p50_latency_ms == pytest.approx(107, rel=0.13)
    assert first.p95_latency_ms == pytest.approx(114, rel=0.13)


@pytest.fixture(params=["memory", "jsonl", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "jsonl":
        yield JsonlStore(tmp_path / "events.jsonl")
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "events.db")
        yield s
        s.close()
    else:
        schema = request.getfixturevalue("pg_schema")
        from conftest import PG_DSN
        from redline.store.postgres import PostgresStore

        s = PostgresStore(PG_DSN, schema=schema)
        yield s
        s.close()


def test_every_backend_answers_the_same_history(store: Any) -> None:
    assert isinstance(store, MetricHistory)
    events = workload()
    for i in range(0, len(events), 100):  # several batches: cells merge across them
        store.append(events[i : i + 100])
    check(store.metric_history(None, T0, T0 + TWO_HOURS, 900), agent=None)
    check(store.metric_history("sales", T0, T0 + TWO_HOURS, 900), agent="sales")
    check(store.metric_history("support", T0, T0 + TWO_HOURS, 900), agent="support")
    empty = store.metric_history("nobody", T0, T0 + TWO_HOURS, 900)
    assert [p.events for p in empty] == [0] * 8
    (one,) = store.metric_history(None, T0, T0 + TWO_HOURS, 86400)
    assert one.events == 240


def test_an_old_sqlite_file_is_backfilled_in_bounded_steps(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    store.append(workload())
    store.close()
    # What a file written before rollups looks like: no table, no backfill marks.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE rollup_minute")
        conn.execute("DELETE FROM meta WHERE key LIKE 'rollup_%'")
    store = SQLiteStore(path)
    try:
        from redline.store import _history_sqlite

        first = _history_sqlite.backfill(store._writer(), max_rows=100)
        assert not first  # 240 rows: one step is not enough
        check(store.metric_history(None, T0, T0 + TWO_HOURS, 900), agent=None)  # finishes it
        store.append([AgentEvent(timestamp=T0 + 60, agent="sales", latency_ms=5.0)])
        assert store.metric_history("sales", T0, T0 + 120, 60)[1].events == 2  # not twice
    finally:
        store.close()


def test_histogram_quantiles_are_within_a_bucket() -> None:
    h = LatencyHistogram()
    for ms in range(1, 1001):
        h.add(float(ms))
    assert h.quantile(0.5) == pytest.approx(500, rel=0.13)
    assert h.quantile(0.95) == pytest.approx(950, rel=0.13)
    assert LatencyHistogram().quantile(0.5) is None
    again = LatencyHistogram.from_text(h.to_text())
    assert again.counts == h.counts


# -- the endpoint ------------------------------------------------------------------------------

READ = "history-read-0123456789abcdef"
INGEST = "history-ingest-0123456789abcd"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Monitor]]:
    pytest.importorskip("starlette")
    from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app
    from redline.testing import ManualClock

    monitor = Monitor(
        parse_config({"storage": {"path": str(tmp_path / "events.db")}}),
        clock=ManualClock(T0 + TWO_HOURS),
    )
    monitor.store.append(workload())
    config = ServerConfig(
        port=0,
        tokens=[
            TokenConfig(name="grafana", role="read", token=READ),
            TokenConfig(name="agents", role="ingest", token=INGEST),
        ],
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    yield server.url, monitor
    server.stop()
    monitor.close()


def get(url: str, token: str = READ, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{url}/v1/metrics/history", params=params, headers={"Authorization": f"Bearer {token}"}
    )


def test_history_endpoint(served: tuple[str, Monitor]) -> None:
    url, _ = served
    r = get(url, since=str(T0), until=str(T0 + TWO_HOURS), step=900)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["agent"], body["step"]) == (None, 900)
    check([HistoryPoint(**p) for p in body["points"]], agent=None)
    r = get(url, agent="support", since=str(T0), until=str(T0 + TWO_HOURS), step=900)
    check([HistoryPoint(**p) for p in r.json()["points"]], agent="support")
    # Defaults: the last hour (the monitor's clock is at the end of the workload), round steps.
    body = get(url).json()
    assert body["until"] - body["since"] == 3600
    assert body["step"] == 60
    assert sum(p["events"] for p in body["points"]) == 120
    # A step wider than the range: one point; a range with nothing in it: zero points.
    (one,) = get(url, since=str(T0), until=str(T0 + 600), step=3600).json()["points"]
    assert one["events"] == 20
    empty = get(url, since=str(T0 - 86400), until=str(T0 - 3600), step=3600).json()["points"]
    assert [p["events"] for p in empty] == [0] * 23


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"since": "yesterdayish"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"step": "0"}, "step"),
        ({"step": "90"}, "whole number of minutes"),
        ({"step": "abc"}, "step"),
        ({"since": "2h", "until": "3h"}, "before until"),
        ({"since": "30d", "step": "60"}, "points"),
        ({"bogus": "1"}, "unknown query parameter"),
    ],
)
def test_history_refuses_bad_parameters(
    served: tuple[str, Monitor], query: dict[str, str], word: str
) -> None:
    r = get(served[0], **query)
    assert r.status_code == 400, r.text
    assert word in r.json()["message"]


def test_history_needs_the_read_role(served: tuple[str, Monitor]) -> None:
    assert get(served[0], token="not-a-token-at-all-123").status_code == 401
    assert get(served[0], token=INGEST).status_code == 403
