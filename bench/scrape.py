"""Benchmark the exporters: the cost of a Prometheus scrape, and of OTel export on ``record()``.

What it measures, and why (DESIGN.md, "Performance" and "Compute on read"):

* **Scrape cost.** The Prometheus collector builds every family from live state at scrape time,
  so a scrape costs O(agents x tools). Here: 100 agents x 20 tools (and 3 models), each agent's
  lifetime totals populated; the time of ``collect()`` alone and of a full text exposition
  (``generate_latest``, which includes a collect), p50 and max over 50 scrapes.
* **record() with the OTel exporter.** The exporter's bus subscriber only captures the trace
  context and appends to a bounded queue; spans are built on a worker thread. Here: p50/p99 of
  ``record()`` (per call, ``perf_counter_ns``) on two monitors in the same run, one without and
  one with ``OTelExporter`` (SDK ``TracerProvider`` + ``BatchSpanProcessor`` into an exporter
  that discards, so the SDK does all its work but nothing leaves the machine), alternating blocks
  of events so both see the same machine state. Also the worker's throughput (spans/s).

    .venv/bin/python bench/scrape.py            # ~1 minute on 2 cores
    .venv/bin/python bench/scrape.py --quick    # fewer events

Writes ``bench/results/scrape.json``. Exit code 0 even if a number disappoints: a measurement.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redline import AgentEvent, Monitor, parse_config
from redline.testing import ManualClock

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "scrape.json"
T0 = 1_700_000_000.0
QUIET = {
    "detectors": {name: {"enabled": False} for name in ("loop", "stuck", "suspicious", "drift")}
}
MODELS = ("gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def populate(monitor: Monitor, clock: ManualClock, agents: int, tools: int) -> int:
    """Every agent calls every tool and every model a few times, spread over 60 s."""
    n = 0
    for second in range(60):
        clock.set(T0 + second)
        for a in range(agents):
            agent = f"agent-{a:03d}"
            tool = f"tool-{(second + a) % tools:02d}"
            model = MODELS[(second + a) % len(MODELS)]
            monitor.record(AgentEvent(timestamp=T0 + second, agent=agent, event_type="tool_call",
                                      tool=tool, latency_ms=5.0 + (a * 7 + second) % 400,
                                      status="ok" if second % 10 else "error"))  # fmt: skip
            monitor.record(AgentEvent(timestamp=T0 + second, agent=agent, event_type="llm_call",
                                      model=model, cost_usd=0.001, tokens_in=500, tokens_out=80,
                                      tokens_cached=100, latency_ms=300.0 + second))  # fmt: skip
            n += 2
    # Make sure every agent has every tool (20 distinct per agent).
    for a in range(agents):
        for t in range(tools):
            monitor.record(AgentEvent(timestamp=T0 + 59, agent=f"agent-{a:03d}",
                                      event_type="tool_call", tool=f"tool-{t:02d}",
                                      latency_ms=12.0))  # fmt: skip
            n += 1
    monitor.flush()
    return n


def bench_scrape(agents: int, tools: int, scrapes: int) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    from redline.export.prometheus import RedlineCollector

    clock = ManualClock(T0)
    with Monitor(parse_config(QUIET), clock=clock) as monitor:
        events = populate(monitor, clock, agents, tools)
        collector = RedlineCollector(monitor)
        body, _ = collector.generate()  # warm up (bucket index cache)
        samples = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
        collect_ms: list[float] = []
        expose_ms: list[float] = []
        for _ in range(scrapes):
            t = time.perf_counter()
            families = list(collector.collect())
            collect_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            body, _ = collector.generate()
            expose_ms.append((time.perf_counter() - t) * 1000)
        del families
        collector.close()
    return {
        "agents": agents,
        "tools_per_agent": tools,
        "events": events,
        "samples_per_scrape": samples,
        "bytes_per_scrape": len(body),
        "scrapes": scrapes,
        "collect_ms_p50": statistics.median(collect_ms),
        "collect_ms_max": max(collect_ms),
        "exposition_ms_p50": statistics.median(expose_ms),
        "exposition_ms_max": max(expose_ms),
    }


class _Discard:
    """An OTel ``SpanExporter`` that accepts and forgets (the SDK still does all its work)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _events(i: int, agent: str) -> AgentEvent:
    if i % 2:
        return AgentEvent(timestamp=T0 + i * 0.001, agent=agent, event_type="tool_call",
                          tool=f"tool-{i % 20}", latency_ms=40.0, session_id="s-1")  # fmt: skip
    return AgentEvent(timestamp=T0 + i * 0.001, agent=agent, event_type="llm_call",
                      model="gpt-4o", tokens_in=500, tokens_out=80, latency_ms=300.0,
                      cost_usd=0.001, session_id="s-1")  # fmt: skip


def bench_record(events: int, block: int) -> dict[str, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from redline.export.otel import OTelExporter

    clock_a, clock_b = ManualClock(T0), ManualClock(T0)
    plain = Monitor(parse_config(QUIET), clock=clock_a)
    traced = Monitor(parse_config(QUIET), clock=clock_b)
    discard = _Discard()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(discard, max_queue_size=100_000))  # type: ignore[arg-type]
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    exporter = OTelExporter(traced, provider, meters, queue_size=100_000)
    prepared_a = [_events(i, "bench") for i in range(events)]
    prepared_b = [_events(i, "bench") for i in range(events)]
    times: dict[str, list[int]] = {"without": [], "with": []}
    perf = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for start in range(0, events, block):
            for name, monitor, clock, prepared in (
                ("without", plain, clock_a, prepared_a),
                ("with", traced, clock_b, prepared_b),
            ):
                out = times[name]
                record = monitor.record
                for ev in prepared[start : start + block]:
                    clock.set(ev.timestamp)
                    t = perf()
                    record(ev)
                    out.append(perf() - t)
    finally:
        gc.enable()
    t = time.perf_counter()
    exporter.force_flush(60)
    drain_s = time.perf_counter() - t
    built = discard.spans
    exporter.shutdown()
    provider.shutdown()
    meters.shutdown()
    plain.close()
    traced.close()
    result: dict[str, Any] = {"events": events, "block": block}
    for name, values in times.items():
        result[f"{name}_p50_us"] = pct(values, 0.50) / 1000
        result[f"{name}_p99_us"] = pct(values, 0.99) / 1000
    result["ratio_p50"] = result["with_p50_us"] / result["without_p50_us"]
    result["ratio_p99"] = result["with_p99_us"] / result["without_p99_us"]
    result["spans_exported"] = built
    result["exporter_dropped"] = exporter.dropped
    result["drain_after_run_s"] = drain_s
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and scrapes")
    args = parser.parse_args(argv)
    scrape = bench_scrape(100, 20, 20 if args.quick else 50)
    record = bench_record(20_000 if args.quick else 100_000, 1_000)
    results = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "scrape": scrape,
        "record": record,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    s, r = scrape, record
    rows: list[tuple[str, str]] = [
        ("scrape: collect() p50", f"{s['collect_ms_p50']:.1f} ms"),
        ("scrape: full, collect + text p50", f"{s['exposition_ms_p50']:.1f} ms (max {s['exposition_ms_max']:.1f})"),
        ("scrape: size", f"{s['samples_per_scrape']:,} samples, {s['bytes_per_scrape'] / 1024:.0f} KiB"),
        ("record() p50 without / with OTel", f"{r['without_p50_us']:.2f} / {r['with_p50_us']:.2f} us (x{r['ratio_p50']:.2f})"),
        ("record() p99 without / with OTel", f"{r['without_p99_us']:.2f} / {r['with_p99_us']:.2f} us (x{r['ratio_p99']:.2f})"),
        ("OTel spans exported / dropped", f"{r['spans_exported']:,} / {r['exporter_dropped']:,}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"100 agents x 20 tools, {s['events']:,} events; record() over {r['events']:,} events")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


