"""Specification of ``redline.integrations.pydantic_ai``: ``RedlineCapability`` on real Pydantic
AI agents, driven by its offline ``FunctionModel`` (scripted to call a real tool, then answer)
and ``TestModel``, on a SQLite store that another process can kill agents in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

import redline
from redline import AgentKilledError, AgentStoppedError, Monitor
from redline.integrations.pydantic_ai import MAX_IN_FLIGHT, RedlineCapability

from .conftest import events_of

MODEL = "gpt-4o"


def usage() -> RequestUsage:
    """Usage as Pydantic AI reports it: ``input_tokens`` include cache reads and writes."""
    return RequestUsage(
        input_tokens=120,
        output_tokens=30,
        cache_read_tokens=100,
        cache_write_tokens=5,
        output_reasoning_tokens=10,
    )


class Script:
    """A ``FunctionModel`` function: ask for ``lookup`` first, answer once it has a result;
    ``while_thinking`` runs during the first call (where a test kills the agent)."""

    def __init__(self, while_thinking: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self.while_thinking = while_thinking

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.calls += 1
        if self.while_thinking is not None:
            hook, self.while_thinking = self.while_thinking, None
            hook()
        if self.calls == 1:
            part: Any = ToolCallPart("lookup", {"q": "acme"}, tool_call_id="call-1")
        else:
            part = TextPart("done")
        return ModelResponse(parts=[part], usage=usage(), provider_name="openai")

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        """The same script, streamed."""
        self.calls += 1
        if self.calls == 1:
            yield {0: DeltaToolCall(name="lookup", json_args='{"q": "acme"}', tool_call_id="c-1")}
        else:
            yield "do"
            yield "ne"


def make_agent(script: Script, cap: RedlineCapability, ran: list[str], **kw: Any) -> Agent[Any]:
    """An agent named ``sales`` whose ``lookup`` tool appends its argument to ``ran``."""
    model = FunctionModel(script, stream_function=script.stream, model_name=MODEL)
    agent: Agent[Any] = Agent(model, name="sales", capabilities=[cap], **kw)

    @agent.tool_plain
    def lookup(q: str) -> str:
        """Look a customer up."""
        ran.append(q)
        return f"found {q}"

    return agent


@pytest.fixture(autouse=True)
def event_loop_for_run_sync() -> Iterator[None]:
    """A loop for ``run_sync``, closed after the test.

    ``run_sync`` runs on the thread's current event loop, making one when there is none, and
    leaves it open; an ``asyncio.run`` later in the thread then drops it unclosed, and its
    ``ResourceWarning`` would fail whichever test the collector happens to run in.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def ran() -> list[str]:
    """What the tool body did."""
    return []


def tokens(ev: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("tokens_in", "tokens_out", "tokens_cached", "tokens_cache_write", "tokens_reasoning")
    return tuple(ev[k] for k in keys)


# -- recording ------------------------------------------------------------------------------


def test_a_run_records_model_and_tool_calls(monitor: Monitor, ran: list[str]) -> None:
    """``run_sync`` of an agent that calls a tool then answers records two ``llm_call`` (model,
    provider, tokens with cache reads, cache writes and reasoning, latency) and one
    ``tool_call`` (name, arguments, status), in the capability's session, under the Pydantic AI
    agent's name."""
    cap = RedlineCapability(monitor, session_id="s-1")
    out = make_agent(Script(), cap, ran).run_sync("who is acme?")
    assert out.output == "done"
    assert ran == ["acme"]
    models = events_of(monitor, "llm_call")
    (call,) = events_of(monitor, "tool_call")
    assert len(models) == 2
    first = models[-1]  # newest first
    assert (first["agent"], first["session_id"], first["model"]) == ("sales", "s-1", MODEL)
    assert first["data"]["provider"] == "openai"
    assert tokens(first) == (120, 30, 100, 5, 10)
    assert first["latency_ms"] >= 0
    assert first["data"]["tool_calls"] == ["lookup"]
    assert (call["agent"], call["tool"], call["status"], call["session_id"]) == (
        "sales",
        "lookup",
        "ok",
        "s-1",
    )
    assert call["data"]["arguments"] == {"q": "acme"}
    assert call["latency_ms"] >= 0
    assert "output" not in call["data"]  # no content unless capture_content
    assert cap.in_flight == 0


def test_the_conversation_is_the_session_and_the_capability_names_the_agent(
    monitor: Monitor, ran: list[str]
) -> None:
    """Without a ``session_id`` the run's ``conversation_id`` is the session; an ``agent``
    given to the capability beats the Pydantic AI agent's name."""
    agent = make_agent(Script(), RedlineCapability(monitor, agent="support"), ran)
    agent.run_sync("hi", conversation_id="conv-7")
    found = events_of(monitor, "llm_call") + events_of(monitor, "tool_call")
    assert {(e["agent"], e["session_id"]) for e in found} == {("support", "conv-7")}


def test_redline_context_supplies_the_identity_pydantic_ai_does_not(
    monitor: Monitor, ran: list[str]
) -> None:
    """``redline.context()`` names the session, user and tenant of every step inside it."""
    agent = make_agent(Script(), RedlineCapability(monitor), ran)
    with redline.context(session_id="ticket-9", user="u-1", tenant="acme"):
        agent.run_sync("hi")
    found = events_of(monitor, "llm_call") + events_of(monitor, "tool_call")
    assert len(found) == 3
    assert {(e["agent"], e["session_id"], e["user"], e["tenant"]) for e in found} == {
        ("sales", "ticket-9", "u-1", "acme")
    }


def test_a_model_error_is_recorded(monitor: Monitor) -> None:
    """A model request that fails is recorded as ``error`` and its exception reaches the caller."""

    def down(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ConnectionError("provider down")

    cap = RedlineCapability(monitor)
    agent: Agent[Any] = Agent(FunctionModel(down), name="sales", capabilities=[cap])
    with pytest.raises(ConnectionError):
        agent.run_sync("hi")
    (ev,) = events_of(monitor, "error")
    assert (ev["agent"], ev["status"], ev["data"]["error_type"]) == (
        "sales",
        "error",
        "ConnectionError",
    )
    assert events_of(monitor, "llm_call") == []
    assert cap.in_flight == 0


def test_a_failing_tool_is_recorded_with_status_error(monitor: Monitor) -> None:
    """A tool that raises is recorded as a ``tool_call`` with status ``error`` and its
    exception reaches the caller as Pydantic AI raises it."""
    cap = RedlineCapability(monitor)
    agent: Agent[Any] = Agent(TestModel(), name="sales", capabilities=[cap])

    @agent.tool_plain
    def flaky(q: str) -> str:
        """Always fails."""
        raise ValueError(f"no {q}")

    with pytest.raises(ValueError, match="no a"):
        agent.run_sync("hi")
    (ev,) = events_of(monitor, "tool_call")
    assert (ev["tool"], ev["status"], ev["data"]["error_type"]) == ("flaky", "error", "ValueError")
    assert cap.in_flight == 0


def test_a_tool_asking_the_model_to_retry_is_an_error_call(monitor: Monitor) -> None:
    """A tool raising ``ModelRetry`` is recorded as an error, then the retried call as ok."""
    cap = RedlineCapability(monitor)
    agent: Agent[Any] = Agent(TestModel(), name="sales", capabilities=[cap])
    tries: list[str] = []

    @agent.tool_plain
    def picky(q: str) -> str:
        """Fails once."""
        tries.append(q)
        if len(tries) == 1:
            raise ModelRetry("try again")
        return "ok"

    agent.run_sync("hi")
    calls = events_of(monitor, "tool_call")
    assert [(e["tool"], e["status"]) for e in reversed(calls)] == [
        ("picky", "error"),
        ("picky", "ok"),
    ]
    assert cap.in_flight == 0


def test_content_is_recorded_only_when_asked(monitor: Monitor, ran: list[str]) -> None:
    """With ``capture_content=True`` the completion and the tool output are kept."""
    make_agent(Script(), RedlineCapability(monitor, capture_content=True), ran).run_sync("hi")
    (call,) = events_of(monitor, "tool_call")
    assert call["data"]["output"] == "found acme"
    assert events_of(monitor, "llm_call")[0]["data"]["completion"] == "done"


# -- stopping -------------------------------------------------------------------------------


def test_a_cli_kill_during_the_model_call_stops_the_tool_before_it_runs(
    monitor: Monitor, ran: list[str], kill_from_cli: Callable[[str], None]
) -> None:
    """Another process kills the agent while the model is thinking; the tool call it asked
    for is stopped with the monitor's stop exception and the tool body never runs."""
    script = Script(while_thinking=lambda: kill_from_cli("sales"))
    cap = RedlineCapability(monitor)
    with pytest.raises(AgentKilledError) as stopped:
        make_agent(script, cap, ran).run_sync("hi")
    assert stopped.value.target == "sales"
    assert ran == []
    assert script.calls == 1
    assert len(events_of(monitor, "llm_call")) == 1  # the call that was already made
    assert events_of(monitor, "tool_call") == []
    assert cap.in_flight == 0


def test_a_killed_agent_makes_no_model_call(
    monitor: Monitor, ran: list[str], kill_from_cli: Callable[[str], None]
) -> None:
    """A kill already in force stops the run at its first model request: nothing is sent."""
    kill_from_cli("sales")
    script = Script()
    with pytest.raises(AgentKilledError):
        make_agent(script, RedlineCapability(monitor), ran).run_sync("hi")
    assert script.calls == 0
    assert events_of(monitor, "llm_call") == []
    assert events_of(monitor, "error") == []


def test_a_budget_reserves_before_the_request_and_refuses_the_one_that_would_overrun(
    ran: list[str],
) -> None:
    """With a budget, each request reserves its estimate (messages and ``max_tokens``) and
    commits its usage; the request that would overrun never reaches the model."""
    config = {"budgets": [{"name": "d", "limit_usd": 0.0008, "scope": "agent"}]}
    with Monitor(redline.parse_config(config)) as monitor:

        def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            return ModelResponse(parts=[TextPart("ok")], usage=usage())

        cap = RedlineCapability(monitor)
        model = FunctionModel(answer, model_name=MODEL)
        agent: Agent[Any] = Agent(
            model, name="sales", capabilities=[cap], model_settings={"max_tokens": 50}
        )
        agent.run_sync("hi")
        (ev,) = events_of(monitor, "llm_call")
        [state] = monitor.budgets()
        assert state.spent_usd == pytest.approx(ev["cost_usd"])
        assert state.reserved_usd == 0.0
        with pytest.raises(redline.BudgetExceededError) as caught:
            agent.run_sync("hi")
        assert isinstance(caught.value, AgentStoppedError)
        assert len(events_of(monitor, "llm_call")) == 1


def test_a_failure_while_recording_never_reaches_the_agent(
    monitor: Monitor, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If recording fails the run completes as if Redline were not there, and every swallowed
    failure is counted."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(monitor, "record", broken)
    out = make_agent(Script(), RedlineCapability(monitor), ran).run_sync("hi")
    assert out.output == "done"
    assert ran == ["acme"]
    assert monitor.stats()["integration_errors_by_name"] == {"pydantic_ai": 3}


def test_steps_that_never_end_do_not_accumulate(monitor: Monitor) -> None:
    """Starts without an end (a run the framework dropped) are bounded by ``MAX_IN_FLIGHT``."""
    cap = RedlineCapability(monitor)

    class Ctx:  # what before_tool_execute reads of a RunContext
        agent = None
        conversation_id = None
        usage = None

        def __init__(self, run_id: str) -> None:
            self.run_id = run_id

    async def start_many() -> None:
        for i in range(MAX_IN_FLIGHT + 50):
            call = ToolCallPart("t", {}, tool_call_id=f"c-{i}")
            ctx: Any = Ctx(f"run-{i}")
            tool_def: Any = None
            await cap.before_tool_execute(ctx, call=call, tool_def=tool_def, args={})

    asyncio.run(start_many())
    assert cap.in_flight == MAX_IN_FLIGHT


# -- async and streamed runs ----------------------------------------------------------------


def test_an_async_run_is_governed(
    monitor: Monitor, ran: list[str], kill_from_cli: Callable[[str], None]
) -> None:
    """``await agent.run(...)`` records the same events, and a kill stops its tool."""
    cap = RedlineCapability(monitor, session_id="s-a")
    out = asyncio.run(make_agent(Script(), cap, ran).run("hi"))
    assert out.output == "done"
    assert [e["session_id"] for e in events_of(monitor, "llm_call")] == ["s-a", "s-a"]
    assert len(events_of(monitor, "tool_call")) == 1
    ran.clear()
    killing = Script(while_thinking=lambda: kill_from_cli("sales"))
    with pytest.raises(AgentKilledError):
        asyncio.run(make_agent(killing, cap, ran).run("hi"))
    assert ran == []


def test_a_streamed_run_is_recorded_and_stopped(
    monitor: Monitor, ran: list[str], kill_from_cli: Callable[[str], None]
) -> None:
    """``run_stream`` records each streamed request once it ends (flagged ``stream``), and a
    killed agent's streamed run sends no request."""
    cap = RedlineCapability(monitor)

    async def stream(script: Script) -> str:
        async with make_agent(script, cap, ran).run_stream("hi") as result:
            return await result.get_output()

    assert asyncio.run(stream(Script())) == "done"
    models = events_of(monitor, "llm_call")
    assert len(models) == 2
    assert all(m["data"]["stream"] for m in models)
    assert models[-1]["data"]["tool_calls"] == ["lookup"]
    assert ran == ["acme"]
    kill_from_cli("sales")
    script = Script()
    with pytest.raises(AgentKilledError):
        asyncio.run(stream(script))
    assert script.calls == 0


# -- remote, and without the framework ------------------------------------------------------


def test_a_remote_monitor_governs_a_pydantic_ai_run(
    monitor: Monitor, remote: Any, ran: list[str]
) -> None:
    """With a ``RemoteMonitor`` the events reach the server's store and a kill made on the
    server stops the next tool call."""
    cap = RedlineCapability(remote, agent="remote-agent")
    make_agent(Script(), cap, ran).run_sync("hi")
    assert remote.flush(5.0)
    assert len(events_of(monitor, "llm_call", agent="remote-agent")) == 2
    ran.clear()

    def kill_on_server() -> None:
        monitor.kill_agent("remote-agent", "from the server")

    with pytest.raises(AgentKilledError):
        make_agent(Script(while_thinking=kill_on_server), cap, ran).run_sync("hi")
    assert ran == []


def test_without_pydantic_ai_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``pydantic_ai`` says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "pydantic_ai", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.pydantic_ai")
    with pytest.raises(ImportError, match=r"pip install 'redline\[pydantic-ai\]'"):
        importlib.import_module("redline.integrations.pydantic_ai")
