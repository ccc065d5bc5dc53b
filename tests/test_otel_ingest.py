"""Specification of span ingestion: the in-process span processor and ``POST /v1/traces``.

Spans come from the real OpenTelemetry SDK (and, over the wire, its real OTLP/HTTP exporter) and
land in a real monitor; the three conventions in use (OpenTelemetry GenAI, OpenInference,
OpenLLMetry) map to the same events.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("starlette")

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from redline import AgentEvent, Monitor, parse_config
from redline.integrations.otel import RedlineSpanProcessor
from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

INGEST = "otlp-ingest-0123456789abcdef"
READ = "otlp-read-0123456789abcdefgh"

GENAI_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.provider.name": "openai",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.reasoning.output_tokens": 120,
    "gen_ai.conversation.id": "conv-1",
    "gen_ai.response.id": "resp-9",
}
OPENINFERENCE_LLM = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "claude-sonnet-4-5",
    "llm.provider": "anthropic",
    "llm.token_count.prompt": 900,
    "llm.token_count.completion": 50,
    "llm.token_count.prompt_details.cache_read": 400,
    "llm.token_count.prompt_details.cache_write": 300,
    "llm.cost.total": 0.0123,
    "session.id": "sess-oi",
    "user.id": "u-7",
}
TRACELOOP_LLM = {
    "llm.request.type": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.prompt_tokens": 80,
    "gen_ai.usage.completion_tokens": 8,
    "gen_ai.usage.cache_read_input_tokens": 64,
    "traceloop.association.properties.session_id": "sess-tl",
}
TOOL = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "lookup_order",
    "gen_ai.tool.call.arguments": json.dumps({"order": 17, "api_key": "sk-proj-" + "a" * 40}),
}


def emit(tracer: Any) -> None:
    """The same GenAI workload, whoever receives it: a chat, a tool, a failed call, two more
    conventions and two spans that are not GenAI at all."""
    with tracer.start_as_current_span("invoke_agent planner", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
    }):  # fmt: skip
        with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI_CHAT):
            pass
        with tracer.start_as_current_span("execute_tool lookup_order", attributes=TOOL):
            pass
        with tracer.start_as_current_span("chat gpt-4o", attributes=GENAI_CHAT) as failed:
            failed.set_attribute("error.type", "RateLimitError")
            failed.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
        with tracer.start_as_current_span("GET /orders"):
            pass
    with tracer.start_as_current_span("ChatAnthropic", attributes=OPENINFERENCE_LLM):
        pass
    with tracer.start_as_current_span("openai.chat", attributes=TRACELOOP_LLM):
        pass
    with tracer.start_as_current_span("db.query", attributes={"db.system": "postgresql"}):
        pass


def provider_with(*processors: Any, service: str = "checkout") -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    for p in processors:
        tp.add_span_processor(p)
    return tp


def by_type(monitor: Monitor) -> dict[str, list[AgentEvent]]:
    out: dict[str, list[AgentEvent]] = {}
    for stored in monitor.events():
        out.setdefault(stored.event.event_type, []).append(stored.event)
    return out


def check_workload(monitor: Monitor) -> None:
    """What :func:`emit` must become, however it arrived."""
    events = by_type(monitor)
    llm = sorted(events["llm_call"], key=lambda e: e.model or "")
    assert [e.model for e in llm] == ["claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini"]
    oi, chat, tl = llm
    assert (chat.tokens_in, chat.tokens_out, chat.tokens_cached, chat.tokens_reasoning) == (
        1200,
        300,
        1000,
        120,
    )
    assert chat.session_id == "conv-1"
    assert chat.data["provider"] == "openai"
    assert chat.data["response_id"] == "resp-9"
    assert chat.trace_id is not None
    assert len(chat.trace_id) == 32
    assert chat.span_id is not None
    assert chat.parent_span_id is not None  # under the invoke_agent span
    assert chat.latency_ms is not None
    assert chat.latency_ms >= 0
    assert chat.agent == "checkout"  # the resource's service.name: the span names no agent
    assert (oi.tokens_in, oi.tokens_cached, oi.tokens_cache_write) == (900, 400, 300)
    assert oi.cost_usd == pytest.approx(0.0123)
    assert (oi.session_id, oi.user) == ("sess-oi", "u-7")
    assert (tl.tokens_in, tl.tokens_out, tl.tokens_cached) == (80, 8, 64)
    assert tl.session_id == "sess-tl"
    assert tl.data["provider"] == "openai"
    (tool,) = events["tool_call"]
    assert tool.tool == "lookup_order"
    assert tool.status == "ok"
    assert "sk-proj-" not in json.dumps(tool.data)  # redacted like everything else
    assert "17" in str(tool.data["arguments"])
    (err,) = events["error"]
    assert err.model == "gpt-4o"
    assert err.data["error_type"] == "RateLimitError"
    assert "429" in err.data["error"]
    (agent,) = events["action"]
    assert agent.agent == "planner"
    assert agent.data["operation"] == "invoke_agent"
    assert sum(len(v) for v in events.values()) == 6  # GET /orders and db.query ignored


# -- in process --------------------------------------------------------------------------------


def test_processor_maps_the_three_conventions() -> None:
    monitor = Monitor()
    processor = RedlineSpanProcessor(monitor)
    emit(provider_with(processor).get_tracer("app"))
    assert processor.force_flush()
    check_workload(monitor)
    assert processor.recorded == 6


def test_agent_mapping_and_attribute() -> None:
    monitor = Monitor()
    processor = RedlineSpanProcessor(
        monitor, agent_attribute="deployment.name", agents={"blue-7": "sales-agent"}
    )
    tp = TracerProvider(resource=Resource.create({"deployment.name": "blue-7"}))
    tp.add_span_processor(processor)
    with tp.get_tracer("t").start_as_current_span("chat", attributes=GENAI_CHAT):
        pass
    assert processor.force_flush()
    (stored,) = list(monitor.events())
    assert stored.event.agent == "sales-agent"


def test_processor_never_raises_into_the_application() -> None:
    """A monitor that fails while recording: the span still ends, the app goes on, it is counted."""

    class Broken(Monitor):
        def record(self, event: AgentEvent) -> None:
            raise RuntimeError("disk on fire")

    monitor = Broken()
    tp = provider_with(RedlineSpanProcessor(monitor))
    tracer = tp.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("chat", attributes=GENAI_CHAT):
            pass
    assert monitor.stats()["integration_errors"] == 3
    assert monitor.stats()["integration_errors_by_name"] == {"otel": 3}


def test_kill_policy_trips_on_ingested_cost() -> None:
    """What a span processor records feeds the kill policies; the next check() stops the agent."""
    from redline import AgentKilledError

    monitor = Monitor(
        parse_config(
            {
                "kill_switch": {
                    "policies": [
                        {
                            "name": "spend",
                            "metric": "cost_total",
                            "operator": ">",
                            "threshold": 0.02,
                            "action": "kill_agent",
                        }
                    ]
                }
            }
        )
    )
    tp = provider_with(RedlineSpanProcessor(monitor), service="support-bot")
    tracer = tp.get_tracer("t")
    monitor.check("support-bot")
    for _ in range(2):
        with tracer.start_as_current_span("llm", attributes=OPENINFERENCE_LLM):
            pass
    with pytest.raises(AgentKilledError):
        monitor.check("support-bot")


# -- over the wire -----------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Monitor]]:
    monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / "events.db")}}))
    config = ServerConfig(
        port=0,
        tokens=[
            TokenConfig(name="otel-collector", role="ingest", token=INGEST),
            TokenConfig(name="grafana", role="read", token=READ),
        ],
        otlp_max_body_bytes=64 * 1024,
        rate_limit_per_minute=100_000,
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    yield server.url, monitor
    server.stop()
    monitor.close()


class Captured(SpanExporter):
    """Keeps the SDK's finished spans, to send them ourselves in either encoding."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def captured_workload() -> list[ReadableSpan]:
    cap = Captured()
    emit(provider_with(SimpleSpanProcessor(cap)).get_tracer("app"))
    return cap.spans


def otlp_json(spans: list[ReadableSpan]) -> bytes:
    """OTLP/JSON as the specification has it: ids in hex (not protobuf's base64)."""
    doc = MessageToDict(encode_spans(spans))

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("traceId", "spanId", "parentSpanId"):
                if node.get(key):
                    node[key] = base64.b64decode(node[key]).hex()
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(doc)
    return json.dumps(doc).encode()


def test_the_sdk_exporter_delivers_to_the_server(served: tuple[str, Monitor]) -> None:
    url, monitor = served
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {INGEST}"}
    )
    assert exporter.export(captured_workload()) is SpanExportResult.SUCCESS
    assert monitor.flush()
    check_workload(monitor)


def test_gzip_and_json_give_the_same_events(served: tuple[str, Monitor]) -> None:
    url, monitor = served
    body = gzip.compress(otlp_json(captured_workload()))
    r = httpx.post(
        f"{url}/v1/traces",
        content=body,
        headers={
            "Authorization": f"Bearer {INGEST}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {}  # no partial_success: nothing rejected
    assert monitor.flush()
    check_workload(monitor)


def test_refusals(served: tuple[str, Monitor]) -> None:
    url, monitor = served
    auth = {"Authorization": f"Bearer {INGEST}"}
    pb = {**auth, "Content-Type": "application/x-protobuf"}
    good = encode_spans(captured_workload()).SerializeToString()

    assert httpx.post(f"{url}/v1/traces", content=good, headers={
        "Content-Type": "application/x-protobuf"}).status_code == 401  # fmt: skip
    assert httpx.post(f"{url}/v1/traces", content=good, headers={
        "Authorization": f"Bearer {READ}", "Content-Type": "application/x-protobuf"
    }).status_code == 403  # fmt: skip

    garbage = httpx.post(f"{url}/v1/traces", content=b"\xff\x00not protobuf", headers=pb)
    assert garbage.status_code == 400
    assert b"ExportTraceServiceRequest" in garbage.content  # a google.rpc.Status message

    bad_json = httpx.post(f"{url}/v1/traces", content=b'{"resourceSpans": 3}', headers={
        **auth, "Content-Type": "application/json"})  # fmt: skip
    assert bad_json.status_code == 400
    assert "resourceSpans" in bad_json.json()["message"]

    huge = httpx.post(f"{url}/v1/traces", content=b"\x0a" * (65 * 1024), headers=pb)
    assert huge.status_code == 413

    bomb = gzip.compress(b"\x00" * (1024 * 1024))  # 1 KB that expands past the limit
    r = httpx.post(f"{url}/v1/traces", content=bomb, headers={**pb, "Content-Encoding": "gzip"})
    assert r.status_code == 413

    wrong = httpx.post(f"{url}/v1/traces", content=good, headers={
        **auth, "Content-Type": "text/plain"})  # fmt: skip
    assert wrong.status_code == 415
    assert monitor.flush()
    assert list(monitor.events()) == []  # nothing of the refused requests was recorded


def test_partial_success_counts_rejected_spans(served: tuple[str, Monitor]) -> None:
    """A span whose event the monitor refuses is reported in partial_success, not dropped."""
    url, monitor = served
    tp_spans = Captured()
    tracer = provider_with(SimpleSpanProcessor(tp_spans)).get_tracer("app")
    with tracer.start_as_current_span("chat", attributes=GENAI_CHAT):
        pass
    # A blank agent name: nothing to attribute the event to, so the monitor rejects it.
    with tracer.start_as_current_span("chat", attributes={**GENAI_CHAT, "gen_ai.agent.name": "  "}):
        pass
    req = encode_spans(tp_spans.spans)
    r = httpx.post(
        f"{url}/v1/traces",
        content=req.SerializeToString(),
        headers={"Authorization": f"Bearer {INGEST}", "Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200
    resp = trace_service_pb2.ExportTraceServiceResponse()
    resp.ParseFromString(r.content)
    stats = monitor.stats()
    assert resp.partial_success.rejected_spans == stats["rejected"] == 1
    assert "span" in resp.partial_success.error_message
    assert monitor.flush()
    assert len(list(monitor.events())) + stats["rejected"] == 2


def test_round_trip_through_redlines_own_exporter() -> None:
    """Events exported by Redline's OpenTelemetry exporter and taken back in by the span
    processor give the same metrics: the two mappings agree."""
    from redline.export.otel import OTelExporter
    from redline.testing import ManualClock

    t0 = 1_700_000_000.0
    quiet = {"detectors": {n: {"enabled": False} for n in ("loop", "stuck", "suspicious", "drift")}}
    source = Monitor(parse_config(quiet), clock=ManualClock(t0 + 30))
    target = Monitor(parse_config(quiet), clock=ManualClock(t0 + 30))
    exporter = OTelExporter(source, provider_with(RedlineSpanProcessor(target)))
    try:
        for i in range(20):
            source.record(AgentEvent(
                timestamp=t0 + i, agent="sales", event_type="llm_call", session_id="s",
                model="gpt-4o" if i % 2 else "claude-sonnet-4-5", tokens_in=100 + i,
                tokens_out=10, tokens_cached=50, cost_usd=0.001 * (i + 1), latency_ms=200.0 + i,
            ))  # fmt: skip
            source.record(AgentEvent(
                timestamp=t0 + i, agent="sales", event_type="tool_call", tool="crm",
                status="ok" if i % 5 else "error", latency_ms=20.0,
            ))  # fmt: skip
        assert exporter.force_flush()
    finally:
        exporter.shutdown()
    a, b = source.get_metrics("sales", 60), target.get_metrics("sales", 60)
    assert (a.llm_call_count, a.tool_call_count, a.tool_failure_count) == (20, 20, 4)
    assert b.cost_by_model == pytest.approx(a.cost_by_model)
    for name in ("llm_call_count", "tool_call_count", "tool_failure_count", "tokens_in",
                 "tokens_out", "tokens_cached"):  # fmt: skip
        assert getattr(b, name) == getattr(a, name), name
    assert b.cost_total == pytest.approx(a.cost_total)
    assert b.p50_latency_ms == pytest.approx(a.p50_latency_ms, rel=0.05)
