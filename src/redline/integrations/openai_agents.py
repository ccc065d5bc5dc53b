"""OpenAI Agents SDK: run hooks that govern every model and tool call, and a tracing processor
for what only the SDK's traces carry.

``Runner.run(agent, input, hooks=RedlineRunHooks(monitor))`` (or ``run_sync`` /
``run_streamed``) checks the kill switch (and reserves budget) in ``on_llm_start`` and checks in
``on_tool_start``. The SDK awaits both hooks before the model request and before the tool body,
and does not catch what they raise, so a stop aborts the run there: from ``on_llm_start`` the
stop itself leaves ``Runner.run``; from ``on_tool_start`` the SDK wraps it in a ``UserError``
whose ``__cause__`` is the stop. Either way the request is never sent and the tool never runs.

* ``llm_call`` on ``on_llm_end``: the response's ``usage`` (``input_tokens`` already include the
  cached ones, ``input_tokens_details.cached_tokens`` / ``cache_write_tokens``,
  ``output_tokens_details.reasoning_tokens``), its ``response_id``, latency since
  ``on_llm_start``; the model is the agent's ``model`` when it is a name, or that model object's
  ``model`` attribute (the SDK's OpenAI and LiteLLM models have one). A model the run config
  picks is not visible to a hook: it stays unset.
* ``tool_call`` on ``on_tool_end``: tool name, the call's JSON arguments (redacted by the
  monitor), latency, status. The SDK turns a failing function tool into a message for the model,
  so the hook sees no exception: the call is an error when the tool's function span carries one
  (tracing on) or the result is the SDK's default failure message (tracing off).
* ``handoff`` on ``on_handoff``: from which agent to which.

The agent is the SDK agent's ``name`` unless the hooks were given one; the session is the hooks'
``session_id``, else the running trace's ``group_id`` (``RunConfig(group_id=...)``, seen while
tracing is on), else ``redline.context()``'s. No hook sees a failed model call: the step it
started is kept in a bounded table (:data:`MAX_IN_FLIGHT`) and released when pushed out.

:class:`RedlineTracingProcessor` (registered by :func:`instrument`) records what the traces
carry and the hooks don't: a tripped guardrail as ``guardrail_trigger``, and an error on a span
as ``error`` (a failed model call, a failed run) once per failure, in the trace's ``group_id``
as session. Tool errors are the hooks' (on their ``tool_call``). It never raises and never
blocks: each callback is a few dict operations and, at most, one event queued.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from redline._context import Identity
from redline.integrations._base import (
    IN_FLIGHT_LIMIT,
    Bounded,
    Governed,
    Step,
    StepRecorder,
    Usage,
    require,
)

_agents = require("agents", "openai-agents", "openai_agents")
from agents import RunHooks, add_trace_processor  # noqa: E402
from agents.tracing import (  # noqa: E402
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    GuardrailSpanData,
    ResponseSpanData,
    TracingProcessor,
    get_current_span,
    get_current_trace,
)

if TYPE_CHECKING:
    from agents import Agent, RunContextWrapper, Tool
    from agents.items import ModelResponse, TResponseInputItem
    from agents.tracing import Span, Trace

__all__ = [
    "MAX_IN_FLIGHT",
    "RedlineRunHooks",
    "RedlineTracingProcessor",
    "instrument",
    "usage_of",
]

#: Model and tool calls kept in flight per hooks object (and traces / agent spans per
#: processor); the oldest is dropped beyond this.
MAX_IN_FLIGHT = IN_FLIGHT_LIMIT

_INTEGRATION = "openai_agents"


def _default_tool_failure() -> str | None:
    try:
        message = _agents.default_tool_error_function(None, RuntimeError())
    except Exception:
        return None
    return message if isinstance(message, str) else None


#: What the SDK gives the model when a tool with the default failure function raised.
_TOOL_FAILED = _default_tool_failure()


def usage_of(usage: Any) -> Usage | None:
    """Tokens of an SDK ``Usage`` in Redline's convention (``None`` when nothing was counted)."""
    if usage is None:
        return None
    tokens_in = getattr(usage, "input_tokens", None)
    tokens_out = getattr(usage, "output_tokens", None)
    if not tokens_in and not tokens_out:
        return None  # the SDK's zero Usage: the provider reported nothing
    ind = getattr(usage, "input_tokens_details", None)
    outd = getattr(usage, "output_tokens_details", None)
    return Usage(
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cached=getattr(ind, "cached_tokens", None),
        cache_write=getattr(ind, "cache_write_tokens", None),
        reasoning=getattr(outd, "reasoning_tokens", None),
    )


class RedlineRunHooks(RunHooks[Any]):
    """Record and govern every model and tool call of an Agents SDK run (module docstring)."""

    def __init__(
        self,
        monitor: Governed,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self._recorder = StepRecorder(
            monitor,
            integration=_INTEGRATION,
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
        )
        self._agent = agent
        self._steps = Bounded(self._recorder.abandon)

    @property
    def in_flight(self) -> int:
        """Model and tool calls started and not yet ended (bounded by :data:`MAX_IN_FLIGHT`)."""
        return len(self._steps)

    async def on_llm_start(
        self,
        context: RunContextWrapper[Any],
        agent: Agent[Any],
        system_prompt: str | None,
        input_items: list[TResponseInputItem],
    ) -> None:
        rec = self._recorder

        def tokens_in() -> int:  # only asked for when a budget reserves
            return max(1, len(json.dumps([system_prompt, input_items], default=str)) // 4)

        settings = getattr(agent, "model_settings", None)
        max_out = getattr(settings, "max_tokens", None)
        step = rec.before_model(
            self._identity(agent),
            model=_model_name(agent),
            tokens_in=tokens_in,
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        with rec.quietly():
            self._steps.put(("llm", id(context), id(agent)), step)

    async def on_llm_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], response: ModelResponse
    ) -> None:
        step: Step | None = self._steps.pop(("llm", id(context), id(agent)))
        if step is None:
            return
        rec = self._recorder
        with rec.quietly():
            data: dict[str, Any] = {}
            response_id = getattr(response, "response_id", None)
            if response_id:
                data["response_id"] = response_id
            calls = [
                item.name
                for item in getattr(response, "output", None) or ()
                if getattr(item, "type", None) == "function_call"
            ]
            if calls:
                data["tool_calls"] = calls
            rec.model_done(
                step,
                model=step.name,
                usage=usage_of(getattr(response, "usage", None)),
                data=data,
                trace=_span_ids(get_current_span()),
            )

    async def on_tool_start(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool
    ) -> None:
        rec = self._recorder
        name = getattr(tool, "name", None)
        step = rec.before_tool(self._identity(agent), name if isinstance(name, str) else None)
        with rec.quietly():
            step.extra["arguments"] = getattr(context, "tool_arguments", None)
            self._steps.put(_tool_key(context, tool), step)

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        step: Step | None = self._steps.pop(_tool_key(context, tool))
        if step is None:
            return
        rec = self._recorder
        with rec.quietly():
            error: str | None = None
            span: Any = get_current_span()
            if isinstance(getattr(span, "span_data", None), FunctionSpanData) and span.error:
                error = str(span.error.get("message") or "tool failed")
            elif _TOOL_FAILED is not None and result == _TOOL_FAILED:
                error = _TOOL_FAILED
            rec.tool_done(
                step,
                arguments=_arguments(step.extra.get("arguments")),
                error=error,
                trace=_span_ids(span),
            )

    async def on_handoff(
        self, context: RunContextWrapper[Any], from_agent: Agent[Any], to_agent: Agent[Any]
    ) -> None:
        rec = self._recorder
        with rec.quietly():
            data = {
                "integration": _INTEGRATION,
                "from_agent": getattr(from_agent, "name", None),
                "to_agent": getattr(to_agent, "name", None),
            }
            rec.record(
                self._identity(from_agent),
                "handoff",
                data=data,
                trace=_span_ids(get_current_span()),
            )

    def _identity(self, agent: Any) -> Identity:
        """The hooks' own names, then the SDK's (agent name, trace group), then the context's."""
        rec = self._recorder
        name = self._agent or getattr(agent, "name", None)
        session = rec.defaults.session_id or _group_id(get_current_trace())
        return rec.identity(agent=name if isinstance(name, str) else None, session_id=session)


class RedlineTracingProcessor(TracingProcessor):
    """An SDK ``TracingProcessor`` recording guardrail trips and span errors (module docstring).

    ``agent`` names the agent of every event; otherwise it is the SDK agent whose span encloses
    the guardrail or the error.
    """

    def __init__(self, monitor: Governed, *, agent: str | None = None) -> None:
        self.monitor = monitor
        self._recorder = StepRecorder(monitor, integration=_INTEGRATION, agent=agent)
        self._agent = agent
        self._traces = Bounded()  # trace_id -> [group_id, whether a failure was recorded]
        self._agents = Bounded()  # agent or turn span_id -> agent name

    def on_trace_start(self, trace: Trace) -> None:
        try:
            self._traces.put(trace.trace_id, [_group_id(trace), False])
        except Exception as exc:  # telemetry never raises into the SDK
            self._recorder._swallowed(exc)

    def on_trace_end(self, trace: Trace) -> None:
        try:
            self._traces.pop(trace.trace_id)
        except Exception as exc:
            self._recorder._swallowed(exc)

    def on_span_start(self, span: Span[Any]) -> None:
        try:
            data = span.span_data
            name = (
                data.name if isinstance(data, AgentSpanData) else getattr(data, "agent_name", None)
            )
            if isinstance(name, str):
                self._agents.put(span.span_id, name)
        except Exception as exc:
            self._recorder._swallowed(exc)

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            self._span_end(span)
        except Exception as exc:
            self._recorder._swallowed(exc)

    def shutdown(self) -> None:
        """Nothing to flush: events went to the monitor, whose writer owns them."""

    def force_flush(self) -> None:
        """Nothing to flush (see :meth:`shutdown`)."""

    def _span_end(self, span: Span[Any]) -> None:
        data = span.span_data
        own = self._agents.pop(span.span_id)
        state = self._traces.get(span.trace_id)
        if isinstance(data, GuardrailSpanData):
            if data.triggered:
                if state is not None:
                    state[1] = True  # the tripwire's error on the enclosing span is this trip
                self._recorder.record(
                    self._identity(span, None, state),
                    "guardrail_trigger",
                    status="triggered",
                    data={"integration": _INTEGRATION, "guardrail": data.name},
                    trace=_span_ids(span),
                )
            return
        error = span.error
        if not error or isinstance(data, FunctionSpanData):
            return  # a tool's failure is on the hooks' tool_call
        if state is not None:
            if state[1] and not isinstance(data, (GenerationSpanData, ResponseSpanData)):
                return  # an enclosing span repeating a failure already recorded
            state[1] = True
        payload: dict[str, Any] = {
            "integration": _INTEGRATION,
            "span": getattr(data, "type", type(data).__name__),
            "error": str(error.get("message") or "error"),
        }
        if error.get("data"):
            payload["error_data"] = error["data"]
        self._recorder.record(
            self._identity(span, own, state),
            "error",
            status="error",
            model=_span_model(data),
            data=payload,
            trace=_span_ids(span),
        )

    def _identity(self, span: Span[Any], own: str | None, state: list[Any] | None) -> Identity:
        name = self._agent or own or self._agents.get(span.parent_id)
        group = state[0] if state is not None else _group_id(get_current_trace())
        return self._recorder.identity(agent=name, session_id=group)


_INSTALLED: dict[int, RedlineTracingProcessor] = {}
_INSTALL_LOCK = threading.Lock()


def instrument(monitor: Governed, *, agent: str | None = None) -> RedlineTracingProcessor:
    """Register a :class:`RedlineTracingProcessor` for ``monitor`` with the SDK's tracing
    (``agents.add_trace_processor``) and return it; once per monitor, so calling it again
    returns the same processor instead of recording every event twice.

    The SDK calls processors only while tracing is on (``agents.set_tracing_disabled(False)``,
    no ``RunConfig(tracing_disabled=True)``).
    """
    with _INSTALL_LOCK:
        found = _INSTALLED.get(id(monitor))
        if found is not None and found.monitor is monitor:
            return found
        processor = RedlineTracingProcessor(monitor, agent=agent)
        add_trace_processor(processor)
        _INSTALLED[id(monitor)] = processor
        return processor


# -- helpers ---------------------------------------------------------------------------------


def _model_name(agent: Any) -> str | None:
    model = getattr(agent, "model", None)
    if isinstance(model, str):
        return model or None
    name = getattr(model, "model", None)
    return name if isinstance(name, str) and name else None


def _span_model(data: Any) -> str | None:
    if isinstance(data, GenerationSpanData):
        return data.model
    if isinstance(data, ResponseSpanData):
        model = getattr(data.response, "model", None)
        return model if isinstance(model, str) else None
    return None


def _tool_key(context: Any, tool: Any) -> Hashable:
    call_id = getattr(context, "tool_call_id", None)
    return ("tool", call_id) if isinstance(call_id, str) else ("tool", id(context), id(tool))


def _arguments(raw: Any) -> Any:
    """A function call's JSON arguments as data (so redaction sees the keys), else as given."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw or None


def _group_id(trace: Any) -> str | None:
    group = getattr(trace, "group_id", None)
    return group if isinstance(group, str) and group else None


def _span_ids(span: Any) -> tuple[str | None, str | None, str | None] | None:
    """An SDK span's ids in W3C form (``trace_<32 hex>`` -> 32 hex, ``span_<24 hex>`` -> its
    first 16), so the events of one run share the trace id the SDK shows; ``None`` outside an
    SDK trace (tracing off), and the recorder falls back to OpenTelemetry or Redline's trace."""
    trace_id = _hex(getattr(span, "trace_id", None), 32)
    if trace_id is None:
        return None
    return trace_id, _hex(getattr(span, "span_id", None), 16), _hex(span.parent_id, 16)


def _hex(value: Any, width: int) -> str | None:
    if not isinstance(value, str):
        return None
    raw = value.partition("_")[2] if "_" in value else value
    raw = raw[:width].lower()
    if len(raw) != width or raw.strip("0123456789abcdef"):
        return None
    return raw
