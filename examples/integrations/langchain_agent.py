"""A LangChain v1 agent governed by Redline: the callback handler records every model and tool
call, and a kill made while the model thinks stops the tool it asked for before it runs.

Runs against nothing: the model is LangChain's ``GenericFakeChatModel`` scripted to call a tool
and then answer. With a real model, pass ``ChatOpenAI(...)`` (or any chat model) instead; the
one line that matters is ``config={"callbacks": [RedlineCallbackHandler(...)]}`` (or
``middleware=[RedlineMiddleware(...)]`` in ``create_agent``).

    python examples/integrations/langchain_agent.py
"""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from redline import AgentStoppedError, Monitor
from redline.integrations.langchain import RedlineCallbackHandler

USAGE: Any = {
    "input_tokens": 900,
    "output_tokens": 40,
    "total_tokens": 940,
    "input_token_details": {"cache_read": 768},
}


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that accepts tools, as ``create_agent`` requires."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def scripted() -> ScriptedModel:
    call = AIMessage(
        "",
        tool_calls=[{"name": "refund", "args": {"order": "A-17"}, "id": "c1"}],
        usage_metadata=USAGE,
        response_metadata={"model_name": "gpt-4o"},
    )
    answer = AIMessage(
        "Refunded A-17.", usage_metadata=USAGE, response_metadata={"model_name": "gpt-4o"}
    )
    return ScriptedModel(messages=iter([call, answer]))


refunds: list[str] = []


@tool
def refund(order: str) -> str:
    """Refund an order."""
    refunds.append(order)
    return f"refunded {order}"


def main() -> None:
    with Monitor() as monitor:
        handler = RedlineCallbackHandler(monitor, agent="support-agent")
        config: Any = {"callbacks": [handler], "configurable": {"thread_id": "ticket-42"}}

        out = create_agent(scripted(), tools=[refund]).invoke(
            {"messages": [("user", "refund A-17")]}, config
        )
        print("agent said:", out["messages"][-1].content, "| refunds:", refunds)

        monitor.kill_agent("support-agent", reason="refund storm")  # or: redline kill support-agent
        try:
            create_agent(scripted(), tools=[refund]).invoke(
                {"messages": [("user", "again")]}, config
            )
        except AgentStoppedError as stop:
            print("stopped:", stop, "| refunds still:", refunds)

        monitor.flush()
        for e in reversed(monitor.get_events(limit=10)):
            if e["event_type"] in ("llm_call", "tool_call"):
                print(
                    f"recorded {e['event_type']} session={e['session_id']} model={e.get('model')} "
                    f"tool={e.get('tool')} tokens_in={e.get('tokens_in')} cached={e.get('tokens_cached')}"
                )


if __name__ == "__main__":
    main()
