"""Specification of what the exporter emits against the current GenAI conventions.

Each test pins one thing the exporter used to get wrong (issue 16): span kinds, a provider that
is always present, operations beyond ``chat``, the newer usage attributes, response metadata,
agent ids, failed calls in the metrics, tool durations, the scope's version and schema URL, and
the switch between the released and the latest experimental conventions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.trace import SpanKind

import redline
from redline import AgentEvent, Monitor
from redline.export.genai import SCHEMA_URL, SCHEMA_URL_LATEST
from test_otel import QUIET, T0, Pipeline, _points


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor(redline.parse_config(QUIET), clock=redline.testing.ManualClock(T0))
    yield m
    m.close()


@pytest.fixture
def pipe(monitor: Monitor) -> Iterator[Pipeline]:
    p = Pipeline(monitor, capture_content=True, semconv="stable")
    yield p
    p.close()


def llm(**fields: Any) -> AgentEvent:
    base: dict[str, Any] = {"timestamp": T0, "agent": "a", "event_type": "llm_call",
                            "latency_ms": 800.0}  # fmt: skip
    return AgentEvent(**{**base, **fields})


def test_tool_spans_are_internal_and_inference_spans_client(
    monitor: Monitor, pipe: Pipeline
) -> None:
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="search"))
    monitor.record(llm(model="gpt-4o"))
    spans = pipe.spans()
    assert spans["execute_tool search"].kind is SpanKind.INTERNAL
    assert spans["chat gpt-4o"].kind is SpanKind.CLIENT


def test_provider_is_always_present(monitor: Monitor, pipe: Pipeline) -> None:
    """On inference spans, agent spans and the metrics, known or not."""
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="session_start", session_id="s"))
    monitor.record(llm(model="claude-sonnet-4-5", session_id="s", tokens_in=5, tokens_out=1))
    monitor.record(llm(model="my-finetune", tokens_in=5, tokens_out=1))
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="a", event_type="session_end",
                              session_id="s"))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0, agent="b", event_type="session_end", latency_ms=5.0))
    spans = pipe.spans()
    assert spans["chat claude-sonnet-4-5"].attributes["gen_ai.provider.name"] == "anthropic"
    assert spans["chat my-finetune"].attributes["gen_ai.provider.name"] == "_OTHER"
    assert spans["invoke_agent a"].attributes["gen_ai.provider.name"] == "anthropic"
    assert spans["invoke_agent b"].attributes["gen_ai.provider.name"] == "_OTHER"
    _, points = _points(pipe.reader, "gen_ai.client.token.usage")
    assert {p.attributes["gen_ai.provider.name"] for p in points} == {"anthropic", "_OTHER"}


def test_operation_names_beyond_chat(monitor: Monitor, pipe: Pipeline) -> None:
    monitor.record(llm(model="text-embedding-3-small", tokens_in=40,
                       data={"operation": "embeddings"}))  # fmt: skip
    monitor.record(llm(model="gemini-2.5-pro", data={"operation": "generate_content"}))
    monitor.record(llm(model="gpt-4o", data={"operation": "not-an-operation"}))
    spans = pipe.spans()
    assert spans["embeddings text-embedding-3-small"].attributes["gen_ai.operation.name"] == (
        "embeddings"
    )
    assert spans["generate_content gemini-2.5-pro"].attributes["gen_ai.provider.name"] == (
        "gcp.gen_ai"
    )
    assert "chat gpt-4o" in spans  # an unknown operation falls back to chat
    _, points = _points(pipe.reader, "gen_ai.client.operation.duration")
    assert {p.attributes["gen_ai.operation.name"] for p in points} == {
        "embeddings",
        "generate_content",
        "chat",
    }


def test_cache_and_reasoning_usage(monitor: Monitor, pipe: Pipeline) -> None:
    monitor.record(llm(model="claude-opus-4", tokens_in=1500, tokens_out=400, tokens_cached=1000,
                       tokens_cache_write=300, tokens_reasoning=250))  # fmt: skip
    a = pipe.spans()["chat claude-opus-4"].attributes
    assert a["gen_ai.usage.input_tokens"] == 1500
    assert a["gen_ai.usage.output_tokens"] == 400
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 300
    assert a["gen_ai.usage.reasoning.output_tokens"] == 250


def test_response_metadata_and_finish_reasons(monitor: Monitor, pipe: Pipeline) -> None:
    monitor.record(llm(model="gpt-4o", data={
        "response_model": "gpt-4o-2024-08-06", "response_id": "chatcmpl-9",
        "finish_reason": "tool_calls", "completion": "calling search",
    }))  # fmt: skip
    a = pipe.spans()["chat gpt-4o"].attributes
    assert a["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert a["gen_ai.response.id"] == "chatcmpl-9"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    (message,) = json.loads(str(a["gen_ai.output.messages"]))
    assert "finish_reason" not in message  # the span attribute says it, not the message
    _, points = _points(pipe.reader, "gen_ai.client.operation.duration")
    assert points[0].attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"


def test_agent_id_only_when_real(monitor: Monitor, pipe: Pipeline) -> None:
    monitor.record(AgentEvent(timestamp=T0, agent="named", event_type="session_start",
                              session_id="1"))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="named", event_type="session_end",
                              session_id="1"))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0, agent="ided", event_type="session_start",
                              session_id="2", data={"agent_id": "asst_42"}))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0 + 1, agent="ided", event_type="session_end",
                              session_id="2"))  # fmt: skip
    spans = pipe.spans()
    assert "gen_ai.agent.id" not in spans["invoke_agent named"].attributes
    assert spans["invoke_agent ided"].attributes["gen_ai.agent.id"] == "asst_42"


def test_failed_calls_are_in_the_metrics_with_their_error_type(
    monitor: Monitor, pipe: Pipeline
) -> None:
    monitor.record(llm(model="gpt-4o", tokens_in=10, tokens_out=2))
    monitor.record(llm(model="gpt-4o", event_type="error", status="error",
                       data={"error_type": "RateLimitError"}))  # fmt: skip
    monitor.record(AgentEvent(timestamp=T0, agent="a", event_type="tool_call", tool="pay",
                              status="timeout", latency_ms=3000.0))  # fmt: skip
    pipe.spans()
    _, points = _points(pipe.reader, "gen_ai.client.operation.duration")
    errors = [p.attributes.get("error.type") for p in points]
    assert sorted(e or "" for e in errors) == ["", "RateLimitError"]
    _, tokens = _points(pipe.reader, "gen_ai.client.token.usage")
    assert all("error.type" not in p.attributes for p in tokens)  # no usage for a failure
    _, tools = _points(pipe.reader, "gen_ai.execute_tool.duration")
    assert tools[0].attributes["error.type"] == "timeout"


def test_scope_carries_version_and_schema_url(monitor: Monitor, pipe: Pipeline) -> None:
    monitor.record(llm(model="gpt-4o"))
    span = pipe.spans()["chat gpt-4o"]
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "redline"
    assert span.instrumentation_scope.version == redline.__version__
    assert span.instrumentation_scope.schema_url == SCHEMA_URL
    data = pipe.reader.get_metrics_data()
    assert data is not None
    scopes = {sm.scope.schema_url for rm in data.resource_metrics for sm in rm.scope_metrics}
    assert scopes == {SCHEMA_URL}


def test_the_latest_conventions_switch(monitor: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` drops the deprecated
    ``gen_ai.system`` and names the latest schema; the released default keeps it."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    latest = Pipeline(monitor)
    released = Pipeline(monitor, semconv="stable")
    try:
        monitor.record(llm(model="gpt-4o"))
        new = latest.spans()["chat gpt-4o"]
        old = released.spans()["chat gpt-4o"]
    finally:
        latest.close()
        released.close()
    assert "gen_ai.system" not in new.attributes
    assert new.instrumentation_scope is not None
    assert new.instrumentation_scope.schema_url == SCHEMA_URL_LATEST
    assert old.attributes["gen_ai.system"] == old.attributes["gen_ai.provider.name"] == "openai"
