"""Specification of ``redline.integrations.crewai``: ``instrument(monitor)`` on a real CrewAI crew
whose agent talks to a local server speaking the OpenAI chat API (CrewAI's own OpenAI provider,
no network) and calls a real tool.

CrewAI pins an older openai and pydantic than the main venv: run with ``make test-crewai``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

# CrewAI phones home unless told not to; set here, after the skip, so that a skipped module in
# another venv never turns the OpenTelemetry SDK off for the rest of the session.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from crewai import LLM, Agent, Crew, Task
from crewai.events import crewai_event_bus
from crewai.hooks import get_before_llm_call_hooks, get_before_tool_call_hooks
from crewai.llms.base_llm import BaseLLM
from crewai.tools import BaseTool, tool
from pydantic import Field

import redline
from redline import AgentKilledError, BudgetExceededError, Monitor, parse_config
from redline.integrations.crewai import CrewAIInstrumentation, CrewStopped, instrument

from .conftest import FakeLLM, Received, Reply, events_of

# CrewAI reads its own deprecated Agent fields (``function_calling_llm``,
# ``allow_code_execution``) while building an agent: its warnings, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")


@pytest.fixture(autouse=True)
def _crewai_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CrewAI writes its task-output database and keys under the XDG data dir: keep them in
    the test's temp dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def ran() -> list[str]:
    """What the tool body did: it appends its argument here."""
    return []


@pytest.fixture
def lookup(ran: list[str]) -> BaseTool:
    @tool("lookup")
    def lookup(q: str) -> str:
        """Look a customer up."""
        ran.append(q)
        return f"found {q}"

    return lookup


@pytest.fixture
def governed(monitor: Monitor) -> Iterator[CrewAIInstrumentation]:
    """``instrument(monitor)``, uninstalled after the test (the hooks are process-wide)."""
    handle = instrument(monitor)
    yield handle
    handle.uninstall()


#: CrewAI's OpenAI provider keeps an SDK client per LLM and never closes it; the tests do, so no
#: socket is left for the garbage collector to warn about.
_LLMS: list[Any] = []


@pytest.fixture(autouse=True)
def _close_llm_clients() -> Iterator[None]:
    yield
    while _LLMS:
        client = getattr(_LLMS.pop(), "_client", None)
        if client is not None:
            client.close()


def crew_of(fake: FakeLLM, *tools: BaseTool, role: str = "researcher", retries: int = 2) -> Crew:
    """A one-agent, one-task crew whose model is CrewAI's OpenAI provider on ``fake``."""
    llm = LLM(model="gpt-4o-mini", base_url=fake.base_url + "/v1", api_key="sk-test")
    _LLMS.append(llm)
    agent = Agent(
        role=role,
        goal="answer questions about customers",
        backstory="a careful analyst",
        llm=llm,
        tools=list(tools),
        max_retry_limit=retries,
    )
    task = Task(description="Who is acme?", expected_output="one line", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def tool_then_answer(fake: FakeLLM) -> None:
    fake.reply(Reply(tool_calls=[("lookup", {"q": "acme"})]), Reply(text="acme is a customer"))


def while_thinking(fake: FakeLLM, action: Callable[[], None]) -> None:
    """Run ``action`` inside the server while it answers the first model request (the agent
    is then blocked waiting for the model)."""
    answer = fake._next

    def first(received: Received) -> Reply:
        fake._next = answer  # type: ignore[method-assign]
        action()
        return answer(received)

    fake._next = first  # type: ignore[method-assign]


def test_a_crew_run_records_model_and_tool_calls(
    monitor: Monitor,
    governed: CrewAIInstrumentation,
    fake_llm: FakeLLM,
    lookup: BaseTool,
    ran: list[str],
) -> None:
    """A crew whose agent calls a tool then answers records two ``llm_call`` (model, tokens
    with cached and reasoning, latency, status) and one ``tool_call`` (name, arguments,
    latency, status), under the CrewAI agent's role, in the crew's id as session."""
    tool_then_answer(fake_llm)
    crew = crew_of(fake_llm, lookup)
    out = crew.kickoff()
    assert out.raw == "acme is a customer"
    assert ran == ["acme"]
    models = events_of(monitor, "llm_call")
    (call,) = events_of(monitor, "tool_call")
    assert len(models) == 2
    for ev in models:
        assert (ev["agent"], ev["session_id"], ev["model"], ev["status"]) == (
            "researcher",
            str(crew.id),
            "gpt-4o-mini",
            "ok",
        )
        assert (ev["tokens_in"], ev["tokens_out"], ev["tokens_cached"]) == (120, 30, 100)
        assert ev["tokens_reasoning"] == 10
        assert ev["latency_ms"] >= 0
        assert ev["data"]["integration"] == "crewai"
    assert {m["data"].get("finish_reason") for m in models} == {"tool_calls", "stop"}
    assert (call["agent"], call["session_id"], call["tool"], call["status"]) == (
        "researcher",
        str(crew.id),
        "lookup",
        "ok",
    )
    assert call["data"]["arguments"] == {"q": "acme"}
    assert call["latency_ms"] >= 0
    assert fake_llm.count("/chat/completions") == 2


def test_arguments_and_context_name_who_acts(
    monitor: Monitor, fake_llm: FakeLLM, lookup: BaseTool
) -> None:
    """``agent=`` overrides the CrewAI role; a ``redline.context()`` session overrides the
    crew id; its tenant is kept."""
    handle = instrument(monitor, agent="sales")
    try:
        tool_then_answer(fake_llm)
        with redline.context(session_id="ticket-9", tenant="acme-corp"):
            crew_of(fake_llm, lookup).kickoff()
    finally:
        handle.uninstall()
    events = events_of(monitor, "llm_call") + events_of(monitor, "tool_call")
    assert len(events) == 3
    assert {(e["agent"], e["session_id"], e["tenant"]) for e in events} == {
        ("sales", "ticket-9", "acme-corp")
    }


def test_a_cli_kill_during_the_model_call_stops_the_tool_before_it_runs(
    monitor: Monitor,
    governed: CrewAIInstrumentation,
    fake_llm: FakeLLM,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """Another process kills the agent while the model is thinking: the tool call the model
    asked for is stopped, its body never runs, and ``kickoff()`` raises the stop (CrewAI's
    ``HookAborted``, as :class:`CrewStopped`, with the monitor's ``AgentKilledError`` as
    cause); no further model request is made."""
    tool_then_answer(fake_llm)
    while_thinking(fake_llm, lambda: kill_from_cli("researcher"))
    with pytest.raises(CrewStopped) as stopped:
        crew_of(fake_llm, lookup).kickoff()
    cause = stopped.value.__cause__
    assert isinstance(cause, AgentKilledError)
    assert stopped.value.stop is cause
    assert (cause.scope, cause.target) == ("agent", "researcher")
    assert ran == []
    assert fake_llm.count("/chat/completions") == 1
    crewai_event_bus.flush()
    assert [e["tool"] for e in events_of(monitor, "tool_call")] == []
    assert len(events_of(monitor, "llm_call")) == 1


def test_a_killed_agent_makes_no_model_request(
    monitor: Monitor,
    governed: CrewAIInstrumentation,
    fake_llm: FakeLLM,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """A kill already in force stops the crew at its first model call: the request is never
    sent, CrewAI does not retry the task, and nothing is recorded as an error."""
    kill_from_cli("researcher")
    with pytest.raises(CrewStopped) as stopped:
        crew_of(fake_llm, lookup).kickoff()
    assert isinstance(stopped.value.__cause__, AgentKilledError)
    assert fake_llm.count() == 0
    assert ran == []
    crewai_event_bus.flush()
    assert events_of(monitor, "llm_call") == []
    assert events_of(monitor, "error") == []


class ScriptedReActLLM(BaseLLM):
    """A custom CrewAI LLM (its documented extension point) without native tool calling: it
    answers in CrewAI's text format, so the agent takes its ReAct tool path."""

    replies: list[str] = Field(default_factory=list)
    while_thinking: Any = None

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        if self.while_thinking is not None:
            action, self.while_thinking = self.while_thinking, None
            action()
        return self.replies.pop(0)

    def supports_function_calling(self) -> bool:
        return False


def test_a_cli_kill_stops_the_tool_of_a_react_agent_on_a_custom_llm(
    governed: CrewAIInstrumentation,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """On CrewAI's text (ReAct) tool path, with a custom ``BaseLLM``, a kill made while the
    model thinks stops the tool the model named before its body runs."""
    llm = ScriptedReActLLM(
        model="scripted",
        replies=[
            'Thought: look it up\nAction: lookup\nAction Input: {"q": "acme"}',
            "Thought: done\nFinal Answer: acme is a customer",
        ],
        while_thinking=lambda: kill_from_cli("analyst"),
    )
    agent = Agent(role="analyst", goal="g", backstory="b", llm=llm, tools=[lookup])
    crew = Crew(agents=[agent], tasks=[Task(description="Who?", expected_output="x", agent=agent)])
    with pytest.raises(CrewStopped) as stopped:
        crew.kickoff()
    assert isinstance(stopped.value.__cause__, AgentKilledError)
    assert ran == []
    assert len(llm.replies) == 1  # the answer was never asked for


def test_a_budget_reserves_before_each_model_call_and_stops_the_one_that_would_overrun(
    fake_llm: FakeLLM, lookup: BaseTool, ran: list[str]
) -> None:
    """With a budget, each model call reserves its estimate in the before-LLM hook and the
    completion commits its usage; the call that would overrun never reaches the server and
    the crew stops with ``BudgetExceededError`` as the cause."""
    config = parse_config(
        {
            "pricing": {"table": "none", "models": {"gpt-4o-mini": {"input": 3, "output": 15}}},
            "budgets": [{"name": "tiny", "limit_usd": 0.001, "scope": "agent"}],
        }
    )
    with Monitor(config) as monitor:
        handle = instrument(monitor)
        try:
            tool_then_answer(fake_llm)
            with pytest.raises(CrewStopped) as stopped:
                crew_of(fake_llm, lookup).kickoff()
        finally:
            handle.uninstall()
        crewai_event_bus.flush()
        assert isinstance(stopped.value.__cause__, BudgetExceededError)
        assert fake_llm.count() == 1
        assert ran == ["acme"]
        (ev,) = events_of(monitor, "llm_call")
        [state] = monitor.budgets()
        assert state.spent_usd == pytest.approx(ev["cost_usd"])
        assert ev["cost_usd"] > 0
        assert state.reserved_usd == 0.0


def test_a_failure_while_recording_never_reaches_the_crew(
    monitor: Monitor,
    governed: CrewAIInstrumentation,
    fake_llm: FakeLLM,
    lookup: BaseTool,
    ran: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If recording fails the crew completes as if Redline were not there, and every
    swallowed failure is counted in ``monitor.stats()``."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(monitor, "record", broken)
    tool_then_answer(fake_llm)
    out = crew_of(fake_llm, lookup).kickoff()
    assert out.raw == "acme is a customer"
    assert ran == ["acme"]
    assert monitor.stats()["integration_errors_by_name"] == {"crewai": 3}


def test_a_failing_tool_is_recorded_with_status_error(
    monitor: Monitor, governed: CrewAIInstrumentation, fake_llm: FakeLLM
) -> None:
    """A tool that raises is recorded as a ``tool_call`` with status ``error`` (CrewAI hands
    the error back to the model, which then answers)."""

    @tool("lookup")
    def flaky(q: str) -> str:
        """Always fails."""
        raise ValueError(f"no {q}")

    tool_then_answer(fake_llm)
    crew_of(fake_llm, flaky).kickoff()
    (ev,) = events_of(monitor, "tool_call")
    assert (ev["tool"], ev["status"], ev["data"]["error_type"]) == ("lookup", "error", "ValueError")


def test_a_model_error_is_recorded(
    monitor: Monitor, governed: CrewAIInstrumentation, fake_llm: FakeLLM
) -> None:
    """A model request that fails is recorded as ``error`` and the failure reaches the caller."""
    fake_llm.reply(Reply(status=500))
    with pytest.raises(Exception, match="scripted failure"):
        crew_of(fake_llm, retries=0).kickoff()
    crewai_event_bus.flush()
    (ev,) = events_of(monitor, "error")
    assert (ev["agent"], ev["model"], ev["status"]) == ("researcher", "gpt-4o-mini", "error")
    assert "scripted failure" in ev["data"]["error"]
    assert events_of(monitor, "llm_call") == []


def test_instrument_is_idempotent_and_uninstall_removes_it(
    monitor: Monitor,
    fake_llm: FakeLLM,
    lookup: BaseTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """A second ``instrument`` returns the same handle (each call recorded once); after
    ``uninstall()`` the hooks are gone: nothing is recorded and a kill no longer stops it."""
    before = len(get_before_llm_call_hooks()), len(get_before_tool_call_hooks())
    handle = instrument(monitor)
    assert instrument(monitor) is handle
    assert len(get_before_llm_call_hooks()) == before[0] + 1
    tool_then_answer(fake_llm)
    crew_of(fake_llm, lookup).kickoff()
    assert len(events_of(monitor, "llm_call")) == 2
    handle.uninstall()
    assert not handle.installed
    assert (len(get_before_llm_call_hooks()), len(get_before_tool_call_hooks())) == before
    kill_from_cli("researcher")
    ran.clear()
    tool_then_answer(fake_llm)
    crew_of(fake_llm, lookup).kickoff()
    assert ran == ["acme"]
    assert len(events_of(monitor, "llm_call")) == 2
    again = instrument(monitor)
    assert again is not handle
    again.uninstall()


def test_a_remote_monitor_governs_a_crew(
    monitor: Monitor, remote: Any, fake_llm: FakeLLM, lookup: BaseTool, ran: list[str]
) -> None:
    """With a ``RemoteMonitor`` the events reach the server's store, and a kill made on the
    server stops the crew's tool call."""
    handle = instrument(remote)
    try:
        tool_then_answer(fake_llm)
        crew_of(fake_llm, lookup, role="remote-agent").kickoff()
        assert remote.flush(5.0)
        assert len(events_of(monitor, "llm_call", agent="remote-agent")) == 2
        assert len(events_of(monitor, "tool_call", agent="remote-agent")) == 1
        ran.clear()
        tool_then_answer(fake_llm)
        while_thinking(fake_llm, lambda: monitor.kill_agent("remote-agent", "from the server"))
        with pytest.raises(CrewStopped):
            crew_of(fake_llm, lookup, role="remote-agent").kickoff()
        assert ran == []
    finally:
        handle.uninstall()


def test_without_crewai_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``crewai`` says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "crewai", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.crewai")
    with pytest.raises(ImportError, match=r"pip install 'redline\[crewai\]'"):
        importlib.import_module("redline.integrations.crewai")
