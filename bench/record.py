"""Benchmark ``Monitor.record()`` against the published peer, ``theaios-agent-monitor`` 0.1.2.

What it measures, and why (DESIGN.md, "Performance"): ``record()`` sits on every step of every
agent, so its cost has to be a few microseconds and must not grow with traffic. The peer rescans
each agent's window on every event, so its cost grows with the event rate; the comparison is only
fair at the same simulated rate with a full window, so both libraries run on *simulated* time:

* Redline runs here with ``redline.testing.ManualClock`` (event ``i`` at ``t0 + i / rate``, the
  clock following), its default in-memory store and its background writer running.
* The peer runs in a subprocess in its own throw-away venv (``bench/.peer-venv``, created on first
  use), with ``time.time`` in each of its modules patched to the same simulated clock and its
  JSONL store in a temp dir (see ``bench/_peer_record.py``). It is ~10^2..10^5 times slower, so it
  is measured on fewer events; every number says its sample size.

Both get seed 000's config (``examples/monitor.yaml``: 300 s window, kill policy
``cost_per_minute > 5.0``) plus one z-score rule on ``cost_per_minute``, and the same event mix
(10 agents; action / tool_call / llm_call with cost, latency and ``data={"model": "gpt-4"}``, 2 %
denials, 2 % errors), with costs scaled to ~1 USD/min per agent so the kill policy never trips.

Scenarios: ``record()`` at 1, 100 and 10,000 events/s after the window is full (per-call
``perf_counter_ns``: p50, p99, max, mean); ``get_metrics()`` after 10 k and 1 M events; RSS growth
over 10 M events for 100 agents (skipped by ``--quick``); 8 threads x 50 k events with exact counts
checked. Prints a table with PASS/FAIL against the targets and writes ``bench/results/record.json``.
Exit code is 0 even when a target fails: this is a measurement.

    .venv/bin/python bench/record.py            # the full run (~10 minutes on 2 cores)
    .venv/bin/python bench/record.py --quick    # a short run, no RSS scenario
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from _peer_record import AGENT_WINDOW, Mix, percentiles
from redline import AgentEvent, Monitor, parse_config
from redline._compiled import compiled_modules
from redline.store.base import EventQuery
from redline.testing import ManualClock

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE_CONFIG = ROOT / "examples" / "monitor.yaml"
PEER_VENV = BENCH / ".peer-venv"
PEER_PACKAGE = "theaios-agent-monitor==0.1.2"
RESULTS = BENCH / "results" / "record.json"
T0 = 1_700_000_000.0


class Scenario(NamedTuple):
    """One sustained-rate ``record()`` scenario, run by both libraries."""

    label: str
    rate: float  # simulated events per second
    agents: int
    redline_warmup: int  # fills the 300 s window (and, where cheap, 30+ baseline intervals)
    redline_measure: int
    peer_measure: int
    peer_measure_quick: int
    targets: bool  # the p50/p99 targets apply (the 1-agent row is context only)


SCENARIOS = (
    Scenario("record() @ 1 ev/s", 1.0, 10, 2_400, 100_000, 2_000, 300, True),
    Scenario("record() @ 100 ev/s", 100.0, 10, 240_000, 100_000, 300, 50, True),
    Scenario("record() @ 10,000 ev/s", 10_000.0, 10, 10_000 * (AGENT_WINDOW + 1), 200_000, 100,
             10, True),
    Scenario("record() @ 1 ev/s, 1 agent", 1.0, 1, 2_400, 100_000, 2_000, 300, False),
)
INTERNAL_TYPES = frozenset({"anomaly", "alert", "kill", "revive"})

# Targets (the brief for this benchmark; DESIGN.md's are looser).
P50_TARGET_US = 3.0
P99_TARGET_US = 20.0
PEER_RATIO_TARGET = 40.0
FLAT_TARGET = 1.5
GET_METRICS_TARGET_US = 50.0
RSS_TARGET_MB = 20.0
RSS_EVENTS = 10_000_000
RSS_AGENTS = 100
RSS_STORE_MAX_EVENTS = 10_000


# ---------------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------------
def bench_config() -> dict[str, Any]:
    """Seed 000's full config plus one z-score rule on ``cost_per_minute`` (both libraries)."""
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    raw["anomaly_detection"] = {
        "rules": [{"name": "cost-spike", "metric": "cost_per_minute", "z_threshold": 3.0}]
    }
    return raw


def redline_monitor(raw: dict[str, Any], clock: ManualClock | None = None) -> Monitor:
    """A Monitor on ``raw`` (default in-memory store, background writer on)."""
    config = parse_config(raw, source="examples/monitor.yaml + cost-spike z-score rule")
    return Monitor(config, clock=clock)


def make_event(mix: Mix, i: int) -> AgentEvent:
    """Redline's ``AgentEvent`` for event ``i`` of ``mix`` (the same fields the peer gets)."""
    t, agent, etype, data, session, cost, latency = mix.spec(i)
    return AgentEvent(
        timestamp=t, agent=agent, event_type=etype, data=data, session_id=session,
        cost_usd=cost, latency_ms=latency,
    )


def vmrss_mb() -> float:
    """Resident set size of this process, in MB (``/proc/self/status``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timer_overhead_ns() -> int:
    """p50 of two back-to-back ``perf_counter_ns()`` calls: the floor of every sample."""
    pc = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        a = pc()
        b = pc()
        samples.append(b - a)
    samples.sort()
    return samples[len(samples) // 2]


# ---------------------------------------------------------------------------------------------
# Redline scenarios
# ---------------------------------------------------------------------------------------------
def redline_rate(raw: dict[str, Any], rate: float, warmup: int, measure: int,
                 agents: int = 10) -> dict[str, Any]:
    """``record()`` latency at a sustained simulated ``rate`` once the window is full."""
    mix = Mix(rate, agents=agents, t0=T0)
    clock = ManualClock(T0)
    monitor = redline_monitor(raw, clock)
    started = time.perf_counter()
    try:
        record = monitor.record
        for i in range(warmup):
            ev = make_event(mix, i)
            clock.set(ev.timestamp)
            record(ev)
        monitor.flush()
        events = [make_event(mix, i) for i in range(warmup, warmup + measure)]
        snap = monitor.get_metrics(mix.agent_names[0])
        gc.collect()
        samples: list[int] = []
        pc = time.perf_counter_ns
        set_time = clock.set
        for ev in events:
            set_time(ev.timestamp)
            a = pc()
            record(ev)
            b = pc()
            samples.append(b - a)
        monitor.flush()
        stats = monitor.stats()
    finally:
        monitor.close()
    by_type: dict[str, list[int]] = {}
    for ev, ns in zip(events, samples, strict=True):
        by_type.setdefault(ev.event_type, []).append(ns)
    result = percentiles(samples)
    result.update(
        rate=rate,
        agents=agents,
        warmup=warmup,
        events_in_window_per_agent=snap.event_count,
        cost_per_minute_agent0=snap.cost_per_minute,
        by_type={k: percentiles(v) for k, v in sorted(by_type.items())},
        anomalies=stats["anomalies"],
        kills=stats["kills"],
        alerts_sent=stats["alerts_sent"],
        late_events=stats["late_events"],
        internal_errors=stats["internal_errors"],
        dropped=stats["dropped"],
        seconds=time.perf_counter() - started,
    )
    return result


def _time_get_metrics(monitor: Monitor, agents: list[str], calls: int) -> dict[str, Any]:
    pc = time.perf_counter_ns
    per_agent: list[int] = []
    for k in range(calls):
        agent = agents[k % len(agents)]
        a = pc()
        monitor.get_metrics(agent)
        b = pc()
        per_agent.append(b - a)
    fleet: list[int] = []
    for _ in range(max(1, calls // 10)):
        a = pc()
        monitor.get_metrics()
        b = pc()
        fleet.append(b - a)
    return {"agent": percentiles(per_agent), "fleet": percentiles(fleet)}


def redline_get_metrics(raw: dict[str, Any], checkpoints: tuple[int, ...],
                        calls: int) -> list[dict[str, Any]]:
    """``get_metrics()`` latency after each number of recorded events (100 events/s, 10 agents)."""
    mix = Mix(100.0, t0=T0)
    clock = ManualClock(T0)
    monitor = redline_monitor(raw, clock)
    out = []
    try:
        done = 0
        for target in checkpoints:
            for i in range(done, target):
                ev = make_event(mix, i)
                clock.set(ev.timestamp)
                monitor.record(ev)
            done = target
            monitor.flush()
            gc.collect()
            timing = _time_get_metrics(monitor, mix.agent_names, calls)
            timing["events_recorded"] = target
            timing["events_in_window"] = monitor.get_metrics().event_count
            out.append(timing)
            log(f"get_metrics after {target:,} events: p50 {timing['agent']['p50_us']:.1f} us")
    finally:
        monitor.close()
    return out


def redline_rss(raw: dict[str, Any], total: int, agents: int, max_events: int) -> dict[str, Any]:
    """RSS growth over ``total`` events for ``agents`` agents, store capped at ``max_events``."""
    raw = copy.deepcopy(raw)
    raw["storage"] = {"max_events": max_events}
    mix = Mix(1_000.0, agents=agents, t0=T0)
    clock = ManualClock(T0)
    monitor = redline_monitor(raw, clock)
    gc.collect()
    rss_start = vmrss_mb()
    samples: list[tuple[int, float]] = [(0, rss_start)]
    step = max(1, total // 20)
    started = time.perf_counter()
    try:
        record = monitor.record
        set_time = clock.set
        for i in range(total):
            ev = make_event(mix, i)
            set_time(ev.timestamp)
            record(ev)
            if (i + 1) % step == 0:
                samples.append((i + 1, vmrss_mb()))
                if (i + 1) % (step * 5) == 0:
                    log(f"rss: {i + 1:,} events, {samples[-1][1]:.1f} MB")
        monitor.flush()
        gc.collect()
        rss_end = vmrss_mb()
        stats = monitor.stats()
    finally:
        monitor.close()
    half = next((mb for n, mb in samples if n >= total // 2), rss_start)
    return {
        "events": total,
        "agents": agents,
        "store_max_events": max_events,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "growth_mb": rss_end - rss_start,
        "growth_second_half_mb": rss_end - half,
        "samples": samples,
        "anomalies": stats["anomalies"],
        "kills": stats["kills"],
        "store_evicted": stats["store_evicted"],
        "seconds": time.perf_counter() - started,
    }


def redline_threads(raw: dict[str, Any], threads: int, per_thread: int) -> dict[str, Any]:
    """Throughput of ``threads`` threads recording at once (wall clock), every count checked."""
    # Wall-clock time here: threads sharing one manual clock would race on it. Costs are tiny
    # (0.00001 x the mix) so ~40 k events per agent within seconds do not trip the kill policy.
    mix = Mix(1.0, t0=T0, cost_scale=1e-5)

    def build(offset: int, count: int) -> list[AgentEvent]:
        now = time.time()
        out = []
        for i in range(offset, offset + count):
            _t, agent, etype, data, session, cost, latency = mix.spec(i)
            out.append(AgentEvent(timestamp=now, agent=agent, event_type=etype, data=data,
                                  session_id=session, cost_usd=cost, latency_ms=latency))
        return out

    def run(batches: list[list[AgentEvent]]) -> tuple[float, dict[str, Any], list[str]]:
        monitor = redline_monitor(raw)
        expected = Counter(ev.event_type for batch in batches for ev in batch)
        total = sum(expected.values())
        barrier = threading.Barrier(len(batches) + 1)
        errors: list[str] = []

        def worker(batch: list[AgentEvent]) -> None:
            record = monitor.record
            barrier.wait()
            try:
                for ev in batch:
                    record(ev)
            except Exception as exc:
                errors.append(repr(exc))

        workers = [threading.Thread(target=worker, args=(b,)) for b in batches]
        for w in workers:
            w.start()
        barrier.wait()
        t = time.perf_counter()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t
        try:
            monitor.flush()
            stats = monitor.stats()
            snap = monitor.get_metrics()
            stored = Counter(
                s.event.event_type for s in monitor.store.query(EventQuery(order="asc"))
            )
            for kind in INTERNAL_TYPES:
                stored.pop(kind, None)
            checks = {
                "recorded": (stats["recorded"], total),
                "stored (non-governance)": (sum(stored.values()), total),
                "stored by type": (dict(sorted(stored.items())), dict(sorted(expected.items()))),
                "fleet window event_count": (snap.event_count, total),
                "fleet window counts_by_type": (
                    dict(sorted(snap.counts_by_type.items())), dict(sorted(expected.items()))
                ),
                "dropped": (stats["dropped"], 0),
                "internal_errors": (stats["internal_errors"], 0),
                "late_events": (stats["late_events"], 0),
                "thread exceptions": (len(errors), 0),
            }
            for name, (got, want) in checks.items():
                if got != want:
                    errors.append(f"{name}: got {got}, expected {want}")
        finally:
            monitor.close()
        return wall, stats, errors

    batches = [build(k * per_thread, per_thread) for k in range(threads)]
    total = threads * per_thread
    wall_n, stats_n, errors_n = run(batches)
    single = build(0, total)
    wall_1, _, errors_1 = run([single])
    return {
        "threads": threads,
        "per_thread": per_thread,
        "events": total,
        "wall_s": wall_n,
        "events_per_s": total / wall_n,
        "single_thread_wall_s": wall_1,
        "single_thread_events_per_s": total / wall_1,
        "exact": not errors_n and not errors_1,
        "errors": errors_n + [f"(1 thread) {e}" for e in errors_1],
        "anomalies": stats_n["anomalies"],
    }


# ---------------------------------------------------------------------------------------------
# the peer
# ---------------------------------------------------------------------------------------------
def peer_python() -> Path | None:
    """The peer venv's interpreter, creating the venv on first use; ``None`` if that failed."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        probe = subprocess.run(
            [str(python), "-c", "import theaios.agent_monitor as m; print(m.__version__)"],
            capture_output=True, text=True, check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == PEER_PACKAGE.split("==")[1]:
            return python
    log(f"creating {PEER_VENV.relative_to(ROOT)} with {PEER_PACKAGE}")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", "--clear", str(PEER_VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         PEER_PACKAGE],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log(f"could not set up the peer ({' '.join(cmd[:3])} ...): {done.stderr.strip()[-500:]}")
            return None
    return python


def run_peer(python: Path, raw: dict[str, Any], quick: bool,
             chosen: tuple[Scenario, ...]) -> dict[str, Any] | None:
    """Run peer scenarios in its venv; ``None`` (and a message) if it cannot run."""
    scenarios = []
    for sc in chosen:
        window_events = int(sc.rate * AGENT_WINDOW)
        measure = sc.peer_measure_quick if quick else sc.peer_measure
        if sc.rate <= 1.0:
            # Cheap enough to fill the window through record() itself.
            scenarios.append({"label": sc.label, "rate": sc.rate, "agents": sc.agents,
                              "warmup": window_events + 100, "tail": 0, "prefill": False,
                              "measure": measure})
        else:
            scenarios.append({"label": sc.label, "rate": sc.rate, "agents": sc.agents,
                              "warmup": window_events, "tail": 100 if sc.rate <= 100 else 10,
                              "prefill": True, "measure": measure})
    params = {"config": raw, "t0": T0, "scenarios": scenarios}
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        path = Path(tmp) / "params.json"
        path.write_text(json.dumps(params), encoding="utf-8")
        done = subprocess.run(
            [str(python), str(BENCH / "_peer_record.py"), str(path)],
            stdout=subprocess.PIPE, text=True, check=False, timeout=1_800,
        )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT: "):
            result: dict[str, Any] = json.loads(line[len("RESULT: "):])
            return result
    log(f"the peer run failed (exit {done.returncode}); its output: {done.stdout[-500:]}")
    return None


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(results: dict[str, Any]) -> tuple[str, list[str]]:
    """The tables as text, and the list of failed targets."""
    failures: list[str] = []
    rates: list[dict[str, Any]] = results["redline"]["rates"]
    peer = results.get("peer")
    peer_by_label = {s["label"]: s for s in peer["scenarios"]} if peer else {}
    first, last = SCENARIOS[0].label, SCENARIOS[2].label
    p50_first = next(r["p50_us"] for r in rates if r["label"] == first)

    header = ["scenario", "Redline p50 / p99 / max µs (n)", "Redline ev/s",
              "peer p50 / p99 µs (n)", "speed-up mean / p50", "p50 ≤ 3 µs", "p99 ≤ 20 µs",
              "≥ 40x peer @1/s · flat ≤ 1.5x"]
    rows = []
    for r in rates:
        label = r["label"]
        p = peer_by_label.get(label)
        ok50 = r["p50_us"] <= P50_TARGET_US
        ok99 = r["p99_us"] <= P99_TARGET_US
        if r["targets"] and not ok50:
            failures.append(f"{label}: p50 {r['p50_us']:.2f} µs > {P50_TARGET_US} µs")
        if r["targets"] and not ok99:
            failures.append(f"{label}: p99 {r['p99_us']:.2f} µs > {P99_TARGET_US} µs")
        if p:
            ratio_mean = p["mean_us"] / r["mean_us"]
            ratio_p50 = p["p50_us"] / r["p50_us"]
            peer_cell = f"{p['p50_us']:,.1f} / {p['p99_us']:,.1f} ({p['n']:,})"
            ratio_cell = f"{ratio_mean:,.0f}x / {ratio_p50:,.0f}x"
        else:
            ratio_mean = ratio_p50 = float("nan")
            peer_cell = ratio_cell = "n/a"
        other = "—"
        if label == first:
            if p:
                ok = ratio_mean >= PEER_RATIO_TARGET
                other = f"{verdict(ok)} ({ratio_mean:,.0f}x mean)"
                if not ok:
                    failures.append(f"speed-up at 1 ev/s {ratio_mean:.1f}x < {PEER_RATIO_TARGET}x")
            else:
                other = "FAIL (peer did not run)"
                failures.append("speed-up at 1 ev/s: the peer did not run")
        elif label == last:
            flat = r["p50_us"] / p50_first
            ok = flat <= FLAT_TARGET
            other = f"{verdict(ok)} ({flat:.2f}x p50 @1/s)"
            if not ok:
                failures.append(f"p50 at 10,000 ev/s is {flat:.2f}x p50 at 1 ev/s "
                                f"(> {FLAT_TARGET}x)")
        rows.append([
            label,
            f"{r['p50_us']:.2f} / {r['p99_us']:.2f} / {r['max_us']:,.0f} ({r['n']:,})",
            f"{r['events_per_s']:,.0f}",
            peer_cell,
            ratio_cell,
            verdict(ok50) if r["targets"] else f"({verdict(ok50)})",
            verdict(ok99) if r["targets"] else f"({verdict(ok99)})",
            other,
        ])
    main = table(header, rows)

    header2 = ["scenario", "Redline", "target", "result"]
    rows2 = []
    for g in results["redline"]["get_metrics"]:
        a, f = g["agent"], g["fleet"]
        ok = a["p99_us"] <= GET_METRICS_TARGET_US and f["p99_us"] <= GET_METRICS_TARGET_US
        if not ok:
            failures.append(f"get_metrics after {g['events_recorded']:,} events: agent p99 "
                            f"{a['p99_us']:.1f} µs, fleet p99 {f['p99_us']:.1f} µs > "
                            f"{GET_METRICS_TARGET_US} µs")
        rows2.append([
            f"get_metrics() after {g['events_recorded']:,} events",
            f"agent p50/p99 {a['p50_us']:.1f}/{a['p99_us']:.1f} µs; "
            f"fleet (10 agents) {f['p50_us']:.1f}/{f['p99_us']:.1f} µs",
            f"p99 ≤ {GET_METRICS_TARGET_US:g} µs",
            verdict(ok),
        ])
    rss = results["redline"].get("rss")
    if "rss" in results["redline"] and rss is None:
        failures.append("RSS scenario did not run (its subprocess failed)")
        rows2.append([f"RSS over {RSS_EVENTS:,} events, {RSS_AGENTS} agents", "did not run",
                      f"≤ {RSS_TARGET_MB:g} MB", "FAIL"])
    elif rss:
        ok = rss["growth_mb"] <= RSS_TARGET_MB
        if not ok:
            failures.append(f"RSS grew {rss['growth_mb']:.1f} MB over {rss['events']:,} events "
                            f"(> {RSS_TARGET_MB} MB)")
        rows2.append([
            f"RSS over {rss['events']:,} events, {rss['agents']} agents "
            f"(memory store max_events={rss['store_max_events']:,})",
            f"+{rss['growth_mb']:.1f} MB ({rss['rss_start_mb']:.0f} → {rss['rss_end_mb']:.0f}); "
            f"+{rss['growth_second_half_mb']:.1f} MB over the second half",
            f"≤ {RSS_TARGET_MB:g} MB",
            verdict(ok),
        ])
    else:
        rows2.append([f"RSS over {RSS_EVENTS:,} events, {RSS_AGENTS} agents", "skipped (--quick)",
                      f"≤ {RSS_TARGET_MB:g} MB", "—"])
    th = results["redline"]["threads"]
    if not th["exact"]:
        failures.append("threads: " + "; ".join(th["errors"]))
    rows2.append([
        f"{th['threads']} threads × {th['per_thread']:,} events (wall clock)",
        f"{th['events_per_s']:,.0f} ev/s in {th['wall_s']:.2f} s (1 thread: "
        f"{th['single_thread_events_per_s']:,.0f} ev/s); counts exact: {th['exact']}",
        "every event counted and stored",
        verdict(th["exact"]),
    ])
    other = table(header2, rows2)

    notes = []
    for r in rates:
        parts = [f"{k} {v['p50_us']:.1f}/{v['p99_us']:.1f}" for k, v in r["by_type"].items()]
        notes.append(f"- {r['label']}, p50/p99 µs by type: " + ", ".join(parts)
                     + f"; window held {r['events_in_window_per_agent']:,} events/agent"
                     f" (warm-up {r['warmup']:,}); anomalies {r['anomalies']}, kills "
                     f"{r['kills']}")
    for label, p in peer_by_label.items():
        how = (f"window prefilled ({p['warmup']:,} events) + {p['tail']} real"
               if p["prefilled"] else f"{p['warmup']:,} real warm-up events")
        notes.append(f"- peer, {label}: {how}; "
                     f"{p['events_in_window_per_agent']:,.0f} events/agent in window; "
                     f"mean {p['mean_us']:,.1f} µs; alerts {p['alerts']}; "
                     f"killed {p['killed_agents'] or 'none'}")
    text = "\n".join([
        main, "", other, "",
        f"Timer floor (two perf_counter_ns calls, p50): {results['timer_overhead_ns']} ns, "
        "included in every sample. No agent was killed (costs ~1 USD/min/agent, policy > 5.0).",
        *notes,
    ])
    return text, failures


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "loadavg_at_start": os.getloadavg(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        # Which build of the per-event path ran (``make`` compiles it with mypyc;
        # REDLINE_PURE_PYTHON=1 forces the pure-Python source).
        "build": "compiled (mypyc)" if compiled_modules() else "pure Python",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="fewer measured events, get_metrics up to 100 k, no RSS scenario")
    parser.add_argument("--no-peer", action="store_true", help="skip the peer (no comparison)")
    parser.add_argument("--rss-child", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        # The RSS scenario runs in a fresh interpreter: memory the other scenarios allocated and
        # freed stays in this process's heap and would hide (or fake) growth.
        rss = redline_rss(bench_config(), RSS_EVENTS, RSS_AGENTS, RSS_STORE_MAX_EVENTS)
        Path(args.rss_child).write_text(json.dumps(rss), encoding="utf-8")
        return 0
    quick: bool = args.quick
    raw = bench_config()
    started = time.perf_counter()
    cpu_started = time.process_time()

    results: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/record.py", *(argv or sys.argv[1:])]),
        "quick": quick,
        "machine": machine(),
        "config": raw,
        "timer_overhead_ns": timer_overhead_ns(),
        "redline": {},
    }

    python = None if args.no_peer else peer_python()
    results["peer"] = None

    def rates_step() -> None:
        # Each peer scenario runs right after Redline's, so both see the same machine load.
        out = []
        for sc in SCENARIOS:
            n = max(20_000, sc.redline_measure // 5) if quick else sc.redline_measure
            warmup = sc.redline_warmup
            if quick and sc.rate == 100.0:
                warmup = int(sc.rate * AGENT_WINDOW) + 10_000
            log(f"Redline {sc.label}: warm-up {warmup:,}, measuring {n:,}")
            r = redline_rate(raw, sc.rate, warmup, n, sc.agents)
            r.update(label=sc.label, targets=sc.targets)
            log(f"  p50 {r['p50_us']:.2f} µs, p99 {r['p99_us']:.2f} µs ({r['seconds']:.0f} s)")
            out.append(r)
            if python is not None:
                log(f"peer {PEER_PACKAGE} {sc.label} (subprocess, {PEER_VENV.relative_to(ROOT)})")
                peer = run_peer(python, raw, quick, (sc,))
                if peer is not None:
                    if results["peer"] is None:
                        results["peer"] = peer
                    else:
                        results["peer"]["scenarios"].extend(peer["scenarios"])
                    log(f"  p50 {peer['scenarios'][0]['p50_us']:,.1f} µs")
        results["redline"]["rates"] = out

    def get_metrics_step() -> None:
        checkpoints = (10_000, 100_000) if quick else (10_000, 1_000_000)
        results["redline"]["get_metrics"] = redline_get_metrics(raw, checkpoints, 10_000)

    def rss_step() -> None:
        log(f"Redline RSS: {RSS_EVENTS:,} events, {RSS_AGENTS} agents, in a fresh interpreter "
            "(the long one)")
        with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
            out = Path(tmp) / "rss.json"
            subprocess.run([sys.executable, str(Path(__file__).resolve()), "--rss-child",
                            str(out)], check=False)
            results["redline"]["rss"] = (
                json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
            )

    def threads_step() -> None:
        log("Redline threads: 8 × 50,000 events")
        results["redline"]["threads"] = redline_threads(raw, 8, 50_000)

    def durable_step() -> None:
        # The shipped config (SQLite beside it) with a denial/error mix: denials' p99 against
        # actions' in the same run, and record() calls that trip the kill policy.
        import durable_mix

        n = 20_000 if quick else 100_000
        log(f"Redline durable mix: {n:,} events on examples/monitor.yaml as shipped")
        results["redline"]["durable_mix"] = durable_mix.run(n)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("rates", rates_step), ("get_metrics", get_metrics_step), ("threads", threads_step),
        ("durable_mix", durable_step),
    ]
    if not quick:
        steps.append(("rss", rss_step))
    for _, step in steps:
        step()
        gc.collect()

    results["seconds"] = time.perf_counter() - started
    results["cpu_seconds"] = time.process_time() - cpu_started
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    text, failures = report(results)
    if results["redline"].get("durable_mix"):
        import durable_mix

        mix_text, mix_failures = durable_mix.report(results["redline"]["durable_mix"])
        text += "\n\n" + mix_text
        failures += mix_failures
    results["failures"] = failures
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")

    m = results["machine"]
    print()
    load = "/".join(f"{x:.1f}" for x in (*m["loadavg_at_start"][:1], *m["loadavg_at_end"][:1]))
    print(f"Redline record() benchmark: {'--quick' if quick else 'full'} run, "
          f"{results['seconds']:.0f} s wall ({results['cpu_seconds']:.0f} s CPU in this process, "
          f"peer subprocess excluded); Redline build: {m['build']}; nproc {m['nproc']}, "
          f"Python {m['python']}, {m['cpu']}; load average at start/end {load}")
    print()
    print(text)
    print()
    if failures:
        print(f"TARGETS FAILED ({len(failures)}):")
        for f in failures:
            print(f"  FAIL  {f}")
    else:
        print("All targets met.")
    print(f"\nResults: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
