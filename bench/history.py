"""Benchmark chart history: ``metric_history`` from per-minute rollups vs the raw events.

One SQLite store is filled with ``--events`` events (default 1,000,000) spread evenly over 24
hours across 100 agents, through ``SQLiteStore.append`` (so the rollups are the ones a real
writer keeps). Then, in the same run, a day of history at 5-minute steps, for the fleet and for
one agent, two ways: from the rollups (what ``/v1/metrics/history`` serves) and, as the
baseline, from the raw events (the store's own indexed query, folded in Python). The append
throughput with and without the rollup step is measured on a 100,000-event slice, alternating.

    .venv/bin/python bench/history.py                 # 1 M events (a few minutes)
    .venv/bin/python bench/history.py --events 200000 # quicker
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from redline import AgentEvent
from redline.store import _history_sqlite
from redline.store._history import from_events
from redline.store.base import EventQuery
from redline.store.sqlite import SQLiteStore

DAY = 86_400
T0 = 1_700_000_000.0 - 1_700_000_000.0 % DAY
AGENTS = 100


def events(n: int) -> list[AgentEvent]:
    kinds = ("llm_call", "tool_call", "action", "action", "error", "denial")
    return [
        AgentEvent(
            timestamp=T0 + i * DAY / n,
            agent=f"agent-{i % AGENTS:03d}",
            event_type=kinds[i % len(kinds)],
            latency_ms=50.0 + (i * 37) % 900,
            cost_usd=0.002,
            tokens_in=300,
            tokens_out=40,
            data={"i": i},
        )
        for i in range(n)
    ]


def timed(fn: object, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def append_ratio(sample: list[AgentEvent]) -> tuple[float, float]:
    real = _history_sqlite.add
    rates: dict[bool, list[float]] = {True: [], False: []}
    try:
        for _ in range(3):
            for on in (False, True):
                _history_sqlite.add = real if on else (lambda conn, ev: None)  # type: ignore[assignment]
                with tempfile.TemporaryDirectory() as d:
                    store = SQLiteStore(Path(d) / "x.db")
                    started = time.perf_counter()
                    for i in range(0, len(sample), 1000):
                        store.append(sample[i : i + 1000])
                    rates[on].append(len(sample) / (time.perf_counter() - started))
                    store.close()
    finally:
        _history_sqlite.add = real
    return statistics.median(rates[False]), statistics.median(rates[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    data = events(args.events)
    without, with_rollup = append_ratio(data[:100_000])
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "history.db")
        started = time.perf_counter()
        for i in range(0, len(data), 1000):
            store.append(data[i : i + 1000])
        fill = time.perf_counter() - started
        since, until, step = T0, T0 + DAY, 300
        rows = []
        for label, agent in (("fleet", None), ("one agent", "agent-007")):
            fast = timed(lambda a=agent: store.metric_history(a, since, until, step))
            query = EventQuery(agent=agent, since=since, until=until, limit=None, order="asc")
            slow = timed(
                lambda a=agent, q=query: from_events(
                    (s.event for s in store.query(q)), a, since, until, step
                ),
                repeats=1 if agent is None else 3,
            )
            rows.append((label, fast, slow))
        store.close()
    print(f"filled {args.events:,} events in {fill:.1f} s ({args.events / fill:,.0f} events/s)")
    print(f"{'24 h at 5-minute steps':<24} {'rollups':>10} {'raw events':>12} {'speed-up':>9}")
    for label, fast, slow in rows:
        print(f"{label:<24} {fast * 1000:>8.1f} ms {slow * 1000:>10.0f} ms {slow / fast:>8.0f}x")
    print(
        f"append, 100,000 events: {without:,.0f}/s without the rollup step, "
        f"{with_rollup:,.0f}/s with it (ratio {with_rollup / without:.2f})"
    )


if __name__ == "__main__":
    main()
