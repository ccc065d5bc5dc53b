"""Specification of ``redline.integrations.openai_agents``: the run hooks and the tracing
processor on real ``Runner`` runs, with the SDK's own ``agents.testing.ScriptedModel`` scripted
to call a real function tool and then answer (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("agents")

import agents
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    RunConfig,
    RunContextWrapper,
    Runner,
    UserError,
    function_tool,
    handoff,
    input_guardrail,
)
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from agents.tool import FunctionTool
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import redline
from redline import AgentKilledError, Monitor
from redline.integrations.openai_agents import (
    MAX_IN_FLIGHT,
    RedlineRunHooks,
    RedlineTracingProcessor,
    instrument,
)

from .conftest import events_of

MODEL = "gpt-4.1-2025-04-14"


class Scripted(ScriptedModel):
    """The SDK's scripted model, named the way the SDK's OpenAI models name theirs."""

    model = MODEL


def usage() -> Usage:
    """What a provider reports: 120 input tokens (100 from cache, 5 written), 30 out (10
    reasoning)."""
    return Usage(
        requests=1,
        input_tokens=120,
        output_tokens=30,
        total_tokens=150,
        input_tokens_details=InputTokensDetails.model_validate(
            {"cached_tokens": 100, "cache_write_tokens": 5}
        ),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=10),
    )


def calls_tool(name: str = "lookup", **args: Any) -> ModelStep:
    return ModelStep(
        output=[function_call(name, args or {"q": "acme"}, call_id="call-1")], usage=usage()
    )


def answers(text: str = "done") -> ModelStep:
    return ModelStep(output=[assistant_message(text)], usage=usage())


def while_thinking(hook: Callable[[], None], step: ModelStep) -> ModelStep:
    """A step that runs ``hook`` while the model "thinks" (where a test kills the agent)."""

    def respond(call: ModelCall) -> ModelStep:
        hook()
        return step

    return ModelStep.respond(respond)


def offline(**kw: Any) -> RunConfig:
    """A run config with the SDK's tracing off (nothing exported)."""
    return RunConfig(tracing_disabled=True, **kw)


def run(agent: Agent[Any], hooks: Any, config: RunConfig | None = None) -> Any:
    return asyncio.run(
        Runner.run(agent, "who is acme?", hooks=hooks, run_config=config or offline())
    )


@pytest.fixture(autouse=True)
def no_sdk_tracing() -> Iterator[None]:
    """The SDK's tracing is off unless a test turns it on with :func:`sdk_tracing`."""
    agents.set_tracing_disabled(True)
    yield
    agents.set_tracing_disabled(True)


@pytest.fixture
def sdk_tracing() -> Iterator[None]:
    """SDK tracing on, with no processor but the ones a test adds (the default one would export
    to OpenAI); the processors are restored afterwards."""
    multi = getattr(agents.tracing.get_trace_provider(), "_multi_processor", None)
    before = list(getattr(multi, "_processors", ()))
    agents.set_trace_processors([])
    agents.set_tracing_disabled(False)
    yield
    agents.set_tracing_disabled(True)
    agents.set_trace_processors(before)


@pytest.fixture
def ran() -> list[str]:
    """What the tool body did: it appends its argument here."""
    return []


@pytest.fixture
def lookup(ran: list[str]) -> FunctionTool:
    @function_tool
    def lookup(q: str) -> str:
        """Look a customer up."""
        ran.append(q)
        return f"found {q}"

    return lookup


# -- the run hooks ------------------------------------------------------------------------------


def test_a_run_records_model_and_tool_calls(
    monitor: Monitor, lookup: FunctionTool, ran: list[str]
) -> None:
    """An agent that calls a tool then answers records two ``llm_call`` (model, tokens with
    cached, cache-write and reasoning, latency) and one ``tool_call`` (name, arguments, status),
    under the SDK agent's name and the hooks' session."""
    hooks = RedlineRunHooks(monitor, session_id="s-1")
    agent = Agent(name="sales", model=Scripted([calls_tool(), answers()]), tools=[lookup])
    assert run(agent, hooks).final_output == "done"
    assert ran == ["acme"]
    models = events_of(monitor, "llm_call")
    (call,) = events_of(monitor, "tool_call")
    assert len(models) == 2
    first = models[-1]
    assert (first["agent"], first["session_id"], first["model"]) == ("sales", "s-1", MODEL)
    assert (
        first["tokens_in"],
        first["tokens_out"],
        first["tokens_cached"],
        first["tokens_cache_write"],
        first["tokens_reasoning"],
    ) == (120, 30, 100, 5, 10)
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
    assert hooks.in_flight == 0


def test_identity_can_come_from_redline_context(monitor: Monitor, lookup: FunctionTool) -> None:
    """Inside ``redline.context(...)`` the events carry its session, user and tenant."""
    agent = Agent(name="sales", model=Scripted([calls_tool(), answers()]), tools=[lookup])
    with redline.context(session_id="ticket-9", user="ana", tenant="acme"):
        run(agent, RedlineRunHooks(monitor))
    found = {(e["session_id"], e["user"], e["tenant"]) for e in events_of(monitor, "tool_call")}
    found |= {(e["session_id"], e["user"], e["tenant"]) for e in events_of(monitor, "llm_call")}
    assert found == {("ticket-9", "ana", "acme")}


def test_a_cli_kill_during_the_model_call_stops_the_tool_before_it_runs(
    monitor: Monitor,
    lookup: FunctionTool,
    ran: list[str],
    kill_from_cli: Callable[[str], None],
) -> None:
    """Another process kills the agent while the model is thinking; the tool call it asked for
    is stopped (the SDK wraps the stop in ``UserError``, its cause) and the body never runs."""
    model = Scripted([while_thinking(lambda: kill_from_cli("sales"), calls_tool()), answers()])
    agent = Agent(name="sales", model=model, tools=[lookup])
    with pytest.raises(UserError) as wrapped:
        run(agent, RedlineRunHooks(monitor))
    stop = wrapped.value.__cause__
    assert isinstance(stop, AgentKilledError)
    assert stop.target == "sales"
    assert ran == []
    assert events_of(monitor, "tool_call") == []
    assert model.remaining_steps == 1  # the answer was never asked for


def test_a_killed_agent_makes_no_model_call(
    monitor: Monitor, lookup: FunctionTool, kill_from_cli: Callable[[str], None]
) -> None:
    """A kill already in force stops the run at its first model call with the stop itself."""
    kill_from_cli("sales")
    model = Scripted([calls_tool(), answers()])
    with pytest.raises(AgentKilledError):
        run(Agent(name="sales", model=model, tools=[lookup]), RedlineRunHooks(monitor))
    assert model.calls == ()
    assert events_of(monitor, "llm_call") == []


def test_a_streamed_run_is_stopped_too(
    monitor: Monitor, lookup: FunctionTool, kill_from_cli: Callable[[str], None]
) -> None:
    """``Runner.run_streamed`` calls the same hooks: a killed agent's stream ends with the stop."""
    kill_from_cli("sales")
    model = Scripted([calls_tool(), answers()])
    agent = Agent(name="sales", model=model, tools=[lookup])

    async def consume() -> None:
        result = Runner.run_streamed(
            agent, "hi", hooks=RedlineRunHooks(monitor), run_config=offline()
        )
        async for _ in result.stream_events():
            pass

    with pytest.raises(AgentKilledError):
        asyncio.run(consume())
    assert model.calls == ()


def test_a_failing_tool_is_recorded_with_status_error(monitor: Monitor) -> None:
    """A tool that raises is turned by the SDK into a message for the model; the hooks still
    record its ``tool_call`` with status ``error``, and the run goes on."""

    @function_tool
    def flaky(q: str) -> str:
        """Always fails."""
        raise ValueError(f"no {q}")

    agent = Agent(name="sales", model=Scripted([calls_tool("flaky"), answers()]), tools=[flaky])
    assert run(agent, RedlineRunHooks(monitor)).final_output == "done"
    (ev,) = events_of(monitor, "tool_call")
    assert (ev["tool"], ev["status"]) == ("flaky", "error")


def test_a_handoff_is_recorded_and_each_agent_keeps_its_name(monitor: Monitor) -> None:
    """A handoff is a ``handoff`` event from one SDK agent to the other, and each agent's model
    calls are recorded under its own name."""
    billing = Agent(name="billing", model=Scripted([answers("refunded")]))
    triage = Agent(
        name="triage",
        model=Scripted([calls_tool("transfer_to_billing", reason="refund")]),
        handoffs=[handoff(billing)],
    )
    assert run(triage, RedlineRunHooks(monitor, session_id="s-h")).final_output == "refunded"
    (ev,) = events_of(monitor, "handoff")
    assert (ev["agent"], ev["session_id"], ev["data"]["from_agent"], ev["data"]["to_agent"]) == (
        "triage",
        "s-h",
        "triage",
        "billing",
    )
    assert sorted(e["agent"] for e in events_of(monitor, "llm_call")) == ["billing", "triage"]


def test_a_failure_while_recording_never_reaches_the_agent(
    monitor: Monitor, lookup: FunctionTool, ran: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If recording fails the run completes as if Redline were not there, and every swallowed
    failure is counted."""

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(monitor, "record", broken)
    agent = Agent(name="sales", model=Scripted([calls_tool(), answers()]), tools=[lookup])
    assert run(agent, RedlineRunHooks(monitor)).final_output == "done"
    assert ran == ["acme"]
    assert monitor.stats()["integration_errors_by_name"] == {"openai_agents": 3}


def test_calls_that_never_end_do_not_accumulate(monitor: Monitor) -> None:
    """Model calls started without an end (a failed model call: no hook sees it) are bounded by
    ``MAX_IN_FLIGHT``."""
    hooks = RedlineRunHooks(monitor)
    agent = Agent(name="sales")

    runs = [RunContextWrapper(context=None) for _ in range(MAX_IN_FLIGHT + 50)]

    async def start_many() -> None:
        for context in runs:
            await hooks.on_llm_start(context, agent, None, [])

    asyncio.run(start_many())
    assert hooks.in_flight == MAX_IN_FLIGHT


def test_a_remote_monitor_governs_a_run(
    monitor: Monitor, remote: Any, lookup: FunctionTool, ran: list[str]
) -> None:
    """With a ``RemoteMonitor`` the events reach the server's store and a kill made on the
    server stops the next tool call."""
    hooks = RedlineRunHooks(remote, agent="remote-agent")
    run(Agent(name="a", model=Scripted([calls_tool(), answers()]), tools=[lookup]), hooks)
    assert remote.flush(5.0)
    assert len(events_of(monitor, "llm_call", agent="remote-agent")) == 2
    ran.clear()

    def kill_on_server() -> None:
        monitor.kill_agent("remote-agent", "from the server")

    model = Scripted([while_thinking(kill_on_server, calls_tool()), answers()])
    with pytest.raises(UserError) as wrapped:
        run(Agent(name="a", model=model, tools=[lookup]), hooks)
    assert isinstance(wrapped.value.__cause__, AgentKilledError)
    assert ran == []


# -- the tracing processor ----------------------------------------------------------------------


@pytest.mark.usefixtures("sdk_tracing")
def test_a_tripped_input_guardrail_is_recorded_in_the_trace_group(monitor: Monitor) -> None:
    """A tripped input guardrail is a ``guardrail_trigger`` event of the agent it guards, in the
    trace's ``group_id`` as session; the SDK's tripwire exception still reaches the caller."""

    @input_guardrail(run_in_parallel=False)
    def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"why": "secret"}, tripwire_triggered=True)

    agents.add_trace_processor(RedlineTracingProcessor(monitor))
    model = Scripted([answers()])
    agent = Agent(name="sales", model=model, input_guardrails=[no_secrets])
    with pytest.raises(InputGuardrailTripwireTriggered):
        run(agent, None, RunConfig(group_id="conv-7"))
    (ev,) = events_of(monitor, "guardrail_trigger")
    assert (ev["agent"], ev["session_id"], ev["status"], ev["data"]["guardrail"]) == (
        "sales",
        "conv-7",
        "triggered",
        "no_secrets",
    )
    assert len(ev["trace_id"]) == 32
    assert events_of(monitor, "error") == []  # the tripwire's echo on the turn span is this trip
    assert model.calls == ()


@pytest.mark.usefixtures("sdk_tracing")
def test_with_tracing_on_the_group_is_the_session_and_the_trace_is_shared(
    monitor: Monitor, lookup: FunctionTool
) -> None:
    """While the SDK traces, the hooks take the trace's ``group_id`` as session and its trace id,
    so a run's model calls, tool calls and guardrail trips line up."""
    agent = Agent(name="sales", model=Scripted([calls_tool(), answers()]), tools=[lookup])
    run(agent, RedlineRunHooks(monitor), RunConfig(group_id="conv-8"))
    steps = events_of(monitor, "llm_call") + events_of(monitor, "tool_call")
    assert len(steps) == 3
    assert {e["session_id"] for e in steps} == {"conv-8"}
    assert len({e["trace_id"] for e in steps}) == 1


@pytest.mark.usefixtures("sdk_tracing")
def test_with_tracing_on_a_failing_tool_takes_its_error_from_the_function_span(
    monitor: Monitor,
) -> None:
    """A tool whose own failure function words the message is still recorded as an error: its
    function span carries the failure."""

    def explain(ctx: Any, error: Exception) -> str:
        return f"sorry: {error}"

    @function_tool(failure_error_function=explain)
    def flaky(q: str) -> str:
        """Always fails."""
        raise ValueError(f"no {q}")

    agent = Agent(name="sales", model=Scripted([calls_tool("flaky"), answers()]), tools=[flaky])
    run(agent, RedlineRunHooks(monitor), RunConfig())
    (ev,) = events_of(monitor, "tool_call")
    assert (ev["tool"], ev["status"]) == ("flaky", "error")
    assert ev["data"]["error"] == "Error running tool (non-fatal)"


@pytest.mark.usefixtures("sdk_tracing")
def test_a_failed_model_call_is_recorded_once(monitor: Monitor) -> None:
    """No hook sees a model that fails; the processor records it as one ``error`` (not again for
    the agent span it fails), and the provider's exception reaches the caller."""
    agents.add_trace_processor(RedlineTracingProcessor(monitor))
    model = Scripted([ConnectionError("provider down")], emit_traces=True)
    with pytest.raises(ConnectionError):
        run(Agent(name="sales", model=model), RedlineRunHooks(monitor), RunConfig(group_id="g"))
    (ev,) = events_of(monitor, "error")
    assert (ev["agent"], ev["session_id"], ev["status"], ev["data"]["span"]) == (
        "sales",
        "g",
        "error",
        "generation",
    )
    assert ev["data"]["error_data"]["name"] == "ConnectionError"


@pytest.mark.usefixtures("sdk_tracing")
def test_the_processor_never_raises_into_the_sdk(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor whose recording fails leaves the run as it was, and counts the failure."""

    @input_guardrail(run_in_parallel=False)
    def tripped(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=True)

    processor = RedlineTracingProcessor(monitor)

    def broken(event: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(monitor, "record", broken)
    agents.add_trace_processor(processor)
    with pytest.raises(InputGuardrailTripwireTriggered):
        run(
            Agent(name="sales", model=Scripted([answers()]), input_guardrails=[tripped]),
            None,
            RunConfig(),
        )
    assert monitor.stats()["integration_errors_by_name"] == {"openai_agents": 1}


@pytest.mark.usefixtures("sdk_tracing")
def test_instrument_registers_one_processor_per_monitor(monitor: Monitor) -> None:
    """``instrument`` adds the processor to the SDK's tracing and returns the same one when
    called again, so nothing is recorded twice."""

    @input_guardrail(run_in_parallel=False)
    def tripped(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=True)

    first = instrument(monitor)
    assert instrument(monitor) is first
    with pytest.raises(InputGuardrailTripwireTriggered):
        run(
            Agent(name="sales", model=Scripted([answers()]), input_guardrails=[tripped]),
            None,
            RunConfig(),
        )
    assert len(events_of(monitor, "guardrail_trigger")) == 1


def test_without_the_sdk_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing the integration without ``agents`` says which extra to install."""
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "agents", None)
    monkeypatch.delitem(sys.modules, "redline.integrations.openai_agents")
    with pytest.raises(ImportError, match=r"pip install 'redline\[openai-agents\]'"):
        importlib.import_module("redline.integrations.openai_agents")
