"""CrewAI: ``instrument(monitor)`` governs and records every model and tool call of every crew.

``handle = instrument(monitor)`` registers two kinds of CrewAI 1.x extension, process-wide:

* **hooks** (``crewai.hooks``), which CrewAI runs synchronously on the agent's own thread: a
  before-LLM hook checks the kill switch (and reserves budget) before each model request, a
  before-tool hook checks before each tool body, and an after-tool hook finishes a stop (below);
* **event-bus listeners** (``crewai_event_bus``) that record ``llm_call`` on
  ``LLMCallCompletedEvent``, ``error`` on ``LLMCallFailedEvent`` and ``tool_call`` on
  ``ToolUsageFinishedEvent`` / ``ToolUsageErrorEvent``.

How a stop gets out. CrewAI is fail-open around hooks: an exception a hook raises is swallowed
(and printed) unless it is a ``crewai.hooks.HookAborted``, so raising the monitor's
:class:`~redline.AgentStoppedError` from a hook would stop nothing. A ``False`` return is no
better: before a model call CrewAI turns it into ``LLMCallBlockedError``, a ``ValueError`` that
its agent retry loop (``max_retry_limit``) and its fail-open internal calls absorb; before a tool
it only replaces the tool's result with "Tool execution blocked by hook" and the agent carries
on. ``HookAborted`` is CrewAI's deliberate stop: its executors and retry loop re-raise it, so it
leaves ``kickoff()``. The hooks therefore raise :class:`CrewStopped`, a ``HookAborted`` whose
``__cause__`` (and ``.stop``) is the monitor's stop:

* before a model call: the request is never sent and ``CrewStopped`` leaves ``kickoff()``;
* before a tool call: CrewAI treats a ``HookAborted`` there as a block (the tool body never runs)
  and runs the after-tool hooks on the blocked call, where it does let ``HookAborted`` through;
  the after-tool hook raises the pending stop, so the crew stops at that tool call (and would at
  its next model call anyway).

How a record gets its fields. CrewAI runs event-bus handlers on a thread pool after the fact, in
a copy of the emitting thread's ``contextvars``. The before-LLM hook starts a :class:`Step` (who,
when, what it reserved) and puts it in a context variable; the completion event of that same call
carries the variable into its handler, so the step meets its own completion however the pool
orders the handlers, and it is claimed once (a stale one is not reused).

* model: the event's ``model``; tokens: CrewAI's own normaliser of provider usage
  (``UsageMetrics.from_provider_dict``: ``prompt_tokens`` include cached input, Anthropic's split
  counts are folded in), ``cached_prompt_tokens``, ``cache_creation_tokens``, ``reasoning_tokens``;
  latency: from the hook to the completion event's timestamp; ``finish_reason``, ``response_id``
  and the task in ``data``;
* tools: the tool name, its arguments (redacted by the monitor), latency from the event's
  ``started_at`` / ``finished_at``, status ``error`` for ``ToolUsageErrorEvent`` or a reported
  ``failure``, ``from_cache`` in ``data``;
* identity: the agent is ``agent=``, else the CrewAI agent's ``role``, else ``redline.context()``;
  the session is ``session_id=``, else ``redline.context()``'s, else the crew's id (the task's
  without a crew). The context comes before the crew id because a crew always has one.

CrewAI's built-in providers (``crewai.LLM``: OpenAI, Anthropic, Gemini, Azure, Bedrock, LiteLLM)
emit those events. A custom ``BaseLLM`` is governed all the same (the executor runs the hooks
around it) but recorded only if its ``call`` emits them, as the built-in ones do.

``kickoff()`` flushes CrewAI's event bus before it returns, so its records are in the monitor by
then; after a stop, ``crewai_event_bus.flush()`` waits for the handlers still running.

CrewAI copies the global LLM hooks into each agent executor when it creates one (at every task
execution): instrument before ``kickoff()``. :meth:`CrewAIInstrumentation.uninstall` removes the
hooks and listeners; an executor already running keeps its copy, which does nothing once
uninstalled. ``instrument`` is idempotent per monitor: a second call returns the same handle.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from redline._context import Identity
from redline.exceptions import AgentStoppedError
from redline.integrations._base import Bounded, Governed, Step, StepRecorder, Usage, require

require("crewai", "crewai", "crewai")
_hooks = require("crewai.hooks", "crewai", "crewai")
_bus_module = require("crewai.events.event_bus", "crewai", "crewai")
_llm_events = require("crewai.events.types.llm_events", "crewai", "crewai")
_tool_events = require("crewai.events.types.tool_usage_events", "crewai", "crewai")
_usage_metrics = require("crewai.types.usage_metrics", "crewai", "crewai")

__all__ = ["CrewAIInstrumentation", "CrewStopped", "instrument", "usage_of"]

_INTEGRATION = "crewai"


#: CrewAI's deliberate-stop exception (a class from an untyped import, hence ``Any``).
_HookAborted: Any = _hooks.HookAborted


class CrewStopped(_HookAborted):  # type: ignore[misc]  # subclassing an untyped (Any) base
    """The monitor's stop in the one form CrewAI lets out of a hook (``HookAborted``).

    ``stop`` (also ``__cause__``) is the :class:`~redline.AgentStoppedError` that
    ``check()`` or ``reserve()`` raised: an ``AgentKilledError`` with its ``scope``,
    ``target`` and ``reason``, or a ``BudgetExceededError``.
    """

    def __init__(self, stop: AgentStoppedError) -> None:
        super().__init__(reason=str(stop), source="redline")
        self.stop = stop
        self.__cause__ = stop  # also when re-raised after the tool was blocked


def usage_of(usage: Mapping[str, Any] | None) -> Usage | None:
    """Tokens of an ``LLMCallCompletedEvent.usage`` dict, in Redline's convention.

    CrewAI's own normaliser reads every provider's spelling; counts it reports as 0 for the
    optional parts (cached, cache writes, reasoning) are left unset."""
    if not usage:
        return None
    metrics = _usage_metrics.UsageMetrics.from_provider_dict(dict(usage))
    if metrics is None:
        return None
    return Usage(
        tokens_in=metrics.prompt_tokens,
        tokens_out=metrics.completion_tokens,
        cached=metrics.cached_prompt_tokens or None,
        cache_write=metrics.cache_creation_tokens or None,
        reasoning=metrics.reasoning_tokens or None,
    )


#: What a context variable holds after a hook stopped the call: the events that follow it
#: (CrewAI reports a denied model call as failed) are not the agent's to record.
_DENIED = object()


class CrewAIInstrumentation:
    """The hooks and listeners :func:`instrument` registered for one monitor."""

    def __init__(
        self,
        monitor: Governed,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.monitor = monitor
        self.recorder = StepRecorder(
            monitor,
            integration=_INTEGRATION,
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
        )
        # Steps the hooks started and no event has claimed yet, by id: bounded, so a call
        # whose completion never comes releases its reservation once newer ones push it out.
        self._open = Bounded(self.recorder.abandon)
        # Model calls already reported, by CrewAI's call id: its OpenAI provider emits
        # ``LLMCallFailedEvent`` twice for one failed request (inner and outer handler).
        self._reported = Bounded()
        self._reported_lock = threading.Lock()
        self._model_step: contextvars.ContextVar[object] = contextvars.ContextVar(
            "redline_crewai_model_step", default=None
        )
        self._tool_step: contextvars.ContextVar[object] = contextvars.ContextVar(
            "redline_crewai_tool_step", default=None
        )
        self._pending_stop: contextvars.ContextVar[CrewStopped | None] = contextvars.ContextVar(
            "redline_crewai_pending_stop", default=None
        )
        self._active = False
        self._listeners: list[tuple[Any, Callable[[Any, Any], None]]] = [
            (_llm_events.LLMCallCompletedEvent, self._on_llm_completed),
            (_llm_events.LLMCallFailedEvent, self._on_llm_failed),
            (_tool_events.ToolUsageFinishedEvent, self._on_tool_finished),
            (_tool_events.ToolUsageErrorEvent, self._on_tool_error),
        ]

    @property
    def installed(self) -> bool:
        """Whether the hooks and listeners are registered (until :meth:`uninstall`)."""
        return self._active

    def uninstall(self) -> None:
        """Remove the hooks and listeners; a later :func:`instrument` installs afresh."""
        with _INSTALL_LOCK:
            if _INSTALLED.get(id(self.monitor)) is self:
                del _INSTALLED[id(self.monitor)]
            if not self._active:
                return
            self._active = False
            _hooks.unregister_before_llm_call_hook(self._before_llm)
            _hooks.unregister_before_tool_call_hook(self._before_tool)
            _hooks.unregister_after_tool_call_hook(self._after_tool)
            for event_type, handler in self._listeners:
                _bus().off(event_type, handler)

    def _install(self) -> None:
        self._active = True
        _hooks.register_before_llm_call_hook(self._before_llm)
        _hooks.register_before_tool_call_hook(self._before_tool)
        _hooks.register_after_tool_call_hook(self._after_tool)
        for event_type, handler in self._listeners:
            _bus().on(event_type)(handler)

    # -- identity ---------------------------------------------------------------------------

    def _identity(self, role: Any, owner: Any) -> Identity:
        """Who acts (see the module docstring); ``owner`` is the crew's id, else the task's."""
        rec = self.recorder
        named = rec.defaults.agent is None and isinstance(role, str) and role
        ident = rec.identity(agent=role if named else None)
        if ident.session_id is None and owner is not None:
            ident = Identity(ident.agent, str(owner), ident.user, ident.tenant)
        return ident

    def _identity_of(self, ctx: Any) -> Identity:
        """Who acts in a hook's context (its ``agent``, ``crew`` and ``task``)."""
        crew = getattr(ctx, "crew", None)
        owner = crew if crew is not None else getattr(ctx, "task", None)
        return self._identity(
            getattr(getattr(ctx, "agent", None), "role", None),
            getattr(owner, "id", None) if owner is not None else None,
        )

    def _first_report(self, event: Any) -> bool:
        """Whether this is the first completion or failure reported for the event's call."""
        call_id = getattr(event, "call_id", None)
        if not isinstance(call_id, str):
            return True
        with self._reported_lock:
            if self._reported.get(call_id) is not None:
                return False
            self._reported.put(call_id, True)
        return True

    def _claim(self, var: contextvars.ContextVar[object]) -> Step | object | None:
        """The step the hook left for this call (once), ``_DENIED`` or ``None``."""
        held = var.get()
        if held is _DENIED:
            return _DENIED
        return self._open.pop(id(held)) if held is not None else None

    # -- hooks (the agent's thread) ------------------------------------------------------------

    def _before_llm(self, ctx: Any) -> None:
        if not self._active:
            return None
        rec = self.recorder
        self._pending_stop.set(None)
        llm = getattr(ctx, "llm", None)
        ident = self._identity_of(ctx)
        model = getattr(llm, "model", None)
        max_out = getattr(llm, "max_tokens", None)
        try:
            step = rec.before_model(
                ident,
                model=model if isinstance(model, str) else None,
                tokens_in=lambda: _estimate_tokens(getattr(ctx, "messages", None)),
                max_tokens_out=max_out if isinstance(max_out, int) else None,
            )
        except AgentStoppedError as stop:
            self._model_step.set(_DENIED)
            raise CrewStopped(stop) from stop
        with rec.quietly():
            step.extra["wall"] = datetime.now(timezone.utc)
            self._open.put(id(step), step)
            self._model_step.set(step)
        return None

    def _before_tool(self, ctx: Any) -> None:
        if not self._active:
            return None
        name = getattr(ctx, "tool_name", None)
        ident = self._identity_of(ctx)
        try:
            step = self.recorder.before_tool(ident, name if isinstance(name, str) else None)
        except AgentStoppedError as stop:
            stopped = CrewStopped(stop)
            self._tool_step.set(_DENIED)
            self._pending_stop.set(stopped)
            raise stopped from stop
        with self.recorder.quietly():
            self._open.put(id(step), step)
            self._tool_step.set(step)
        return None

    def _after_tool(self, ctx: Any) -> None:
        """Raise the stop the before-tool hook made of this call: CrewAI lets a
        ``HookAborted`` through here, where before the tool it only blocks the call."""
        del ctx
        stopped = self._pending_stop.get()
        if stopped is not None:
            self._pending_stop.set(None)
            raise stopped

    # -- event-bus listeners (CrewAI's handler threads) -------------------------------------

    def _on_llm_completed(self, source: Any, event: Any) -> None:
        del source
        rec = self.recorder
        with rec.quietly():
            if not self._first_report(event):
                return
            step = self._claim(self._model_step)
            if step is _DENIED:
                return
            step = self._step_for(step, event)
            data: dict[str, Any] = {}
            for key in ("finish_reason", "response_id", "task_name"):
                value = getattr(event, key, None)
                if isinstance(value, str) and value:
                    data[key] = value
            model = getattr(event, "model", None)
            rec.model_done(
                step,
                model=model if isinstance(model, str) else step.name,
                usage=usage_of(getattr(event, "usage", None)),
                latency_ms=_latency(step, getattr(event, "timestamp", None)),
                data=data,
            )

    def _on_llm_failed(self, source: Any, event: Any) -> None:
        del source
        rec = self.recorder
        with rec.quietly():
            if not self._first_report(event):
                return
            step = self._claim(self._model_step)
            if step is _DENIED:
                return
            step = self._step_for(step, event)
            model = getattr(event, "model", None)
            rec.model_done(
                step,
                model=model if isinstance(model, str) else step.name,
                error=str(getattr(event, "error", "") or "LLM call failed"),
                latency_ms=_latency(step, getattr(event, "timestamp", None)),
            )

    def _on_tool_finished(self, source: Any, event: Any) -> None:
        del source
        with self.recorder.quietly():
            failure = getattr(event, "failure", None)
            message = getattr(failure, "message", None) if failure is not None else None
            self._tool_done(event, error=(message or "tool failed") if failure else None)

    def _on_tool_error(self, source: Any, event: Any) -> None:
        del source
        with self.recorder.quietly():
            error = getattr(event, "error", None)
            self._tool_done(event, error=error if isinstance(error, BaseException) else str(error))

    def _tool_done(self, event: Any, *, error: BaseException | str | None) -> None:
        step = self._claim(self._tool_step)
        if step is _DENIED:
            return
        step = self._step_for(step, event)
        started = getattr(event, "started_at", None)
        finished = getattr(event, "finished_at", None)
        latency = (
            (finished - started).total_seconds() * 1000.0
            if isinstance(started, datetime) and isinstance(finished, datetime)
            else None
        )
        name = getattr(event, "tool_name", None)
        data = {"from_cache": True} if getattr(event, "from_cache", False) else None
        self.recorder.tool_done(
            step,
            tool=name if isinstance(name, str) else None,
            arguments=getattr(event, "tool_args", None) or None,
            error=error,
            latency_ms=latency,
            data=data,
        )

    def _step_for(self, step: object, event: Any) -> Step:
        """The hook's step, or (a call no hook of ours saw) one built from the event."""
        if isinstance(step, Step):
            return step
        ident = self._identity(getattr(event, "agent_role", None), getattr(event, "task_id", None))
        return Step(ident, time.perf_counter())


_INSTALLED: dict[int, CrewAIInstrumentation] = {}
_INSTALL_LOCK = threading.Lock()


def instrument(
    monitor: Governed,
    *,
    agent: str | None = None,
    session_id: str | None = None,
    user: str | None = None,
    tenant: str | None = None,
) -> CrewAIInstrumentation:
    """Govern and record every CrewAI crew in this process with ``monitor`` (a
    :class:`~redline.Monitor` or a :class:`~redline.client.RemoteMonitor`).

    Once per monitor: calling it again returns the installed handle (its identity arguments
    unchanged) instead of recording every call twice. ``handle.uninstall()`` removes it.
    """
    with _INSTALL_LOCK:
        found = _INSTALLED.get(id(monitor))
        if found is not None and found.monitor is monitor and found.installed:
            return found
        handle = CrewAIInstrumentation(
            monitor, agent=agent, session_id=session_id, user=user, tenant=tenant
        )
        handle._install()
        _INSTALLED[id(monitor)] = handle
        return handle


# -- helpers ---------------------------------------------------------------------------------


def _bus() -> Any:
    return _bus_module.crewai_event_bus


def _latency(step: Step, at: Any) -> float | None:
    """Milliseconds from the hook to the event's timestamp (handlers run later, on another
    thread, so the clock at handling time would count the queue too)."""
    wall = step.extra.get("wall")
    if isinstance(wall, datetime) and isinstance(at, datetime) and at.tzinfo is not None:
        return max(0.0, (at - wall).total_seconds() * 1000.0)
    return None


def _estimate_tokens(messages: Any) -> int | None:
    """A rough input size (4 characters a token) for a budget reservation, only when one is
    made; the completion's actual usage settles it."""
    if not isinstance(messages, list):
        return None
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else message
        chars += len(content) if isinstance(content, str) else len(str(content or ""))
    return chars // 4 or None
