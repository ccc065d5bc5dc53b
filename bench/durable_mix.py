"""record() on the shipped durable config: examples/monitor.yaml as it is, SQLite beside it.

The config users start from stores to ``.redline/events.db`` beside the file and lists
``denial`` and ``security`` among ``storage.sync_types``. This scenario records a mix of 88 %
actions, 10 % denials and 2 % errors and reports record()'s latency per event type, so the
denials' p99 is compared with the actions' in the same run (target: within 3x), and times a
record() that trips the kill policy (target: under 1 ms), over several fresh agents.

    .venv/bin/python bench/durable_mix.py [--events N] [--durability group|sync]

Also run as a step of ``bench/record.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from redline import AgentEvent, Monitor, load_config  # noqa: E402

EXAMPLE = ROOT / "examples" / "monitor.yaml"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(events: int = 50_000, durability: str | None = None, kill_trips: int = 50) -> dict[str, Any]:
    """Latencies (µs) by event type, and of kill-tripping record() calls."""
    with tempfile.TemporaryDirectory(prefix="redline-durable-") as tmp:
        config_path = Path(tmp) / "monitor.yaml"
        if durability is None:
            shutil.copy(EXAMPLE, config_path)
        else:
            raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
            raw["storage"] = {"path": str(Path(tmp) / ".redline" / "events.db"),
                              "durability": durability}
            config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        monitor = Monitor(load_config(config_path))
        by_type: dict[str, list[float]] = {"action": [], "denial": [], "error": []}
        clock = time.perf_counter
        now = time.time()
        for i in range(events):
            r = i % 50
            etype = "denial" if r < 5 else "error" if r == 5 else "action"
            ev = AgentEvent(timestamp=now, agent=f"agent-{i % 10}", event_type=etype,
                            cost_usd=0.0001, latency_ms=120.0, data={"i": i})
            start = clock()
            monitor.record(ev)
            by_type[etype].append((clock() - start) * 1e6)
        trips: list[float] = []
        for k in range(kill_trips):
            # The shipped policy kills an agent whose cost per minute passes $5.
            ev = AgentEvent(timestamp=time.time(), agent=f"spender-{k}", event_type="action",
                            cost_usd=100.0, latency_ms=100.0)
            start = clock()
            monitor.record(ev)
            trips.append((clock() - start) * 1e6)
            assert monitor.is_killed(f"spender-{k}"), "the policy did not trip"
        assert monitor.flush(60)
        stored = monitor.stats()
        monitor.close()
    out: dict[str, Any] = {"events": events, "durability": durability or "as shipped"}
    for etype, values in by_type.items():
        out[etype] = {"n": len(values), "p50_us": _percentile(values, 0.5),
                      "p99_us": _percentile(values, 0.99)}
    out["kill_trip"] = {"n": len(trips), "p50_us": _percentile(trips, 0.5),
                        "p99_us": _percentile(trips, 0.99), "max_us": max(trips)}
    out["all_p99_us"] = _percentile([v for vs in by_type.values() for v in vs], 0.99)
    out["written"] = stored.get("written")
    return out


def report(r: dict[str, Any]) -> tuple[str, list[str]]:
    """A table and the failed targets."""
    lines = [f"record() on examples/monitor.yaml ({r['durability']}, SQLite beside it), "
             f"{r['events']:,} events: 88 % action, 10 % denial, 2 % error",
             "| event | n | p50 µs | p99 µs |", "|---|---:|---:|---:|"]
    for etype in ("action", "denial", "error"):
        x = r[etype]
        lines.append(f"| {etype} | {x['n']:,} | {x['p50_us']:.1f} | {x['p99_us']:.1f} |")
    k = r["kill_trip"]
    lines.append(f"| kill trip | {k['n']} | {k['p50_us']:.1f} | {k['p99_us']:.1f} "
                 f"(max {k['max_us']:.0f}) |")
    lines.append(f"| whole mix | {r['events']:,} | | {r['all_p99_us']:.1f} |")
    ratio = r["denial"]["p99_us"] / max(r["action"]["p99_us"], 1e-9)
    lines.append(f"\ndenial p99 / action p99 = {ratio:.2f}x (target ≤ 3x); "
                 f"kill trip p99 {k['p99_us'] / 1000:.3f} ms (target < 1 ms)")
    failures = []
    if ratio > 3.0:
        failures.append(f"durable mix: denial p99 {ratio:.2f}x action p99 (> 3x)")
    if k["p99_us"] >= 1000.0:
        failures.append(f"durable mix: kill trip p99 {k['p99_us']:.0f} µs (≥ 1 ms)")
    return "\n".join(lines), failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--durability", choices=("group", "sync"), default=None,
                        help="override storage.durability (default: the file as shipped)")
    args = parser.parse_args(argv)
    text, failures = report(run(args.events, args.durability))
    print(text)
    for f in failures:
        print(f"  FAIL  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
