"""Specification of ``redline.integrations.langchain``: the callback handlers on a real LangGraph
graph and ``RedlineMiddleware`` on a real ``create_agent`` agent, with LangChain's fake chat
model scripted to call a real tool."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypedDict

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")
pytest.importorskip("langchain.agents")

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from redline import AgentKilledError, Monitor
from redline.integrations.langchain import (
    MAX_RUNS,
    AsyncRedlineCallbackHandler,
    RedlineCallbackHandler,
    RedlineMiddleware,
)

from .conftest import events_of

USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "total_tokens": 150,
    "input_token_details": {"cache_read": 100, "cache_creation": 5},
    "output_token_details": {"reasoning": 10},
}


def ai(content: str = "", *calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """An assistant message as a provider integration returns it (model name, usage)."""
    return AIMessage(
        content=content,
        tool_calls=[{"name": n, "args": a, "id": f"call-{i}"} for i, (n, a) in enumerate(calls)],
        usage_metadata=USAGE,  # type: ignore[arg-type]
        response_metadata={"model_name": "gpt-4o-2024-08-06"},
    )


class ScriptedModel(GenericFakeChatModel):
    """LangChain's fake chat model with tools bound (as ``create_agent`` needs) and a hook run
    while the model "thinks", where a test makes another process kill the agent."""

    while_thinking: Any = None

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        del tools, kwargs
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if self.while_thinking is not None:
            hook, self.while_thinking = self.while_thinking, None
            hook()
        return super()._generate(messages, *args, **kwargs)


def script(*messages: AIMessage, while_thinking: Callable[[], None] | None = None) -> Any:
    return ScriptedModel(messages=iter(messages), while_thinking=while_thinking)


def tool_then_answer(**kw: Any) -> Any:
    return script(ai("", ("lookup", {"q": "acme"})), ai("done"), **kw)


@pytest.fixture
def ran() -> list[str]:
    """What the tool body did: it appends its argument here."""
    return []


@pytest.fixture
def lookup(ran: list[str]) -> BaseTool:
    @tool
    def lookup(q: str) -> str:
        """Look a customer up."""
        ran.append(q)
        return f"found {q}"

    return lookup


# -- the callback handler on create_agent and on a hand-built graph --------------------------


def test_a_run_records_model_and_tool_calls(
    monitor: Monitor, lookup: BaseTool, ran: list[str]
) -> None:
    """An agent that calls a tool then answers records two ``llm_call`` (model, tokens with
    cached and reasoning, latency) and one ``tool_call`` (name, arguments, status), all in the
    LangGraph ``thread_id``'s session, each with its graph node."""
    agent = create_agent(tool_then_answer(), tools=[lookup])
    handler = RedlineCallbackHandler(monitor, agent="sales")
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "thread-7"}}
    out = agent.invoke({"messages": [("user", "who is acme?")]}, config=config)
    assert out["messages"][-1].content == "done"
    assert ran == ["acme"]
    models = events_of(monitor, "llm_call")
    (call,) = events_of(monitor, "tool_call")
    assert len(models) == 2
    first = models[-1]
    assert (first["agent"], first["session_id"], first["model"], first["data"]["node"]) == (
        "sales",
        "thread-7",
        "gpt-4o-2024-08-06",
        "model",
    )
    assert (
        first["tokens_in"],
        first["tokens_out"],
        first["tokens_cached"],
        first["tokens_cache_write"],
        first["tokens_reasoning"],
    ) == (120, 30, 100, 5, 10)
    assert first["latency_ms"] >= 0
    assert first["data"]["tool_calls"] == ["lookup"]
    assert (call["tool"], call["status"], call["session_id"], call["data"]["node"]) == (
        "lookup",
        "ok",
        "thread-7",
        "tools",
    )
    assert call["data"]["arguments"] == {"q": "acme"}
    assert "output" not in call["data"]  # no content unless capture_content
    assert handler.in_flight == 0


class Notes(TypedDict):
    messages: list[BaseMessage]


def test_a_langgraph_node_is_kept_and_its_thread_is_the_session(monitor: Monitor) -> None:
    """In a hand-built LangGraph graph with a checkpointer, the model call made in node
    ``researcher`` carries that node name and the thread as its session."""
    model = script(ai("notes"))

    def researcher(state: Notes) -> Notes:
        return {"messages": [*state["messages"], model.invoke(state["messages"])]}

    graph = StateGraph(Notes)
    graph.add_node("researcher", researcher)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", END)
    app = graph.compile(checkpointer=InMemorySaver())
    handler = RedlineCallbackHandler(monitor, agent="research")
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t-42"}}
    app.invoke({"messages": [AIMessage(content="start")]}, config=config)
    (ev,) = events_of(monitor, "llm_call")
    assert (ev["session_id"], ev["data"]["node"], ev["tokens_cached"]) == (
        "t-42",
        "researcher",
        100,
    )


def test_a_cli_kill_during_the_model_call_stops_the_tool_before_it_runs(
    monitor: Monitor,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """Another process kills the agent while the model is thinking; the tool call the model
    asked for is stopped with the monitor's stop exception and the tool body never runs."""
    agent = create_agent(tool_then_answer(while_thinking=lambda: kill_from_cli("sales")), [lookup])
    handler = RedlineCallbackHandler(monitor, agent="sales")
    with pytest.raises(AgentKilledError) as stopped:
        agent.invoke({"messages": [("user", "hi")]}, config={"callbacks": [handler]})
    assert stopped.value.target == "sales"
    assert ran == []
    assert events_of(monitor, "tool_call") == []


def test_a_killed_agent_makes_no_model_call(
    monitor: Monitor, lookup: BaseTool, kill_from_cli: Callable[[str], None]
) -> None:
    """A kill already in force stops the run at its first model call: nothing is generated."""
    model = tool_then_answer()
    kill_from_cli("sales")
    agent = create_agent(model, tools=[lookup])
    with pytest.raises(AgentKilledError):
        agent.invoke(
            {"messages": [("user", "hi")]},
            config={"callbacks": [RedlineCallbackHandler(monitor, agent="sales")]},
        )
    assert len(list(model.messages)) == 2  # the script was not consumed
    assert events_of(monitor, "llm_call") == []


def test_a_model_error_is_recorded(monitor: Monitor) -> None:
    """A model that fails is recorded as ``error`` and its exception reaches the caller."""

    class Down(ScriptedModel):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            raise ConnectionError("provider down")

    handler = RedlineCallbackHandler(monitor, agent="sales")
    with pytest.raises(ConnectionError):
        Down(messages=iter([])).invoke("hi", config={"callbacks": [handler]})
    (ev,) = events_of(monitor, "error")
    assert (ev["status"], ev["data"]["error_type"]) == ("error", "ConnectionError")
    assert handler.in_flight == 0


def test_a_failing_tool_is_recorded_with_status_error(monitor: Monitor) -> None:
    """A tool that raises is recorded as a ``tool_call`` with status ``error``."""

    @tool
    def flaky(q: str) -> str:
        """Always fails."""
        raise ValueError(f"no {q}")

    handler = RedlineCallbackHandler(monitor, agent="sales")
    with pytest.raises(ValueError, match="no x"):
        flaky.invoke({"q": "x"}, config={"callbacks": [handler]})
    (ev,) = events_of(monitor, "tool_call")
    assert (ev["tool"], ev["status"], ev["data"]["error_type"]) == ("flaky", "error", "ValueError")


def test_a_failure_while_recording_never_reaches_the_agent(
    monitor: Monitor, lookup: BaseTool, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If recording fails the run completes as if Redline were not there, and every swallowed
    failure is counted."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(monitor, "record", broken)
    agent = create_agent(tool_then_answer(), tools=[lookup])
    handler = RedlineCallbackHandler(monitor, agent="sales")
    out = agent.invoke({"messages": [("user", "hi")]}, config={"callbacks": [handler]})
    assert out["messages"][-1].content == "done"
    assert ran == ["acme"]
    assert monitor.stats()["integration_errors_by_name"] == {"langchain": 3}


def test_runs_that_never_end_do_not_accumulate(monitor: Monitor) -> None:
    """Starts without an end (a crashed callback chain) are bounded by ``MAX_RUNS``."""
    handler = RedlineCallbackHandler(monitor, agent="sales")
    for _ in range(MAX_RUNS + 50):
        handler.on_tool_start({"name": "t"}, "x", run_id=uuid.uuid4())
    assert handler.in_flight == MAX_RUNS


def test_the_async_handler_governs_an_async_run(
    monitor: Monitor,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """``ainvoke`` with the async handler records the same events, and a kill stops its tool."""
    handler = AsyncRedlineCallbackHandler(monitor, agent="sales", session_id="s-a")

    async def run(model: Any) -> Any:
        agent = create_agent(model, tools=[lookup])
        return await agent.ainvoke({"messages": [("user", "hi")]}, config={"callbacks": [handler]})

    out = asyncio.run(run(tool_then_answer()))
    assert out["messages"][-1].content == "done"
    assert [e["session_id"] for e in events_of(monitor, "llm_call")] == ["s-a", "s-a"]
    assert len(events_of(monitor, "tool_call")) == 1
    ran.clear()
    with pytest.raises(AgentKilledError):
        asyncio.run(run(tool_then_answer(while_thinking=lambda: kill_from_cli("sales"))))
    assert ran == []


# -- RedlineMiddleware on create_agent ---------------------------------------------------------


def test_the_middleware_records_model_and_tool_calls(
    monitor: Monitor, lookup: BaseTool, ran: list[str]
) -> None:
    """``create_agent(..., middleware=[RedlineMiddleware(...)])`` records both model calls and
    the tool call, with the thread as session."""
    agent = create_agent(
        tool_then_answer(), tools=[lookup], middleware=[RedlineMiddleware(monitor, agent="mw")]
    )
    agent.invoke({"messages": [("user", "hi")]}, config={"configurable": {"thread_id": "th-1"}})
    assert ran == ["acme"]
    models = events_of(monitor, "llm_call")
    (call,) = events_of(monitor, "tool_call")
    assert [m["tokens_cached"] for m in models] == [100, 100]
    assert {m["session_id"] for m in models} == {"th-1"}
    assert models[-1]["model"] == "gpt-4o-2024-08-06"
    assert (call["tool"], call["status"], call["data"]["arguments"]) == (
        "lookup",
        "ok",
        {"q": "acme"},
    )


def test_the_middleware_stops_the_tool_after_a_cli_kill(
    monitor: Monitor,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """A kill from another process during the model call stops the tool with the stop exception."""
    model = tool_then_answer(while_thinking=lambda: kill_from_cli("mw"))
    agent = create_agent(model, tools=[lookup], middleware=[RedlineMiddleware(monitor, agent="mw")])
    with pytest.raises(AgentKilledError):
        agent.invoke({"messages": [("user", "hi")]})
    assert ran == []


def test_the_middleware_async_path_stops_the_model(
    monitor: Monitor, lookup: BaseTool, kill_from_cli: Callable[[str], None]
) -> None:
    """Under ``ainvoke`` the middleware's async hooks check too: a killed agent calls no model."""
    kill_from_cli("mw")
    model = tool_then_answer()
    agent = create_agent(model, tools=[lookup], middleware=[RedlineMiddleware(monitor, agent="mw")])
    with pytest.raises(AgentKilledError):
        asyncio.run(agent.ainvoke({"messages": [("user", "hi")]}))
    assert len(list(model.messages)) == 2


def test_a_remote_monitor_governs_a_langchain_run(
    monitor: Monitor, remote: Any, lookup: BaseTool, ran: list[str]
) -> None:
    """With a ``RemoteMonitor`` the events reach the server's store and a kill made on the
    server stops the next tool call."""
    handler = RedlineCallbackHandler(remote, agent="remote-agent")
    create_agent(tool_then_answer(), tools=[lookup]).invoke(
        {"messages": [("user", "hi")]}, config={"callbacks": [handler]}
    )
    assert remote.flush(5.0)
    assert len(events_of(monitor, "llm_call", agent="remote-agent")) == 2
    ran.clear()

    def kill_on_server() -> None:
        monitor.kill_agent("remote-agent", "from the server")

    with pytest.raises(AgentKilledError):
        create_agent(tool_then_answer(while_thinking=kill_on_server), tools=[lookup]).invoke(
            {"messages": [("user", "hi")]}, config={"callbacks": [handler]}
        )
    assert ran == []


def test_without_langchain_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``langchain_core`` says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "langchain_core", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.langchain")
    with pytest.raises(ImportError, match=r"pip install 'redline\[langchain\]'"):
        importlib.import_module("redline.integrations.langchain")
