"""Specification of ``redline.integrations.anthropic.guard``: the real Anthropic SDK against a
local server speaking the Messages API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

from redline import AgentKilledError, Monitor  # noqa: E402
from redline.integrations.anthropic import guard  # noqa: E402

from .conftest import FakeLLM, Reply, events_of  # noqa: E402

ASK: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def client_for() -> Iterator[Callable[..., Any]]:
    """``client_for(fake, monitor, **guard_kw)``: a guarded sync client, closed after the test."""
    made: list[Any] = []

    def make(fake: FakeLLM, monitor: Any, **kw: Any) -> Any:
        raw = anthropic.Anthropic(base_url=fake.base_url, api_key="sk-test", max_retries=3)
        made.append(raw)
        made.append(guard(raw, monitor, **{"agent": "sales", "session_id": "s-1", **kw}))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_a_message_is_recorded_with_cache_tokens_added_into_tokens_in(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """Anthropic reports 20 uncached + 100 cache-read + 50 cache-write input tokens apart; the
    event's ``tokens_in`` is all 170 read, with the cache parts kept alongside."""
    msg = client_for(fake_llm, monitor).messages.create(**ASK)
    assert msg.content[0].text == "ok"
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["agent"], ev["session_id"], ev["model"], ev["status"]) == (
        "sales",
        "s-1",
        "claude-sonnet-4-5",
        "ok",
    )
    assert (ev["tokens_in"], ev["tokens_cached"], ev["tokens_cache_write"], ev["tokens_out"]) == (
        170,
        100,
        50,
        30,
    )
    assert ev["latency_ms"] > 0
    assert ev["data"]["stop_reason"] == "end_turn"


def test_a_stream_is_recorded_from_message_start_and_message_delta(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A streamed message takes input and cache usage from ``message_start`` and the output
    count from the last ``message_delta`` (not the 1 that ``message_start`` carries)."""
    with client_for(fake_llm, monitor).messages.stream(**ASK) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens == 30
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["tokens_in"], ev["tokens_cached"], ev["tokens_out"], ev["data"]["stream"]) == (
        170,
        100,
        30,
        True,
    )


def test_the_async_client_is_governed(fake_llm: FakeLLM, monitor: Monitor) -> None:
    """``AsyncAnthropic`` is governed by the same middleware (its async path)."""

    async def run() -> str:
        raw = anthropic.AsyncAnthropic(base_url=fake_llm.base_url, api_key="sk-test")
        client = guard(raw, monitor, agent="support")
        out = await client.messages.create(**ASK)
        async with client.messages.stream(**ASK) as stream:
            await stream.get_final_message()
        await client.close()
        return str(out.content[0].text)

    assert asyncio.run(run()) == "ok"
    plain, streamed = events_of(monitor, "llm_call")[::-1]
    assert plain["agent"] == streamed["agent"] == "support"
    assert plain["tokens_in"] == streamed["tokens_in"] == 170


def test_a_cli_kill_stops_the_next_request_before_it_reaches_the_server(
    client_for: Callable[..., Any],
    fake_llm: FakeLLM,
    monitor: Monitor,
    kill_from_cli: Callable[[str], None],
) -> None:
    """After a kill made by another process the next call raises the stop, not retried (with
    ``max_retries=3``), and the server sees no request."""
    client = client_for(fake_llm, monitor)
    client.messages.create(**ASK)
    kill_from_cli("sales")
    with pytest.raises(AgentKilledError):
        client.messages.create(**ASK)
    with pytest.raises(AgentKilledError):
        client.messages.stream(**ASK).__enter__()
    assert fake_llm.count() == 1
    assert len(events_of(monitor, "llm_call")) == 1


def test_an_api_error_is_recorded_as_error(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A 400 reaches the agent as the SDK's error and is recorded as ``error`` with its message."""
    fake_llm.reply(Reply(status=400))
    with pytest.raises(anthropic.BadRequestError):
        client_for(fake_llm, monitor).messages.create(**ASK)
    (ev,) = events_of(monitor, "error")
    assert (ev["model"], ev["data"]["http_status"], ev["data"]["error"]) == (
        "claude-sonnet-4-5",
        400,
        "scripted failure",
    )


def test_a_failure_while_recording_never_reaches_the_agent(
    client_for: Callable[..., Any],
    fake_llm: FakeLLM,
    monitor: Monitor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure inside the recording is counted, and the agent still gets its message."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    client = client_for(fake_llm, monitor)
    monkeypatch.setattr(monitor, "record", broken)
    assert client.messages.create(**ASK).content[0].text == "ok"
    assert monitor.stats()["integration_errors_by_name"] == {"anthropic": 1}


def test_tool_use_and_capture_content(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor
) -> None:
    """A ``tool_use`` reply is recorded with its stop reason; ``capture_content`` keeps the
    prompt and the text of a text reply."""
    fake_llm.reply(Reply(tool_calls=[("lookup", {"q": "x"})]), Reply(text="done"))
    client = client_for(fake_llm, monitor, capture_content=True)
    assert client.messages.create(**ASK).stop_reason == "tool_use"
    client.messages.create(**ASK)
    tool_use, text = events_of(monitor, "llm_call")[::-1]
    assert tool_use["data"]["stop_reason"] == "tool_use"
    assert text["data"]["completion"] == "done"
    assert text["data"]["prompt"] == ASK["messages"]


def test_a_remote_monitor_governs_the_client(
    client_for: Callable[..., Any], fake_llm: FakeLLM, monitor: Monitor, remote: Any
) -> None:
    """With a ``RemoteMonitor`` the call reaches the server's store, and a kill there stops it."""
    client = client_for(fake_llm, remote)
    client.messages.create(**ASK)
    assert remote.flush(5.0)
    (ev,) = events_of(monitor, "llm_call")
    assert ev["tokens_in"] == 170
    monitor.kill_agent("sales", "from the server")
    with pytest.raises(AgentKilledError):
        client.messages.create(**ASK)
    assert fake_llm.count() == 1


def test_without_the_sdk_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``anthropic`` installed says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "anthropic", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.anthropic")
    with pytest.raises(ImportError, match=r"pip install 'redline\[anthropic\]'"):
        importlib.import_module("redline.integrations.anthropic")
