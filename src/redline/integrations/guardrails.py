"""theaios-guardrails: record every guardrail decision, stop killed agents before the engine
runs, and make a denial really stop a LangChain step.

``GuardrailsMonitor(engine, monitor)`` wraps a ``theaios.guardrails.Engine`` with the peer's
names (``theaios-agent-monitor``'s ``GuardrailsMonitor``): call ``gm.evaluate(event)`` (or
``await gm.evaluate_async(event)``) where the code called ``engine.evaluate(event)``. Each call

1. checks the kill switch for the event's agent and session and raises the monitor's stop
   (:class:`~redline.AgentKilledError`) before the engine runs: a stopped agent gets no decision,
   not even an ``allow``;
2. calls the engine; an engine failure is the user's and propagates unchanged;
3. records the decision through the monitor (so through its redaction and validation):
   ``deny`` → ``denial``, ``require_approval`` → ``approval_request``, ``allow`` / ``log`` /
   ``redact`` → ``action``, any other outcome → ``guardrail_trigger`` (the peer's mapping, which
   feeds ``denial_rate``), with ``scope``, ``outcome``, ``rule``, ``reason``, ``severity``,
   ``tier``, ``matched_rules``, ``dry_run`` and ``modifications`` in ``data`` and the engine call's
   time in ``latency_ms`` (as the peer records it);
4. returns the engine's :class:`~theaios.guardrails.Decision` itself, unchanged.

A failure while recording is logged once, counted in ``monitor.stats()`` and swallowed: the
decision still comes back. The agent and session are the guard event's, else the
``GuardrailsMonitor``'s own, else the enclosing ``redline.context()``.

**LangChain.** The package's own ``GuardrailsCallback`` raises ``GuardDenied`` from
``on_tool_start``, but leaves LangChain's ``raise_error`` off, so LangChain logs the exception
and runs the tool anyway: its denials stop nothing. :meth:`GuardrailsMonitor.langchain_callback`
returns a handler with ``raise_error = True`` and ``run_inline = True`` that evaluates the same
events the package's callback does (prompts on ``on_llm_start``, which LangChain also calls for
chat models; the generated text on ``on_llm_end``; tool calls on ``on_tool_start``) through this
monitor, and raises the package's own ``GuardDenied`` / ``ApprovalRequired`` (or the stop of a
killed agent) so the model or the tool body never runs. Dry-run decisions are recorded and never
raise, as in the package.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from redline._context import Identity
from redline.integrations._base import Governed, StepRecorder, _plain, require

require("theaios.guardrails", "guardrails", "guardrails")
from theaios.guardrails import (  # noqa: E402
    ApprovalRequired,
    Decision,
    Engine,
    GuardDenied,
    GuardEvent,
)

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler

__all__ = ["OUTCOME_EVENT_TYPES", "GuardrailsMonitor", "event_type_of"]

#: The event type each guardrail outcome is recorded as; any other outcome is a
#: ``guardrail_trigger`` (see :func:`event_type_of`).
OUTCOME_EVENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "deny": "denial",
        "require_approval": "approval_request",
        "allow": "action",
        "log": "action",
        "redact": "action",
    }
)

#: LLM runs whose prompt was checked and whose output is not yet, kept for their session.
_MAX_RUNS: Final = 4096


def event_type_of(outcome: object) -> str:
    """The Redline event type of a guardrail outcome (a string or an ``Outcome`` member)."""
    value = getattr(outcome, "value", outcome)
    if not isinstance(value, str):
        return "guardrail_trigger"
    return OUTCOME_EVENT_TYPES.get(value, "guardrail_trigger")


class GuardrailsMonitor:
    """A guardrails engine whose every decision is governed and recorded (module docstring).

    ``engine`` may be ``None`` for a monitor that only records decisions made elsewhere
    (:meth:`record_decision`, the form the peer's guide shows); :meth:`evaluate` then refuses.
    ``monitor`` is a :class:`~redline.Monitor` or a :class:`~redline.client.RemoteMonitor`.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        monitor: Governed | None = None,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
    ) -> None:
        if monitor is None:
            # Misuse at construction raises (only recording is quiet): the peer's signature has
            # a default for ``engine`` only in its guide, so ``monitor`` is checked here.
            raise TypeError("GuardrailsMonitor needs a monitor: GuardrailsMonitor(engine, monitor)")
        self._engine = engine
        self._monitor = monitor
        self._recorder = StepRecorder(
            monitor,
            integration="guardrails",
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
        )

    @property
    def engine(self) -> Engine | None:
        """The wrapped engine (``None`` for a record-only monitor)."""
        return self._engine

    @property
    def monitor(self) -> Governed:
        """The monitor every decision is checked against and recorded to."""
        return self._monitor

    # -- evaluate ----------------------------------------------------------------------------

    def evaluate(self, event: GuardEvent) -> Decision:
        """Check the kill switch, evaluate ``event`` with the engine, record the decision and
        return it (the engine's own object).

        Raises :class:`~redline.AgentStoppedError` for a killed agent or session (the engine is
        not called) and whatever the engine raises.
        """
        engine = self._need_engine()
        ident = self._identity(event)
        self._check(ident)
        started = time.perf_counter()
        decision = engine.evaluate(event)
        self._record(ident, event, decision, (time.perf_counter() - started) * 1000.0)
        return decision

    async def evaluate_async(self, event: GuardEvent) -> Decision:
        """:meth:`evaluate` for async code: the engine's ``evaluate_async`` is awaited.

        The kill check runs inline before it (on a local monitor it is a few dict lookups).
        """
        engine = self._need_engine()
        ident = self._identity(event)
        self._check(ident)
        started = time.perf_counter()
        decision = await engine.evaluate_async(event)
        self._record(ident, event, decision, (time.perf_counter() - started) * 1000.0)
        return decision

    def record_decision(
        self,
        decision: Decision,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        event: GuardEvent | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Record a decision the engine already made (no kill check: nothing is left to stop).

        The peer's guide shows ``gm.record_decision(agent="sales-agent", decision=decision)``;
        pass ``event`` too to keep its scope and context fields.
        """
        with self._recorder.quietly():
            ident = self._recorder.identity(
                agent=agent or _text(getattr(event, "agent", None)),
                session_id=session_id or _text(getattr(event, "session_id", None)),
            )
            elapsed = decision.evaluation_time_ms if latency_ms is None else latency_ms
            self._record(ident, event, decision, elapsed)

    # -- LangChain ---------------------------------------------------------------------------

    def langchain_callback(
        self, *, agent: str | None = None, session_id: str | None = None
    ) -> BaseCallbackHandler:
        """A LangChain callback handler that evaluates prompts, outputs and tool calls through
        this monitor and raises on a denial, so the step never runs (module docstring).

        ``agent`` / ``session_id`` name who acts in the guard events it builds; unset, this
        monitor's own, then a LangGraph ``thread_id`` (the session), then ``redline.context()``.
        Raises :class:`ImportError` naming ``redline[langchain]`` when LangChain is missing.
        """
        self._need_engine()
        handler: BaseCallbackHandler = _handler_class()(self, agent=agent, session_id=session_id)
        return handler

    # -- internals ---------------------------------------------------------------------------

    def _need_engine(self) -> Engine:
        if self._engine is None:
            raise TypeError(
                "this GuardrailsMonitor has no engine (GuardrailsMonitor(engine, monitor)); "
                "it can only record_decision()"
            )
        return self._engine

    def _identity(self, event: GuardEvent) -> Identity:
        return self._recorder.identity(
            agent=_text(getattr(event, "agent", None)),
            session_id=_text(getattr(event, "session_id", None)),
        )

    def _check(self, ident: Identity) -> None:
        assert ident.agent is not None  # StepRecorder.identity never leaves it empty
        self._monitor.check(ident.agent, ident.session_id)

    def _record(
        self,
        ident: Identity,
        event: GuardEvent | None,
        decision: Decision,
        latency_ms: float | None,
    ) -> None:
        rec = self._recorder
        with rec.quietly():
            outcome = getattr(decision.outcome, "value", decision.outcome)
            data: dict[str, Any] = {
                "integration": "guardrails",
                "scope": getattr(event, "scope", None),
                "outcome": outcome,
                "rule": decision.rule,
                "reason": decision.reason,
                "severity": getattr(decision.severity, "value", decision.severity),
                "tier": getattr(decision.tier, "value", decision.tier),
                "dry_run": bool(decision.dry_run),
                "matched_rules": list(decision.matched_rules or ()),
                "modifications": _plain(decision.modifications),
                "evaluation_time_ms": decision.evaluation_time_ms,
            }
            if decision.metadata:
                data["metadata"] = _plain(decision.metadata)
            if event is not None:
                _context_fields(event, data)
            rec.record(
                ident,
                event_type_of(outcome),
                latency_ms=None if latency_ms is None else round(latency_ms, 3),
                data=data,
            )


def _context_fields(event: GuardEvent, data: dict[str, Any]) -> None:
    """What the guard event was about (never its content): the tool, the action, the agents."""
    fields = getattr(event, "data", None) or {}
    for key, into in (("tool_name", "tool"), ("action", "action")):
        value = fields.get(key) if isinstance(fields, Mapping) else None
        if isinstance(value, str):
            data[into] = value
    for key in ("source_agent", "target_agent"):
        value = getattr(event, key, None)
        if value:
            data[key] = value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _enforce(decision: Decision, *, approvals: bool = True) -> None:
    """Raise the package's own exception for a denial (and, on input, an approval request)."""
    if decision.dry_run:
        return
    if decision.is_denied:
        raise GuardDenied(decision)
    if approvals and decision.requires_approval:
        raise ApprovalRequired(decision)


_HANDLER: list[type[Any]] = []  # [the handler class], built on first use (LangChain is optional)
_HANDLER_LOCK = threading.Lock()


def _handler_class() -> type[Any]:
    """The LangChain handler class, defined when first asked for so that this module imports
    without LangChain (the import names ``redline[langchain]`` when it is missing)."""
    with _HANDLER_LOCK:
        if not _HANDLER:
            _HANDLER.append(_define_handler())
        return _HANDLER[0]


def _define_handler() -> type[Any]:
    require("langchain_core", "langchain", "guardrails")
    from langchain_core.callbacks import BaseCallbackHandler

    class GuardrailsCallbackHandler(BaseCallbackHandler):
        """The package's ``GuardrailsCallback`` checks, governed and enforced.

        ``raise_error`` makes LangChain let the handler's exception out of ``invoke`` (without
        it, it logs the denial and runs the step); ``run_inline`` keeps the hook on the caller's
        thread and event loop, so the exception is raised before the step, never after.
        Being a plain (not ``async``) handler, it also stops steps of an ``ainvoke`` run: a
        coroutine handler's exception is dropped when LangChain fires callbacks on its sync path.
        """

        raise_error = True
        run_inline = True

        def __init__(
            self, guard: GuardrailsMonitor, *, agent: str | None, session_id: str | None
        ) -> None:
            super().__init__()
            self._guard = guard
            self._agent = agent
            self._session = session_id
            self._llm_sessions: OrderedDict[UUID, str | None] = OrderedDict()
            self._lock = threading.Lock()

        def on_llm_start(
            self,
            serialized: dict[str, Any],
            prompts: list[str],
            *,
            run_id: UUID,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            ident = self._who(metadata)
            for prompt in prompts:
                _enforce(self._guard.evaluate(self._event("input", ident, {"content": prompt})))
            with self._lock:  # the output check has no metadata: remember the session
                self._llm_sessions[run_id] = ident.session_id
                if len(self._llm_sessions) > _MAX_RUNS:
                    self._llm_sessions.popitem(last=False)

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            with self._lock:
                session = self._llm_sessions.pop(run_id, None)
            text = "".join(
                getattr(gen, "text", "") or ""
                for gens in getattr(response, "generations", None) or ()
                for gen in gens
            )
            if text:
                ident = self._who(None, session)
                # As the package: an output is denied or not; approval is for what is about to run.
                decision = self._guard.evaluate(self._event("output", ident, {"content": text}))
                _enforce(decision, approvals=False)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            with self._lock:
                self._llm_sessions.pop(run_id, None)

        def on_tool_start(
            self,
            serialized: dict[str, Any] | None,
            input_str: str,
            *,
            run_id: UUID,
            metadata: dict[str, Any] | None = None,
            inputs: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            name = (serialized or {}).get("name") or kwargs.get("name") or "unknown"
            # The package's shape (``arguments.input``) so its policies apply unchanged, plus the
            # structured arguments LangChain passes, for rules on ``arguments.<name>``.
            arguments = {**(inputs or {}), "input": input_str}
            event = self._event(
                "tool_call", self._who(metadata), {"tool_name": name, "arguments": arguments}
            )
            _enforce(self._guard.evaluate(event))

        def _who(self, metadata: Mapping[str, Any] | None, session: str | None = None) -> Identity:
            thread = (metadata or {}).get("thread_id")
            return self._guard._recorder.identity(
                agent=self._agent,
                session_id=self._session or session or (str(thread) if thread else None),
            )

        @staticmethod
        def _event(scope: str, ident: Identity, data: dict[str, object]) -> GuardEvent:
            return GuardEvent(
                scope=scope,
                agent=ident.agent or "unknown",
                data=data,
                session_id=ident.session_id,
            )

    return GuardrailsCallbackHandler
