"""An OpenAI Agents SDK agent governed by Redline: the run hooks record every model and tool
call, a kill stops the agent before its next step, and the tracing processor records a tripped
guardrail.

Runs against nothing: the model is the SDK's own ``agents.testing.ScriptedModel``, scripted to
call a tool and then answer. With a real model, give the agent ``model="gpt-4.1"`` instead; the
lines that matter are ``hooks=RedlineRunHooks(monitor)`` and ``instrument(monitor)``.

    python examples/integrations/openai_agents_agent.py
"""

from __future__ import annotations

import agents
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    RunConfig,
    Runner,
    function_tool,
    input_guardrail,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from redline import AgentStoppedError, Monitor
from redline.integrations.openai_agents import RedlineRunHooks, RedlineTracingProcessor


class Scripted(ScriptedModel):
    """The SDK's scripted model, named like the SDK's OpenAI models name theirs."""

    model = "gpt-4.1"


USAGE = Usage(
    requests=1,
    input_tokens=900,
    output_tokens=40,
    total_tokens=940,
    input_tokens_details=InputTokensDetails.model_validate(
        {"cached_tokens": 768, "cache_write_tokens": 0}
    ),
    output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
)


def scripted() -> Scripted:
    call = function_call("refund", {"order": "A-17"}, call_id="c1")
    return Scripted(
        [
            ModelStep(output=[call], usage=USAGE),
            ModelStep(output=[assistant_message("Refunded A-17.")], usage=USAGE),
        ]
    )


refunds: list[str] = []


@function_tool
def refund(order: str) -> str:
    """Refund an order."""
    refunds.append(order)
    return f"refunded {order}"


@input_guardrail(run_in_parallel=False)
def no_card_numbers(ctx: object, agent: object, text: object) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(
        output_info="card number", tripwire_triggered="4111" in str(text)
    )


def main() -> None:
    with Monitor() as monitor:
        # Offline, Redline's processor replaces the SDK's exporter; with an OpenAI key,
        # instrument(monitor) adds it alongside instead.
        agents.set_trace_processors([RedlineTracingProcessor(monitor)])
        hooks = RedlineRunHooks(monitor)  # the agent's name is the SDK agent's
        config = RunConfig(group_id="ticket-42")  # the trace group is the session
        agent = Agent(
            name="support-agent",
            model=scripted(),
            tools=[refund],
            input_guardrails=[no_card_numbers],
        )

        out = Runner.run_sync(agent, "refund A-17", hooks=hooks, run_config=config)
        print("agent said:", out.final_output, "| refunds:", refunds)

        try:
            Runner.run_sync(agent, "my card is 4111 1111", hooks=hooks, run_config=config)
        except InputGuardrailTripwireTriggered:
            print("guardrail tripped")

        monitor.kill_agent("support-agent", reason="refund storm")  # or: redline kill support-agent
        try:
            agent = agent.clone(model=scripted())
            Runner.run_sync(agent, "again", hooks=hooks, run_config=config)
        except AgentStoppedError as stop:
            print("stopped:", stop, "| refunds still:", refunds)

        monitor.flush()
        for e in reversed(monitor.get_events(limit=20)):
            if e["event_type"] in ("llm_call", "tool_call", "guardrail_trigger"):
                print(
                    f"recorded {e['event_type']} session={e['session_id']} model={e.get('model')} "
                    f"tool={e.get('tool')} tokens_in={e.get('tokens_in')} "
                    f"cached={e.get('tokens_cached')} guardrail={e['data'].get('guardrail')}"
                )


if __name__ == "__main__":
    main()
