"""Pydantic AI rows for ``bench/integrations.py`` (see its docstring for ``CASES``).

* model call: one ``agent.run`` whose ``FunctionModel`` answers at once (one model request),
  without capabilities, with an empty capability overriding the same hooks (what Pydantic AI
  charges for running any), and with ``RedlineCapability``; a run's own cost is large, so the
  median over rounds matters here.
* tool call: a tool body run the way the agent runs one through a capability,
  ``wrap_tool_execute`` around ``before_tool_execute``, the body and ``after_tool_execute``,
  on a real ``RunContext``, without a capability, with the empty one and with Redline's; a whole
  run would add two model requests to every tool call.

One event loop serves every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage, RunUsage

from redline import Monitor
from redline.integrations.pydantic_ai import RedlineCapability

_LOOP = asyncio.new_event_loop()


async def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    usage = RequestUsage(input_tokens=100, output_tokens=20, cache_read_tokens=80)
    return ModelResponse(parts=[TextPart("ok")], usage=usage)


class _Empty(AbstractCapability[Any]):
    """A capability overriding Redline's hooks with ones that do nothing."""

    async def before_model_request(self, ctx: Any, request_context: Any) -> Any:
        return request_context

    async def after_model_request(self, ctx: Any, *, request_context: Any, response: Any) -> Any:
        return response

    async def wrap_model_request(self, ctx: Any, *, request_context: Any, handler: Any) -> Any:
        return await handler(request_context)

    async def before_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any) -> Any:
        return args

    async def after_tool_execute(
        self, ctx: Any, *, call: Any, tool_def: Any, args: Any, result: Any
    ) -> Any:
        return result

    async def wrap_tool_execute(
        self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any
    ) -> Any:
        return await handler(args)


def model_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
    def agent(*capabilities: AbstractCapability[Any]) -> Callable[[], Any]:
        a: Agent[Any] = Agent(
            FunctionModel(_answer, model_name="gpt-4o"), name="bench", capabilities=capabilities
        )
        return lambda: _LOOP.run_until_complete(a.run("hi"))

    return agent(), agent(RedlineCapability(monitor)), agent(_Empty())


def tool_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
    ctx: RunContext[Any] = RunContext(
        deps=None, model=FunctionModel(_answer), usage=RunUsage(), run_id="bench-run"
    )
    call = ToolCallPart("lookup", {"q": "acme"}, tool_call_id="c-1")
    tool_def = ToolDefinition(name="lookup")
    args = {"q": "acme"}

    async def body(validated: dict[str, Any]) -> str:
        return str(validated["q"])

    def through(cap: AbstractCapability[Any]) -> Callable[[], Any]:
        async def handler(validated: dict[str, Any]) -> Any:
            validated = await cap.before_tool_execute(
                ctx, call=call, tool_def=tool_def, args=validated
            )
            result = await body(validated)
            return await cap.after_tool_execute(
                ctx, call=call, tool_def=tool_def, args=validated, result=result
            )

        async def one() -> Any:
            return await cap.wrap_tool_execute(
                ctx, call=call, tool_def=tool_def, args=args, handler=handler
            )

        return lambda: _LOOP.run_until_complete(one())

    return (
        lambda: _LOOP.run_until_complete(body(args)),
        through(RedlineCapability(monitor)),
        through(_Empty()),
    )


CASES = [
    ("pydantic_ai: agent.run, one model request", "model call", model_call),
    ("pydantic_ai: tool through the capability hooks", "tool call", tool_call),
]
