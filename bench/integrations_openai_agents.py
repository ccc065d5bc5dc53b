"""OpenAI Agents SDK rows for ``bench/integrations.py`` (see its docstring for ``CASES``).

* model call: one ``Runner.run`` whose scripted model answers at once (one model call, SDK
  tracing off), without hooks, with an empty ``RunHooks`` subclass, and with ``RedlineRunHooks``;
  the Runner's own cost per run is large, so the median over rounds matters here.
* tool call: a function tool invoked the way the Runner invokes one, ``on_tool_start``, the tool
  body, ``on_tool_end``, on a real ``ToolContext``, without hooks, with empty ones and with
  Redline's; a whole run would add two model calls to every tool call.

The model is ``agents.testing.ScriptedModel``; one event loop serves every call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from agents import Agent, RunConfig, RunHooks, Runner, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message
from agents.tool_context import ToolContext
from agents.usage import Usage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from redline import Monitor
from redline.integrations.openai_agents import RedlineRunHooks

_LOOP = asyncio.new_event_loop()
_USAGE = Usage(
    requests=1,
    input_tokens=100,
    output_tokens=20,
    total_tokens=120,
    input_tokens_details=InputTokensDetails.model_validate(
        {"cached_tokens": 80, "cache_write_tokens": 0}
    ),
    output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
)


class _Forever(ScriptedModel):
    """A scripted model that answers "ok" to every call (its script never runs out)."""

    model = "gpt-4.1"

    def __init__(self) -> None:
        super().__init__()
        self._answer = ModelStep(output=[assistant_message("ok")], usage=_USAGE)

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        self.enqueue(self._answer)
        self._calls.clear()  # the recorded calls would grow with every round
        return await super().get_response(*args, **kwargs)


class _Empty(RunHooks[Any]):
    """Hooks that do nothing: what the SDK charges for calling any."""


def _model_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
    agent = Agent(name="bench", model=_Forever())
    config = RunConfig(tracing_disabled=True)
    governed = RedlineRunHooks(monitor, agent="bench")
    empty = _Empty()

    def call(hooks: Any) -> Callable[[], Any]:
        return lambda: _LOOP.run_until_complete(
            Runner.run(agent, "hi", hooks=hooks, run_config=config)
        )

    return call(None), call(governed), call(empty)


def _tool_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
    @function_tool
    def lookup(q: str) -> str:
        """Look q up."""
        return q

    agent = Agent(name="bench")
    args = '{"q": "acme"}'
    ids = itertools.count()

    def context() -> ToolContext[Any]:
        return ToolContext(
            context=None, tool_name="lookup", tool_call_id=f"c{next(ids)}", tool_arguments=args
        )

    async def plain() -> Any:
        return await lookup.on_invoke_tool(context(), args)

    async def hooked(hooks: Any) -> Any:
        ctx = context()
        await hooks.on_tool_start(ctx, agent, lookup)
        result = await lookup.on_invoke_tool(ctx, args)
        await hooks.on_tool_end(ctx, agent, lookup, result)
        return result

    governed = RedlineRunHooks(monitor, agent="bench")
    empty = _Empty()
    return (
        lambda: _LOOP.run_until_complete(plain()),
        lambda: _LOOP.run_until_complete(hooked(governed)),
        lambda: _LOOP.run_until_complete(hooked(empty)),
    )


CASES = [
    ("openai-agents: Runner.run, one model call", "model call", _model_call),
    ("openai-agents: function tool with run hooks", "tool call", _tool_call),
]
