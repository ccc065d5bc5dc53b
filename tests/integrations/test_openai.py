"""Specification of ``redline.integrations.openai.guard``: the real OpenAI SDK against a local
server speaking its API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

openai = pytest.importorskip("openai")

import redline  # noqa: E402
from redline import AgentKilledError, AgentStoppedError, Monitor  # noqa: E402
from redline.integrations.openai import guard  # noqa: E402

from .conftest import FakeLLM, Reply, events_of  # noqa: E402

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client_for() -> Iterator[Callable[..., Any]]:
    """``client_for(fake, monitor, **guard_kw)``: a guarded sync client, closed after the test."""
    made: list[Any] = []

    def make(fake: FakeLLM, monitor: Any, **kw: Any) -> Any:
        raw = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=3)
        made.append(raw)
        made.append(guard(raw, monitor, **{"agent": "sales", "session_id": "s-1", **kw}))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_chat_completion_is_recorded_with_model_tokens_latency_and_session(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A chat completion is one ``llm_call``: the response's model, every token count
    (``tokens_in`` includes the cached ones), its latency and the guard's session."""
    reply = client_for(fake_llm, monitor).chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.choices[0].message.content == "ok"
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["agent"], ev["session_id"], ev["model"], ev["status"]) == (
        "sales",
        "s-1",
        "gpt-4o",
        "ok",
    )
    assert (ev["tokens_in"], ev["tokens_out"], ev["tokens_cached"], ev["tokens_reasoning"]) == (
        120,
        30,
        100,
        10,
    )
    assert ev["latency_ms"] > 0
    assert ev["data"]["endpoint"] == "chat/completions"
    assert "prompt" not in ev["data"]  # no content unless capture_content


def test_responses_api_is_recorded(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A Responses API call records its ``input_tokens``/``output_tokens`` and their details."""
    out = client_for(fake_llm, monitor).responses.create(model="gpt-4.1", input="hi")
    assert out.output_text == "ok"
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["model"], ev["tokens_in"], ev["tokens_cached"], ev["tokens_reasoning"]) == (
        "gpt-4.1",
        120,
        100,
        10,
    )
    assert ev["data"]["endpoint"] == "responses"


def test_a_stream_with_include_usage_records_the_final_chunks_usage(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A streamed chat completion is recorded when the stream ends, with the usage of its last
    chunk when ``include_usage`` asked for one, and with tokens unset when it did not."""
    client = client_for(fake_llm, monitor)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage.prompt_tokens == 120
    list(client.chat.completions.create(model="gpt-4o", messages=HI, stream=True))
    with_usage, without = events_of(monitor, "llm_call")[::-1]
    assert (with_usage["tokens_in"], with_usage["tokens_cached"], with_usage["data"]["stream"]) == (
        120,
        100,
        True,
    )
    assert without.get("tokens_in") is None
    assert without["model"] == "gpt-4o"


def test_a_streamed_responses_call_is_recorded(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A streamed Responses call takes its usage from ``response.completed``."""
    events = list(
        client_for(fake_llm, monitor).responses.create(model="o3", input="x", stream=True)
    )
    assert events[-1].type == "response.completed"
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["model"], ev["tokens_out"], ev["tokens_reasoning"]) == ("o3", 30, 10)


def test_the_async_client_is_governed_with_the_context_identity(
    fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """``AsyncOpenAI`` is governed the same way; with ``agent=None`` the agent and session
    come from ``redline.context()``."""

    async def run() -> str:
        raw = openai.AsyncOpenAI(base_url=fake_llm.base_url + "/v1", api_key="sk-test")
        client = guard(raw, monitor, agent=None)
        with redline.context(agent="support", session_id="t-9"):
            out = await client.chat.completions.create(model="gpt-4o-mini", messages=HI)
        await client.close()
        return str(out.choices[0].message.content)

    assert asyncio.run(run()) == "ok"
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["agent"], ev["session_id"], ev["model"]) == ("support", "t-9", "gpt-4o-mini")


def test_a_cli_kill_stops_the_next_request_before_it_reaches_the_server(
    client_for: Callable[..., Any],
    fake_llm: FakeLLM,
    monitor: Monitor,
    kill_from_cli: Callable[[str], None],
) -> None:
    """After a kill made by another process, the next call raises the stop, the server sees no
    request, and the SDK does not retry it (it would with ``max_retries=3`` for its own
    errors)."""
    client = client_for(fake_llm, monitor)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert fake_llm.count() == 1
    kill_from_cli("sales")
    with pytest.raises(AgentKilledError) as stopped:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert stopped.value.target == "sales"
    with pytest.raises(AgentStoppedError):
        client.responses.create(model="gpt-4o", input="again")
    assert fake_llm.count() == 1
    assert len(events_of(monitor, "llm_call")) == 1


def test_an_http_error_is_recorded_as_error(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A 4xx from the API reaches the agent as the SDK's own error and is recorded as ``error``
    with the status and the API's message."""
    fake_llm.reply(Reply(status=400))
    with pytest.raises(openai.BadRequestError):
        client_for(fake_llm, monitor).chat.completions.create(model="gpt-4o", messages=HI)
    (ev,) = events_of(monitor, "error")
    assert (ev["model"], ev["status"], ev["data"]["http_status"]) == ("gpt-4o", "error", 400)
    assert ev["data"]["error"] == "scripted failure"


def test_a_failure_while_recording_never_reaches_the_agent(
    client_for: Callable[..., Any],
    fake_llm: FakeLLM,
    monitor: Monitor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If recording itself fails, the agent still gets its completion; the failure is counted
    in ``monitor.stats()["integration_errors"]``."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    client = client_for(fake_llm, monitor)
    monkeypatch.setattr(monitor, "record", broken)
    reply = client.chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.choices[0].message.content == "ok"
    assert monitor.stats()["integration_errors"] == 1
    assert monitor.stats()["integration_errors_by_name"] == {"openai": 1}


def test_capture_content_records_prompt_and_completion(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """With ``capture_content=True`` the prompt and the completion text are kept."""
    fake_llm.reply(Reply(text="the answer"))
    client = client_for(fake_llm, monitor, capture_content=True)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    (ev,) = events_of(monitor, "llm_call")
    assert ev["data"]["completion"] == "the answer"
    assert ev["data"]["prompt"] == HI


def test_a_remote_monitor_governs_the_client(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor, remote: Any
) -> None:
    """Guarded with a ``RemoteMonitor``, the call is recorded on the server's store and a kill
    made on the server stops the next request."""
    client = client_for(fake_llm, remote)
    client.chat.completions.create(model="gpt-4o", messages=HI)
    assert remote.flush(5.0)
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["agent"], ev["tokens_in"], ev["tokens_cached"]) == ("sales", 120, 100)
    monitor.kill_agent("sales", "from the server")
    with pytest.raises(AgentKilledError):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert fake_llm.count() == 1


def test_guard_refuses_what_is_not_an_openai_client(monitor: Monitor) -> None:
    """Misuse at construction raises at once, with what was expected."""
    with pytest.raises(TypeError, match="OpenAI"):
        guard(object(), monitor, agent="x")


def test_a_body_already_in_memory_is_recorded(monitor: Monitor) -> None:
    """Behind an in-process transport (``httpx2.MockTransport``) whose responses are read at
    construction, the usage is still recorded."""
    import httpx2

    def api(request: httpx2.Request) -> httpx2.Response:
        usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        return httpx2.Response(200, json={"model": "m-1", "choices": [], "usage": usage})

    http = httpx2.Client(transport=httpx2.MockTransport(api))
    client = guard(openai.OpenAI(api_key="k", http_client=http), monitor, agent="a")
    client.chat.completions.create(model="m-1", messages=HI)
    client.close()
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["model"], ev["tokens_in"], ev["tokens_out"]) == ("m-1", 7, 3)


def test_without_the_sdk_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``openai`` installed says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "openai", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.openai")
    with pytest.raises(ImportError, match=r"pip install 'redline\[openai\]'"):
        importlib.import_module("redline.integrations.openai")


def test_long_bodies_are_read_for_their_usage_without_a_full_parse(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A long conversation and a long completion (past ``SMALL_BODY``) still give the model, the
    usage and the requested ``max_tokens``; quoted JSON inside the text cannot be mistaken for
    them."""
    from redline.integrations._http import SMALL_BODY, peek_json

    decoy = '{"model": "decoy", "usage": {"prompt_tokens": 1}} ' * 200
    fake_llm.reply(Reply(text=decoy))
    history = [{"role": "user", "content": decoy}]
    client_for(fake_llm, monitor).chat.completions.create(
        model="gpt-4o", messages=history, max_tokens=77
    )
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["model"], ev["tokens_in"], ev["tokens_cached"]) == ("gpt-4o", 120, 100)
    request = fake_llm.requests[-1]
    raw = json.dumps(request.body).encode()
    assert len(raw) > SMALL_BODY
    assert peek_json(raw)["max_tokens"] == 77


def test_a_budget_reserves_before_the_request_and_commits_its_usage(
    client_for: Callable[..., Any], fake_llm: FakeLLM
) -> None:
    """With a budget, each request reserves its estimate (the prompt and ``max_tokens``) before
    it is sent and commits the usage it reported; the request that would overrun is refused
    before it reaches the server, as an ``AgentStoppedError``."""
    monitor = Monitor(
        redline.parse_config({"budgets": [{"name": "d", "limit_usd": 0.0008, "scope": "agent"}]})
    )
    client = client_for(fake_llm, monitor)
    client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=50)
    (ev,) = events_of(monitor, "llm_call")
    [state] = monitor.budgets()
    assert state.spent_usd == pytest.approx(ev["cost_usd"])  # the usage, not the estimate
    assert state.reserved_usd == 0.0
    sent = fake_llm.count()
    with pytest.raises(redline.BudgetExceededError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=50)
    assert isinstance(caught.value, AgentStoppedError)
    assert fake_llm.count() == sent
    monitor.close()
