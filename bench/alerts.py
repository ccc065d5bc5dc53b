"""record() while alerts go to a receiver that hangs for 30 s, against no receiver at all.

The alerting issue's promise: a channel that hangs never delays ``record()`` and never stops the
other channels. Two monitors run the same event stream in one process, in alternating blocks so
both see the same machine load:

* **baseline**: no remote channel;
* **hanging**: a webhook channel whose local receiver holds every request open for 30 s (timeout
  1 s per attempt, 5 attempts), plus a JSONL channel.

Every 200th event is a suspicious action (``transfer_payment``), so alerts are raised all the time.
The table shows ``record()`` p50/p99 for both and their ratio, how many alerts the JSONL channel
delivered while the webhook hung, and what reached the dead letter file once retries ran out.

Run: ``.venv/bin/python bench/alerts.py`` (``--quick`` for fewer events).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from redline import AgentEvent, Monitor, parse_config
from redline.alerts.testing import HttpReceiver
from redline.testing import ManualClock

BLOCK = 2_000


def _config(tmp: Path, receiver: HttpReceiver | None) -> dict[str, Any]:
    channels: list[dict[str, Any]] = [{"type": "jsonl", "path": str(tmp / "alerts.jsonl")}]
    if receiver is not None:
        channels.append({"type": "webhook", "name": "hanging", "url": receiver.url("/hook"),
                         "timeout_seconds": 1.0})
    return {
        "detectors": {"suspicious": {"cooldown_seconds": 0}},
        "alerts": {"channels": channels, "dead_letter_path": str(tmp / "dead.jsonl"),
                   "max_attempts": 5, "backoff_base_seconds": 0.2},
    }


def _events(n: int, start: float) -> list[AgentEvent]:
    out = []
    for i in range(n):
        tool = "transfer_payment" if i % 200 == 0 else "search"
        out.append(AgentEvent(timestamp=start + i * 0.01, agent=f"agent-{i % 10}",
                              event_type="tool_call", tool=tool, status="ok", latency_ms=120.0,
                              cost_usd=0.0001, data={"args": {"q": i % 50}}))
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events instead of 100,000")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    start = 1_700_000_000.0
    events = _events(n, start)
    with tempfile.TemporaryDirectory() as base, HttpReceiver(hang_limit=30.0) as receiver:
        receiver.hang(times=10_000)
        tmp_a, tmp_b = Path(base, "baseline"), Path(base, "hanging")
        tmp_a.mkdir()
        tmp_b.mkdir()
        clock_a, clock_b = ManualClock(start), ManualClock(start)
        baseline = Monitor(parse_config(_config(tmp_a, None)), clock=clock_a)
        hanging = Monitor(parse_config(_config(tmp_b, receiver)), clock=clock_b)
        timings: dict[str, list[float]] = {"baseline": [], "hanging": []}
        pc = time.perf_counter_ns
        for offset in range(0, n, BLOCK):
            for name, monitor, clock in (("baseline", baseline, clock_a),
                                         ("hanging", hanging, clock_b)):
                rec = monitor.record
                out = timings[name]
                for event in events[offset:offset + BLOCK]:
                    clock.set(event.timestamp)
                    t0 = pc()
                    rec(event)
                    out.append((pc() - t0) / 1000.0)
        hanging_started = receiver.hanging.is_set()
        delivered = sum(1 for _ in (tmp_b / "alerts.jsonl").open()) if (
            tmp_b / "alerts.jsonl").exists() else 0
        raised = hanging.stats()["anomalies"]
        close_started = time.perf_counter()
        baseline.close()
        receiver.release.set()
        hanging.close(timeout=60)
        close_seconds = time.perf_counter() - close_started
        dead = tmp_b / "dead.jsonl"
        dead_letters = sum(1 for _ in dead.open()) if dead.exists() else 0
        stats = hanging.alerts.stats()

    rows = []
    for name in ("baseline", "hanging"):
        values = timings[name]
        rows.append((name, statistics.median(values), _pct(values, 0.99), len(values)))
    ratio50 = rows[1][1] / rows[0][1]
    ratio99 = rows[1][2] / rows[0][2]
    print(f"{'monitor':<10} {'p50 µs':>8} {'p99 µs':>8} {'events':>8}")
    for name, p50, p99, count in rows:
        print(f"{name:<10} {p50:>8.2f} {p99:>8.2f} {count:>8}")
    print(f"ratio hanging/baseline: p50 {ratio50:.2f}x, p99 {ratio99:.2f}x")
    print(f"receiver hung: {hanging_started}; alerts raised {raised}, delivered to the JSONL "
          f"channel while the webhook hung: {delivered}")
    print(f"webhook: sent {stats['channels']['hanging']['sent']}, retried "
          f"{stats['channels']['hanging']['retried']}, dropped "
          f"{stats['channels']['hanging']['dropped']}, dead-lettered {dead_letters}; "
          f"close() waited {close_seconds:.1f} s for queued deliveries")
    results = Path("bench/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / "alerts.json").write_text(json.dumps({
        "rows": rows, "ratio_p50": ratio50, "ratio_p99": ratio99, "raised": raised,
        "delivered_jsonl": delivered, "dead_letters": dead_letters, "webhook": stats,
    }, default=str, indent=2))


if __name__ == "__main__":
    main()
