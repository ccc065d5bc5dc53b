"""An application instrumented by someone else's OpenTelemetry package is governed unchanged.

The OpenAI SDK, instrumented by ``openinference-instrumentation-openai``, calls a local server
speaking the OpenAI API; :class:`RedlineSpanProcessor` on the application's own
``TracerProvider`` turns the instrumentation's spans into ``llm_call`` events, and a kill policy
on what they record trips, so the agent's next ``check()`` stops it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("openinference.instrumentation.openai")
pytest.importorskip("openai")

import openai
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from integrations.conftest import FakeLLM, Reply
from redline import AgentKilledError, Monitor, parse_config
from redline.integrations.otel import RedlineSpanProcessor


@pytest.fixture
def instrumented() -> Iterator[tuple[TracerProvider, RedlineSpanProcessor, Monitor]]:
    monitor = Monitor(
        parse_config(
            {
                "kill_switch": {
                    "policies": [
                        {
                            "name": "token-flood",
                            "metric": "tokens_in",
                            "operator": ">=",
                            "threshold": 240,
                            "action": "kill_agent",
                        }
                    ]
                }
            }
        )
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    processor = RedlineSpanProcessor(monitor)
    provider.add_span_processor(processor)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, processor, monitor
    finally:
        instrumentor.uninstrument()
        monitor.close()


def test_instrumented_calls_become_llm_calls_and_feed_kill_policies(
    instrumented: tuple[TracerProvider, RedlineSpanProcessor, Monitor], fake_llm: FakeLLM
) -> None:
    _, processor, monitor = instrumented
    client = openai.OpenAI(base_url=f"{fake_llm.base_url}/v1", api_key="sk-test", max_retries=0)
    fake_llm.reply(Reply(text="hello", input_tokens=120, cached_tokens=100, output_tokens=30))
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert processor.force_flush()
    (stored,) = [s.event for s in monitor.events() if s.event.event_type == "llm_call"]
    assert stored.agent == "support-bot"
    assert stored.model == "gpt-4o-mini"
    assert (stored.tokens_in, stored.tokens_out) == (120, 30)
    assert stored.tokens_cached == 100
    assert stored.trace_id is not None
    monitor.check("support-bot")  # 120 tokens: under the policy

    fake_llm.reply(Reply(text="again", input_tokens=120, output_tokens=30))
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "more"}]
    )
    assert processor.force_flush()
    with pytest.raises(AgentKilledError):
        monitor.check("support-bot")
