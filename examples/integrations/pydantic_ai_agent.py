"""A Pydantic AI agent governed by Redline: the capability records every model request and tool
call, and a kill made while the model thinks stops the tool it asked for before it runs.

Runs against nothing: the model is Pydantic AI's ``FunctionModel``, scripted to call a tool and
then answer, reporting usage with cached input as a provider would. With a real model, pass
``"openai:gpt-4o"`` (or any model) instead; the one line that matters is
``capabilities=[RedlineCapability(monitor)]``.

    python examples/integrations/pydantic_ai_agent.py
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from redline import AgentStoppedError, Monitor
from redline.integrations.pydantic_ai import RedlineCapability


def scripted(while_thinking: Callable[[], None] | None = None) -> FunctionModel:
    """Ask for ``refund(order="A-17")``, then answer once the tool's result is in."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if while_thinking is not None:
            while_thinking()
        usage = RequestUsage(input_tokens=900, output_tokens=40, cache_read_tokens=768)
        asked = any(
            isinstance(part, ToolCallPart) for m in messages for part in getattr(m, "parts", ())
        )
        if not asked:
            return ModelResponse(parts=[ToolCallPart("refund", {"order": "A-17"})], usage=usage)
        return ModelResponse(parts=[TextPart("Refunded A-17.")], usage=usage)

    return FunctionModel(respond, model_name="gpt-4o")


refunds: list[str] = []


def refund(order: str) -> str:
    """Refund an order."""
    refunds.append(order)
    return f"refunded {order}"


def main() -> None:
    with Monitor() as monitor:
        governed = RedlineCapability(monitor, session_id="ticket-42")
        agent = Agent(scripted(), name="support-agent", tools=[refund], capabilities=[governed])
        print("agent said:", agent.run_sync("refund A-17").output, "| refunds:", refunds)

        def kill() -> None:  # or, from any shell on the same store: redline kill support-agent
            monitor.kill_agent("support-agent", reason="refund storm")

        again = Agent(
            scripted(while_thinking=kill),
            name="support-agent",
            tools=[refund],
            capabilities=[governed],
        )
        try:
            again.run_sync("refund A-17 again")
        except AgentStoppedError as stop:
            print("stopped:", stop, "| refunds still:", refunds)

        monitor.flush()
        for e in reversed(monitor.get_events(limit=10)):
            if e["event_type"] in ("llm_call", "tool_call"):
                print(
                    f"recorded {e['event_type']} session={e['session_id']} model={e.get('model')} "
                    f"tool={e.get('tool')} tokens_in={e.get('tokens_in')} "
                    f"cached={e.get('tokens_cached')}"
                )


if __name__ == "__main__":
    main()
