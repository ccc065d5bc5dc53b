"""Pydantic AI: a capability that governs every model request and tool call of an agent.

``Agent(model, capabilities=[RedlineCapability(monitor)])`` (or ``capabilities=[...]`` on one
``run`` / ``run_sync`` / ``run_stream`` / ``iter``) hooks Pydantic AI's capability lifecycle
(``pydantic_ai.capabilities.AbstractCapability``, 2.x): the same hooks fire for plain, async
and streamed runs, so one object governs them all.

* ``before_model_request`` checks the kill switch (and, with budgets, reserves the request's
  estimated cost from the model's name, its ``max_tokens`` setting and the messages' size).
  Pydantic AI lets a hook's exception through the wrap chain as it is, so the stop itself (not
  a wrapper) leaves ``run_sync`` / ``run`` / ``run_stream`` and the request is never sent.
* ``after_model_request`` records ``llm_call``, once per attempt (a fallback or a retry is a
  call of its own): the response's ``model_name`` and ``provider_name`` (else the model's
  ``system``), its :class:`~pydantic_ai.usage.RequestUsage` (``input_tokens`` already include
  ``cache_read_tokens`` and ``cache_write_tokens``, ``output_tokens`` include
  ``output_reasoning_tokens``: Redline's convention as it is), ``finish_reason``, the tools the
  model asked for, and the latency since the check. For a stream it fires once the stream ends.
* ``wrap_model_request`` encloses both: a request that fails records ``error``, one the run
  abandons releases its reservation, so nothing stays in flight. (Not
  ``on_model_request_error``: overriding it makes Pydantic AI open every stream eagerly.)
* ``before_tool_execute`` checks before the tool body runs (parallel tool calls too: the stop
  leaves the run as it is); ``after_tool_execute`` records ``tool_call`` (name, validated
  arguments, latency); ``wrap_tool_execute`` records a tool that raised (a ``ModelRetry``
  too) with status ``error``, and the exception goes on as Pydantic AI handles it (a
  ``ModelRetry`` becomes a retry prompt, anything else ends the run).

The agent is the capability's ``agent``, else the Pydantic AI agent's ``name`` (which Pydantic
AI infers from the variable holding the agent when none was given), else
``redline.context()``'s. The session is the capability's ``session_id``, else
``redline.context()``'s, else the run's ``conversation_id``: Pydantic AI carries that across
runs sharing message history but makes a fresh one for every other run, so it comes after the
context, which it would otherwise always override. User and tenant come from the capability,
then the context.

Steps in flight are kept by run id (and tool call id) in a bounded table
(:data:`MAX_IN_FLIGHT`): one the framework never finishes is pushed out by newer ones and its
reservation released.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any

from redline._context import Identity
from redline.exceptions import AgentStoppedError
from redline.integrations._base import (
    IN_FLIGHT_LIMIT,
    Bounded,
    Governed,
    StepRecorder,
    Usage,
    require,
)
from redline.integrations._http import estimate_tokens

require("pydantic_ai", "pydantic-ai", "pydantic_ai")
from pydantic_ai.capabilities import AbstractCapability  # noqa: E402

if TYPE_CHECKING:
    from pydantic_ai.capabilities import (
        ValidatedToolArgs,
        WrapModelRequestHandler,
        WrapToolExecuteHandler,
    )
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.tools import RunContext, ToolDefinition
    from pydantic_ai.usage import RequestUsage

__all__ = ["MAX_IN_FLIGHT", "RedlineCapability", "usage_of"]

#: Model requests and tool calls kept in flight per capability; the oldest is dropped beyond.
MAX_IN_FLIGHT = IN_FLIGHT_LIMIT

_INTEGRATION = "pydantic_ai"
_DONE = "recorded"  # step.extra key: an attempt of this request was recorded already


def usage_of(usage: RequestUsage | None) -> Usage | None:
    """Tokens of a Pydantic AI ``RequestUsage``, in Redline's convention (which it shares).

    ``None`` when the response carried no usage (``unmeasured_requests``): its zeros mean
    "unknown", not "free".
    """
    if usage is None or getattr(usage, "unmeasured_requests", False):
        return None
    reasoning = usage.output_reasoning_tokens or usage.details.get("reasoning_tokens", 0)
    return Usage(
        tokens_in=usage.input_tokens,
        tokens_out=usage.output_tokens,
        cached=usage.cache_read_tokens,
        cache_write=usage.cache_write_tokens,
        reasoning=reasoning,
    )


def _run_key(ctx: RunContext[Any]) -> Hashable:
    """The run a hook belongs to: its ``run_id`` (the run's usage object when it has none)."""
    return ctx.run_id or id(ctx.usage)


@dataclass
class RedlineCapability(AbstractCapability[Any]):
    """Record and govern every model request and tool call of a Pydantic AI agent.

    ``agent=None`` takes the Pydantic AI agent's ``name``; see the module docstring for the
    rest of the identity.
    """

    monitor: Governed = field(repr=False)
    _: KW_ONLY
    agent: str | None = None
    session_id: str | None = None
    user: str | None = None
    tenant: str | None = None
    capture_content: bool = False
    _recorder: StepRecorder = field(init=False, repr=False, compare=False)
    _steps: Bounded = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._recorder = StepRecorder(
            self.monitor,
            integration=_INTEGRATION,
            agent=self.agent,
            session_id=self.session_id,
            user=self.user,
            tenant=self.tenant,
            capture_content=self.capture_content,
        )
        self._steps = Bounded(self._recorder.abandon)

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # it holds a live monitor: not something an agent spec can describe

    @property
    def in_flight(self) -> int:
        """Model requests and tool calls started and not yet ended (bounded)."""
        return len(self._steps)

    # -- who ---------------------------------------------------------------------------------

    def _identity(self, ctx: RunContext[Any]) -> Identity:
        found = self._recorder.identity()  # the capability's own, then redline.context()
        agent, session = found.agent, found.session_id
        if self.agent is None:
            name = getattr(ctx.agent, "name", None)
            if name:
                agent = name
        if session is None:
            session = ctx.conversation_id
        if agent is found.agent and session is found.session_id:
            return found
        return Identity(agent, session, found.user, found.tenant)

    # -- model requests ----------------------------------------------------------------------

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        rec = self._recorder
        model_obj = request_context.model
        settings = request_context.model_settings or {}
        max_out = settings.get("max_tokens")

        def tokens_in() -> int | None:  # asked for only when a budget reserves
            return estimate_tokens(repr(request_context.messages).encode())

        step = rec.before_model(
            self._identity(ctx),
            model=getattr(model_obj, "model_name", None),
            tokens_in=tokens_in,
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        with rec.quietly():
            step.extra["provider"] = getattr(model_obj, "system", None)
            self._steps.put(_run_key(ctx), step)
        return request_context

    async def after_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        response: ModelResponse,
    ) -> ModelResponse:
        rec = self._recorder
        with rec.quietly():
            step = self._steps.get(_run_key(ctx))
            if step is None:
                return response
            data: dict[str, Any] = {"run_step": ctx.run_step}
            if request_context.attempt > 1:
                data["attempt"] = request_context.attempt
            if request_context.streaming:
                data["stream"] = True
            if response.finish_reason:
                data["finish_reason"] = response.finish_reason
            calls = response.tool_calls
            if calls:
                data["tool_calls"] = [c.tool_name for c in calls]
            if rec.capture_content:
                text = response.text
                if text:
                    data["completion"] = text
            rec.model_done(
                step,
                model=response.model_name or step.name,
                usage=usage_of(response.usage),
                provider=response.provider_name or step.extra.get("provider"),
                data=data,
            )
            # A further attempt (a fallback, a retry) is timed from here, its cost unreserved.
            step.extra[_DONE] = True
            step.reservation = None
            step.started = time.perf_counter()
        return response

    async def wrap_model_request(
        self,
        ctx: RunContext[Any],
        *,
        request_context: ModelRequestContext,
        handler: WrapModelRequestHandler,
    ) -> ModelResponse:
        try:
            response = await handler(request_context)
        except Exception as exc:
            step = self._steps.pop(_run_key(ctx))
            if step is not None and not isinstance(exc, AgentStoppedError):
                if step.extra.get(_DONE):
                    self._recorder.abandon(step)
                else:
                    self._recorder.model_done(
                        step, model=step.name, provider=step.extra.get("provider"), error=exc
                    )
            raise
        except BaseException:  # cancelled, or a compaction run ending without a request
            step = self._steps.pop(_run_key(ctx))
            if step is not None:
                self._recorder.abandon(step)
            raise
        self._steps.pop(_run_key(ctx))
        return response

    # -- tools -------------------------------------------------------------------------------

    async def before_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
    ) -> ValidatedToolArgs:
        rec = self._recorder
        step = rec.before_tool(self._identity(ctx), call.tool_name)
        with rec.quietly():
            step.extra["arguments"] = args
            self._steps.put((_run_key(ctx), call.tool_call_id), step)
        return args

    async def after_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        result: Any,
    ) -> Any:
        step = self._steps.pop((_run_key(ctx), call.tool_call_id))
        if step is not None:
            self._recorder.tool_done(step, arguments=step.extra.get("arguments"), output=result)
        return result

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        try:
            return await handler(args)
        except BaseException as exc:
            step = self._steps.pop((_run_key(ctx), call.tool_call_id))
            if step is not None:
                if isinstance(exc, Exception):
                    self._recorder.tool_done(
                        step, arguments=step.extra.get("arguments"), error=_cause(exc)
                    )
                else:
                    self._recorder.abandon(step)
            raise


def _cause(exc: Exception) -> BaseException:
    """The tool's own exception when Pydantic AI wrapped it (``ModelRetry`` in a retry)."""
    inner = getattr(exc, "__cause__", None)
    return inner if isinstance(inner, Exception) else exc
