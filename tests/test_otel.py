"""Specification of the OpenTelemetry exporter: GenAI spans, parenting, metrics, OTLP/HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from redline import AgentEvent, Monitor, parse_config
from redline.export import (
    ExportersConfig,
    OTelExporterConfig,
    PrometheusExporterConfig,
    start_exporters,
)
from redline.export.otel import DURATION_BUCKETS, TOKEN_BUCKETS, OTelExporter, from_config
from redline.export.spans import (
    BusSpanExporter,
    MemorySpanSink,
    SpanRecord,
    SpanSink,
    provider_of,
)
from redline.testing import ManualClock
from redline.tracing import CausalTraceId, start_span

T0 = 1_700_000_040.0
QUIET = {
    "detectors": {name: {"enabled": False} for name in ("loop", "stuck", "suspicious", "drift")}
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def monitor(clock: ManualClock) -> Iterator[Monitor]:
    m = Monitor(parse_config(QUIET), clock=clock)
    yield m
    m.close()


class Pipeline:
    """An exporter wired to in-memory span and metric readers."""

    def __init__(
        self, monitor: Monitor, capture_content: bool = False, semconv: str | None = None
    ) -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporter = OTelExporter(
            monitor,
            self.tracer_provider,
            self.meter_provider,
            capture_content=capture_content,
            semconv=semconv,
        )

    def spans(self) -> dict[str, ReadableSpan]:
        assert self.exporter.force_flush()
        return {s.name: s for s in self.spans_out.get_finished_spans()}

    def close(self) -> None:
        self.exporter.shutdown()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def pipe(monitor: Monitor) -> Iterator[Pipeline]:
    p = Pipeline(monitor)
    yield p
    p.close()


def session(monitor: Monitor, at: float, **ids: Any) -> None:
    monitor.record(AgentEvent(timestamp=at, agent="sales", event_type="session_start",
                              session_id="s-1", **ids))  # fmt: skip


def test_a_session_becomes_an_invoke_agent_span_with_its_calls_inside(
    monitor: Monitor, pipe: Pipeline
) -> None:
    """session_start/end → ``invoke_agent``; tool and LLM calls in it are its children."""
    session(monitor, T0)
    monitor.record(AgentEvent(timestamp=T0 + 2, agent="sales", event_type="tool_call",
                              session_id="s-1", tool="search", status="ok", latency_ms=500.0,
                              data={"call_id": "call-7"}))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0 + 4, agent="sales", event_type="llm_call",
                              session_id="s-1", model="gpt-4o", tokens_in=120, tokens_out=30,
                              latency_ms=1500.0, cost_usd=0.01))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0 + 5, agent="sales", event_type="session_end",
                              session_id="s-1"))  # fmt: skip
    spans = pipe.spans()
    assert set(spans) == {"invoke_agent sales", "execute_tool search", "chat gpt-4o"}
    agent, tool, chat = (
        spans["invoke_agent sales"],
        spans["execute_tool search"],
        spans["chat gpt-4o"],
    )

    assert agent.kind is SpanKind.INTERNAL
    assert tool.kind is SpanKind.INTERNAL  # the tool runs in-process
    assert chat.kind is SpanKind.CLIENT
    assert agent.parent is None
    for child in (tool, chat):
        assert child.parent is not None
        assert child.parent.span_id == agent.context.span_id
        assert child.context.trace_id == agent.context.trace_id

    assert dict(agent.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "sales",
        "gen_ai.provider.name": "openai",  # what the session's model calls used
        "gen_ai.conversation.id": "s-1",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "redline.event_type": "session",
    }
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": "call-7",
        "gen_ai.agent.name": "sales",
        "gen_ai.conversation.id": "s-1",
        "redline.event_type": "tool_call",
    }
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",  # the released conventions' (deprecated) name, kept
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.agent.name": "sales",
        "gen_ai.conversation.id": "s-1",
        "redline.cost_usd": 0.01,
        "redline.event_type": "llm_call",
    }
    assert tool.status.status_code is StatusCode.OK


def test_span_times_come_from_timestamp_and_latency(monitor: Monitor, pipe: Pipeline) -> None:
    """A span ends at the event's timestamp and starts ``latency_ms`` earlier."""
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t",
                              latency_ms=250.0))  # fmt: skip
    span = pipe.spans()["execute_tool t"]
    assert span.end_time == int(T0 * 1e9)
    assert span.start_time == int((T0 - 0.25) * 1e9)


def test_causal_trace_ids_are_preserved(monitor: Monitor, pipe: Pipeline) -> None:
    """Short CausalTraceIds become W3C ids zero-padded; a child event points at its parent."""
    root = CausalTraceId()
    child = root.child()
    session(monitor, T0, trace_id=root.trace_id, span_id=root.span_id)
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="sales", event_type="tool_call",
                              tool="crm", session_id="s-1", trace_id=child.trace_id,
                              span_id=child.span_id, parent_span_id=child.parent_span_id))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0 + 2, agent="sales", event_type="session_end",
                              session_id="s-1"))  # fmt: skip
    spans = pipe.spans()
    agent, tool = spans["invoke_agent sales"], spans["execute_tool crm"]
    assert format(agent.context.trace_id, "032x") == root.w3c_trace_id
    assert format(agent.context.span_id, "016x") == root.w3c_span_id
    assert format(tool.context.span_id, "016x") == child.w3c_span_id
    assert tool.parent is not None
    assert tool.parent.span_id == agent.context.span_id


def test_w3c_ids_pass_through_unchanged(monitor: Monitor, pipe: Pipeline) -> None:
    """Full-width trace and span ids (from a ``traceparent``) are kept exactly."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="claude-3-5-sonnet",
                              trace_id=trace_id, span_id="b7ad6b7169203331",
                              parent_span_id=parent, latency_ms=10.0))  # fmt: skip
    span = pipe.spans()["chat claude-3-5-sonnet"]
    assert format(span.context.trace_id, "032x") == trace_id
    assert format(span.context.span_id, "016x") == "b7ad6b7169203331"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent
    assert (span.attributes or {})["gen_ai.provider.name"] == "anthropic"


def test_events_join_the_current_otel_span(monitor: Monitor, pipe: Pipeline) -> None:
    """Without ids on the event, the OpenTelemetry span current at record() is the parent."""
    tracer = pipe.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /chat") as request:
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t"))
    span = pipe.spans()["execute_tool t"]
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert span.context.trace_id == request.get_span_context().trace_id


def test_events_join_the_current_redline_trace(monitor: Monitor, pipe: Pipeline) -> None:
    """Inside ``start_span()`` (no OTel span), the Redline trace becomes the parent."""
    with start_span() as trace:
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t"))
    span = pipe.spans()["execute_tool t"]
    assert format(span.context.trace_id, "032x") == trace.w3c_trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == trace.w3c_span_id


def test_a_repeated_span_id_nests_instead_of_colliding(monitor: Monitor, pipe: Pipeline) -> None:
    """Two events carrying the same span id: the second becomes a child of the first."""
    trace = CausalTraceId()
    for tool in ("first", "second"):
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool=tool,
                                  trace_id=trace.trace_id, span_id=trace.span_id))  # fmt: skip
    spans = pipe.spans()
    first, second = spans["execute_tool first"], spans["execute_tool second"]
    assert first.context.span_id != second.context.span_id
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id


def test_governance_events_annotate_the_session_span(
    monitor: Monitor, pipe: Pipeline, clock: ManualClock
) -> None:
    """A kill and a denial in an open session are span events on it; the span is an error."""
    session(monitor, T0)
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="sales", event_type="denial",
                              session_id="s-1", data={"reason": "no PII export"}))  # fmt: skip
    monitor.kill_session("s-1", reason="policy breach")
    clock.advance(3)
    monitor.record(AgentEvent(timestamp=T0 + 3, agent="sales", event_type="session_end",
                              session_id="s-1"))  # fmt: skip
    spans = pipe.spans()
    agent = spans["invoke_agent sales"]
    names = [e.name for e in agent.events]
    assert names[:2] == ["redline.denial", "redline.kill"]
    denial = agent.events[0]
    assert (denial.attributes or {})["redline.reason"] == "no PII export"
    assert agent.status.status_code is StatusCode.ERROR
    assert not any(name.startswith(("kill", "denial")) for name in spans)


def test_governance_events_without_a_session_are_short_spans(
    monitor: Monitor, pipe: Pipeline
) -> None:
    """Outside a session a kill becomes a zero-length span carrying the event."""
    monitor.kill_agent("rogue", reason="cost spike")
    spans = pipe.spans()
    kill = spans["kill rogue"]
    assert kill.start_time == kill.end_time
    assert [e.name for e in kill.events] == ["redline.kill"]
    assert (kill.events[0].attributes or {})["redline.reason"] == "cost spike"


def test_errors_set_error_type_and_status(monitor: Monitor, pipe: Pipeline) -> None:
    """A failed tool call is an ERROR span with ``error.type`` from ``data["error_type"]``."""
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="pay",
                              status="error", data={"error_type": "TimeoutError",
                                                    "error": "took too long"}))  # fmt: skip
    span = pipe.spans()["execute_tool pay"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "took too long"
    assert (span.attributes or {})["error.type"] == "TimeoutError"


def test_content_is_never_exported_by_default(monitor: Monitor, pipe: Pipeline) -> None:
    """Prompts and completions stay out of spans unless ``capture_content=True``."""
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="gpt-4o",
                              data={"prompt": "my SSN is 123", "completion": "ok"}))  # fmt: skip
    span = pipe.spans()["chat gpt-4o"]
    assert not any("messages" in key for key in span.attributes or {})
    assert "123" not in json.dumps(dict(span.attributes or {}))


def test_content_is_exported_when_asked(monitor: Monitor) -> None:
    """With ``capture_content=True`` prompt and completion become GenAI message attributes."""
    p = Pipeline(monitor, capture_content=True)
    try:
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="gpt-4o",
                                  data={"prompt": "hi", "completion": "hello"}))  # fmt: skip
        attrs = p.spans()["chat gpt-4o"].attributes or {}
        assert json.loads(str(attrs["gen_ai.input.messages"])) == [
            {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
        ]
        assert json.loads(str(attrs["gen_ai.output.messages"])) == [
            {"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}
        ]
    finally:
        p.close()


def test_provider_is_inferred_or_omitted() -> None:
    """``gen_ai.provider.name`` comes from data, a provider prefix or the model family."""
    assert provider_of("gpt-4o") == "openai"
    assert provider_of("o3-mini") == "openai"
    assert provider_of("claude-3-opus") == "anthropic"
    assert provider_of("gemini-1.5-pro") == "gcp.gen_ai"  # AI Studio or Vertex: unknown
    assert provider_of("gemini/gemini-1.5-pro") == "gcp.gemini"
    assert provider_of("bedrock/anthropic.claude-v2") == "aws.bedrock"
    assert provider_of("mistral-large") == "mistral_ai"
    assert provider_of("llama-3-70b") is None
    assert provider_of("llama-3-70b", {"provider": "groq"}) == "groq"
    assert provider_of(None) is None


def test_unknown_provider_is_other_on_the_span(monitor: Monitor, pipe: Pipeline) -> None:
    """``gen_ai.provider.name`` is required on inference spans: unknown provenance is
    ``_OTHER``, never a guess and never absent."""
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="llama-3"))
    assert pipe.spans()["chat llama-3"].attributes["gen_ai.provider.name"] == "_OTHER"


def _points(reader: InMemoryMetricReader, name: str) -> tuple[Any, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    return metric, list(metric.data.data_points)
    raise AssertionError(f"no metric {name}")


def test_genai_client_metrics_use_the_spec_buckets(monitor: Monitor, pipe: Pipeline) -> None:
    """Token usage and operation duration histograms, with the conventions' boundaries."""
    for tokens_in in (100, 300):
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="gpt-4o",
                                  tokens_in=tokens_in, tokens_out=20, latency_ms=1200.0))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t",
                              latency_ms=30.0))  # fmt: skip
    assert pipe.exporter.force_flush()
    metric, points = _points(pipe.reader, "gen_ai.client.token.usage")
    assert metric.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points}
    assert by_type["input"].sum == 400
    assert by_type["input"].count == 2
    assert by_type["output"].sum == 40
    assert tuple(by_type["input"].explicit_bounds) == tuple(map(float, TOKEN_BUCKETS))
    assert dict(by_type["input"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.token.type": "input",
    }
    metric, points = _points(pipe.reader, "gen_ai.client.operation.duration")
    assert metric.unit == "s"
    by_op = {p.attributes["gen_ai.operation.name"]: p for p in points}
    assert by_op["chat"].sum == pytest.approx(2.4)
    assert "execute_tool" not in by_op  # tools have their own histogram
    assert tuple(by_op["chat"].explicit_bounds) == DURATION_BUCKETS
    metric, points = _points(pipe.reader, "gen_ai.execute_tool.duration")
    assert metric.unit == "s"
    (tool,) = points
    assert tool.sum == pytest.approx(0.03)
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "t",
    }


def test_a_failing_sink_never_reaches_record(monitor: Monitor) -> None:
    """A sink that raises is counted; ``record()`` and the other spans carry on."""

    class Broken:
        def export(self, spans: Any) -> None:
            raise RuntimeError("collector down")

        def shutdown(self) -> None:
            pass

    assert isinstance(Broken(), SpanSink)
    bus = BusSpanExporter(monitor, Broken())
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t"))
    assert bus.force_flush()
    assert bus.errors == 1
    assert monitor.stats()["internal_errors"] == 0
    bus.shutdown()


def test_memory_sink_and_shutdown_end_open_sessions(monitor: Monitor) -> None:
    """Shutdown ends a session span still open, marked truncated, and shuts the sink down."""
    sink = MemorySpanSink()
    bus = BusSpanExporter(monitor, sink)
    session(monitor, T0)
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="sales", event_type="action",
                              session_id="s-1", latency_ms=5.0))  # fmt: skip
    assert bus.shutdown()
    assert sink.shut_down
    agent = sink.named("invoke_agent sales")[0]
    assert isinstance(agent, SpanRecord)
    assert agent.attributes["redline.session.truncated"] is True
    assert agent.end_time == T0 + 1
    action = sink.named("action sales")[0]
    assert action.parent_span_id == agent.span_id


def test_queue_is_bounded_and_counts_drops(monitor: Monitor) -> None:
    """Past ``queue_size`` the oldest queued event is dropped and counted."""
    gate = threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.spans: list[SpanRecord] = []

        def export(self, spans: Any) -> None:
            gate.wait(10)
            self.spans.extend(spans)

        def shutdown(self) -> None:
            pass

    sink = Slow()
    bus = BusSpanExporter(monitor, sink, queue_size=5, interval=0.01)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="t0"))
    # The worker is now (or soon) blocked exporting t0; fill the queue past its bound.
    deadline = threading.Event()
    deadline.wait(0.2)
    for i in range(1, 21):
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool=f"t{i}"))
    gate.set()
    assert bus.force_flush()
    assert bus.dropped >= 10
    assert len(sink.spans) + bus.dropped == 21
    bus.shutdown()


# -- OTLP/HTTP to a local receiver --------------------------------------------------------------


class Receiver:
    """A stdlib OTLP/HTTP trace receiver on loopback that records span names and resources."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.services: list[str] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.headers.append(dict(self.headers))
                for rs in request.resource_spans:
                    for attr in rs.resource.attributes:
                        if attr.key == "service.name":
                            receiver.services.append(attr.value.string_value)
                    for ss in rs.scope_spans:
                        receiver.names.extend(span.name for span in ss.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_otlp_http_export_reaches_a_receiver(monitor: Monitor, receiver: Receiver) -> None:
    """``from_config`` ships spans over OTLP/HTTP with the configured service name and headers."""
    cfg = OTelExporterConfig(enabled=True, endpoint=receiver.url, service_name="sales-agents",
                             headers={"x-tenant": "acme"}, metrics=False)  # fmt: skip
    exporter = from_config(monitor, cfg)
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="llm_call", model="gpt-4o"))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="search"))
    assert exporter.force_flush()
    assert sorted(receiver.names) == ["chat gpt-4o", "execute_tool search"]
    assert receiver.services == ["sales-agents"]
    assert receiver.headers[0]["x-tenant"] == "acme"
    exporter.close()


def test_otlp_endpoint_from_the_standard_environment(
    monitor: Monitor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no endpoint in YAML, ``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_SERVICE_NAME`` rule."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    exporter = from_config(monitor, OTelExporterConfig(enabled=True, metrics=False))
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="env"))
    assert exporter.force_flush()
    assert receiver.names == ["execute_tool env"]
    assert receiver.services == ["from-env"]
    exporter.close()


def test_exporters_section_starts_and_stops_both(monitor: Monitor, receiver: Receiver) -> None:
    """``start_exporters`` runs what ``exporters:`` enables; ``close()`` stops everything."""
    pytest.importorskip("prometheus_client")
    import urllib.request

    config = ExportersConfig(
        prometheus=PrometheusExporterConfig(enabled=True, port=0),
        otel=OTelExporterConfig(enabled=True, endpoint=receiver.url, metrics=False),
    )
    running = start_exporters(monitor, config)
    try:
        monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="both"))
        port = running.prometheus_server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert b'redline_tool_calls_total{agent="a"' in resp.read()
        assert running.otel.force_flush()
        assert receiver.names == ["execute_tool both"]
    finally:
        running.close()
    assert not monitor.bus.active


def test_exporters_section_converts_from_yaml_and_rejects_typos() -> None:
    """``exporters:`` decodes from a YAML mapping; unknown keys and bad ports are errors."""
    import msgspec

    cfg = msgspec.convert(
        {"prometheus": {"enabled": True, "port": 9464}, "otel": {"endpoint": "http://c:4318"}},
        ExportersConfig,
    )
    assert cfg.prometheus.enabled
    assert cfg.prometheus.addr == "127.0.0.1"
    assert not cfg.otel.enabled
    assert cfg.otel.endpoint == "http://c:4318"
    with pytest.raises(msgspec.ValidationError, match="endpiont"):
        msgspec.convert({"otel": {"endpiont": "x"}}, ExportersConfig)
    with pytest.raises(msgspec.ValidationError, match="port"):
        msgspec.convert({"prometheus": {"port": 70000}}, ExportersConfig)
    assert start_exporters(object(), ExportersConfig()).otel is None
