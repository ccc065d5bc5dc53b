"""Benchmark span ingestion: the in-process span processor and ``POST /v1/traces``.

Two scenarios, one run, each against a baseline measured in the same run (ratios travel better
than absolute numbers on a shared 2-core machine):

1. **Span processor.** ``RedlineSpanProcessor.on_end`` over the real SDK's finished spans, into a
   Monitor on the memory store: GenAI chat spans (mapped and recorded) and plain HTTP spans
   (ignored). Baseline: the SDK creating and ending the same spans with no processor at all, so
   the ratio is what the processor adds per span.
2. **OTLP receiver.** ``redline serve``'s app on a SQLite store, fed by one client thread with
   protobuf ``ExportTraceServiceRequest`` batches of 512 GenAI spans; spans/s from the first
   request to the flush. Baseline: the same number of events as JSON batches of 512 on
   ``POST /v1/events`` to the same kind of server.

    .venv/bin/python bench/otel_ingest.py            # the full run (~1 min)
    .venv/bin/python bench/otel_ingest.py --quick    # fewer spans
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from redline import Monitor, parse_config
from redline.integrations.otel import RedlineSpanProcessor
from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

TOKEN = "bench-ingest-0123456789abcdef"
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.conversation.id": "conv-1",
}
HTTP = {"http.request.method": "GET", "url.path": "/orders", "http.response.status_code": 200}
QUIET = {"detectors": {n: {"enabled": False} for n in ("loop", "stuck", "suspicious", "drift")}}


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _spans_per_s(n: int, attributes: dict[str, Any], processor: Any | None) -> float:
    tp = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    if processor is not None:
        tp.add_span_processor(processor)
    tracer = tp.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("span", attributes=attributes):
            pass
    return n / (time.perf_counter() - started)


def processor_rows(n: int, repeats: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    for label, attrs in (("GenAI chat spans", CHAT), ("non-GenAI spans", HTTP)):
        base: list[float] = []
        with_p: list[float] = []
        for _ in range(repeats):
            base.append(_spans_per_s(n, attrs, None))
            monitor = Monitor(parse_config(QUIET))
            with_p.append(_spans_per_s(n, attrs, RedlineSpanProcessor(monitor)))
            monitor.close()
        rows.append((label, statistics.median(with_p), statistics.median(base)))
    return rows


def _workload(n: int) -> list[ReadableSpan]:
    keep = _Keep()
    tp = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    tp.add_span_processor(SimpleSpanProcessor(keep))
    tracer = tp.get_tracer("bench")
    for _ in range(n):
        with tracer.start_as_current_span("chat gpt-4o", attributes=CHAT):
            pass
    return keep.spans


def _serve(tmp: Path, name: str) -> tuple[RedlineServer, Monitor]:
    monitor = Monitor(parse_config({**QUIET, "storage": {"path": str(tmp / f"{name}.db")}}))
    config = ServerConfig(
        port=0,
        tokens=[TokenConfig(name="bench", role="ingest", token=TOKEN)],
        rate_limit_per_minute=10_000_000,
        max_batch=1000,
    )
    return RedlineServer(create_app(monitor, config, admin_token=""), port=0).start(), monitor


def receiver_rows(n: int, batch: int) -> list[tuple[str, float, float]]:
    spans = _workload(n)
    bodies = [encode_spans(spans[i : i + batch]).SerializeToString() for i in range(0, n, batch)]
    events = [
        [
            {"agent": "bench", "event_type": "llm_call", "model": "gpt-4o", "tokens_in": 1200,
             "tokens_out": 300, "tokens_cached": 1000, "session_id": "conv-1", "latency_ms": 1.0}
            for _ in range(min(batch, n - i))
        ]
        for i in range(0, n, batch)
    ]  # fmt: skip
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("traces", "events"):
            server, monitor = _serve(Path(tmp), label)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=server.url, timeout=60) as client:
                started = time.perf_counter()
                if label == "traces":
                    for body in bodies:
                        r = client.post("/v1/traces", content=body, headers={
                            **auth, "Content-Type": "application/x-protobuf"})  # fmt: skip
                        r.raise_for_status()
                else:
                    for chunk in events:
                        client.post("/v1/events", json=chunk, headers=auth).raise_for_status()
                assert monitor.flush(120)
                results[label] = n / (time.perf_counter() - started)
            stored = monitor.stats()["written"]
            assert stored == n, (label, stored)
            server.stop()
            monitor.close()
    return [(f"/v1/traces, {batch}-span protobuf batches", results["traces"], results["events"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 5_000 if args.quick else 20_000
    print(f"{'scenario':<44} {'spans/s':>10} {'baseline/s':>11} {'ratio':>6}")
    for label, value, base in processor_rows(n, 3):
        print(f"processor: {label:<33} {value:>10,.0f} {base:>11,.0f} {value / base:>6.2f}")
    print("  (baseline: the SDK with no processor; ratio = throughput kept)")
    for label, value, base in receiver_rows(n * 2, 512):
        print(f"{label:<44} {value:>10,.0f} {base:>11,.0f} {value / base:>6.2f}")
    print("  (baseline: the same events as JSON on POST /v1/events, batches of 512)")


if __name__ == "__main__":
    main()
