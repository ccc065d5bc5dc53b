"""What every framework integration shares: identity, the stop checks, one event per step, and
the rule that only a deliberate stop escapes.

An integration is a thin adapter from a framework's hooks to a :class:`StepRecorder`:

* before a model call, :meth:`StepRecorder.before_model` checks the kill switch and, when the
  monitor has budgets, reserves the call's estimated cost; before a tool call,
  :meth:`StepRecorder.before_tool` checks. Both raise :class:`~redline.AgentStoppedError`, the
  one exception an integration lets reach the framework;
* after the call, :meth:`StepRecorder.model_done` / :meth:`StepRecorder.tool_done` record an
  ``llm_call`` / ``tool_call`` event (and commit the reservation with the actual usage);
* anything else that goes wrong inside the adapter runs under :meth:`StepRecorder.quietly`:
  logged once per integration and error type, counted in ``monitor.stats()``, swallowed.

The monitor is anything with ``record`` and ``check`` (:class:`Governed`): a
:class:`~redline.Monitor` or a :class:`~redline.client.RemoteMonitor`.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from redline._context import NOBODY, Identity, current_identity
from redline.events import AgentEvent
from redline.exceptions import AgentStoppedError
from redline.tracing import current_trace

__all__ = [
    "IN_FLIGHT_LIMIT",
    "Bounded",
    "Governed",
    "Step",
    "StepRecorder",
    "Usage",
    "require",
]

_log = logging.getLogger("redline.integrations")

#: Longest tool output or error message kept (characters); arguments are bounded by validation.
_TEXT_LIMIT = 2000


@runtime_checkable
class Governed(Protocol):
    """What an integration needs of a monitor: a local :class:`~redline.Monitor` or a
    :class:`~redline.client.RemoteMonitor` reporting to ``redline serve``."""

    def record(self, event: AgentEvent) -> None: ...

    def check(self, agent: str, session_id: str | None = None) -> None: ...


def require(module: str, extra: str, integration: str) -> ModuleType:
    """Import ``module`` or fail with an :class:`ImportError` that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"redline.integrations.{integration} needs {module!r}, which is not installed: "
            f"pip install 'redline[{extra}]'"
        ) from exc


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts in Redline's one convention (see :class:`~redline.AgentEvent`).

    ``tokens_in`` includes cached input (``cached`` are cache reads, ``cache_write`` cache
    writes); ``tokens_out`` includes ``reasoning``. Use :meth:`from_parts` when a provider
    reports cached input apart from the rest (Anthropic does).
    """

    tokens_in: int | None = None
    tokens_out: int | None = None
    cached: int | None = None
    cache_write: int | None = None
    reasoning: int | None = None

    @classmethod
    def from_parts(
        cls,
        uncached_in: int | None,
        tokens_out: int | None,
        *,
        cache_read: int | None = None,
        cache_write: int | None = None,
        reasoning: int | None = None,
    ) -> Usage:
        """Usage from a provider that counts cache reads and writes outside its input count."""
        parts = [v for v in (uncached_in, cache_read, cache_write) if v is not None]
        return cls(
            tokens_in=sum(parts) if parts else None,
            tokens_out=tokens_out,
            cached=cache_read,
            cache_write=cache_write,
            reasoning=reasoning,
        )


@dataclass(slots=True)
class Step:
    """One model or tool call in flight: who, when it started, and what it reserved."""

    identity: Identity
    started: float
    reservation: Any = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class StepRecorder:
    """The governed core of one integration instance (see the module docstring)."""

    def __init__(
        self,
        monitor: Governed,
        *,
        integration: str,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        capture_content: bool = False,
    ) -> None:
        self.monitor = monitor
        self.integration = integration
        self.defaults = Identity(agent=agent, session_id=session_id, user=user, tenant=tenant)
        self.capture_content = capture_content
        # Who acts when neither the call nor a redline.context() says more: decided once.
        self._fixed = self.defaults if agent else Identity("unknown", session_id, user, tenant)
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        self._quiet = _Quietly(self)
        # Only a monitor with budgets reserves: otherwise an estimate is work for nothing.
        reserve = (
            getattr(monitor, "reserve", None) if getattr(monitor, "has_budgets", False) else None
        )
        self._reserve: Callable[..., Any] | None = reserve if callable(reserve) else None

    @property
    def reserves(self) -> bool:
        """Whether the monitor reserves budget before model calls (so an estimate is worth
        computing); a remote monitor or one without budgets only checks."""
        return self._reserve is not None

    # -- identity --------------------------------------------------------------------------

    def identity(
        self,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
    ) -> Identity:
        """Who acts: explicit arguments, then this integration's own, then ``redline.context``.

        The agent is never empty: ``"unknown"`` when nothing names it, so a kill of the fleet
        still applies and the events are visible.
        """
        ctx = current_identity()
        if (
            ctx is NOBODY
            and agent is None
            and session_id is None
            and user is None
            and tenant is None
        ):
            return self._fixed  # the common case: no context, nothing per call
        found = (
            Identity(agent=agent, session_id=session_id, user=user, tenant=tenant)
            .over(self.defaults)
            .over(ctx)
        )
        if not found.agent:
            found = Identity("unknown", found.session_id, found.user, found.tenant)
        return found

    # -- before ----------------------------------------------------------------------------

    def before_model(
        self,
        identity: Identity,
        *,
        model: str | None = None,
        tokens_in: int | Callable[[], int | None] | None = None,
        max_tokens_out: int | None = None,
    ) -> Step:
        """Check the kill switch, reserve the call's estimated cost, start the clock.

        Raises :class:`~redline.AgentStoppedError` (a kill or an exhausted budget). A monitor
        without budgets (or a remote one) only checks. ``tokens_in`` may be a callable, called
        only when a reservation needs the estimate (counting a long prompt is not free).
        """
        assert identity.agent is not None
        self.monitor.check(identity.agent, identity.session_id)
        reservation = None
        reserve = self._reserve
        if reserve is not None and model is not None:
            reservation = reserve(
                identity.agent,
                model=model,
                tokens_in=tokens_in() if callable(tokens_in) else tokens_in,
                max_tokens_out=max_tokens_out,
                session_id=identity.session_id,
                user=identity.user,
                tenant=identity.tenant,
            )
        return Step(identity, time.perf_counter(), reservation, model)

    def before_tool(self, identity: Identity, tool: str | None) -> Step:
        """Check the kill switch before a tool runs; raises :class:`~redline.AgentStoppedError`."""
        assert identity.agent is not None
        self.monitor.check(identity.agent, identity.session_id)
        return Step(identity, time.perf_counter(), None, tool)

    # -- after -----------------------------------------------------------------------------

    def model_done(
        self,
        step: Step,
        *,
        model: str | None,
        usage: Usage | None = None,
        provider: str | None = None,
        error: BaseException | str | None = None,
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        data: Mapping[str, Any] | None = None,
        trace: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        """Record the model call as ``llm_call`` (``error`` when it failed) and settle its
        reservation: committed with the actual usage, or released when the call failed before
        any usage was reported."""
        with self.quietly():
            u = usage or Usage()
            payload: dict[str, Any] = {"integration": self.integration}
            if provider:
                payload["provider"] = provider
            if data:
                payload.update(data)
            res = step.reservation
            if res is not None:
                payload["reservation_id"] = getattr(res, "id", None)
            self._error_fields(payload, error)
            event = self._event(
                step,
                "llm_call" if error is None else "error",
                model=model or step.name,
                cost_usd=cost_usd,
                latency_ms=step.elapsed_ms() if latency_ms is None else latency_ms,
                status="ok" if error is None else "error",
                tokens_in=u.tokens_in,
                tokens_out=u.tokens_out,
                tokens_cached=u.cached,
                tokens_cache_write=u.cache_write,
                tokens_reasoning=u.reasoning,
                data=payload,
                trace=trace,
            )
            self.monitor.record(event)
            if res is not None:
                if error is not None and usage is None:
                    res.release()
                else:
                    res.commit(
                        cost_usd,
                        model=model or step.name,
                        tokens_in=u.tokens_in,
                        tokens_out=u.tokens_out,
                        tokens_cached=u.cached,
                    )

    def tool_done(
        self,
        step: Step,
        *,
        tool: str | None = None,
        arguments: Any = None,
        output: Any = None,
        error: BaseException | str | None = None,
        latency_ms: float | None = None,
        data: Mapping[str, Any] | None = None,
        trace: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        """Record the tool call as ``tool_call`` with its (redacted) arguments and status."""
        with self.quietly():
            payload: dict[str, Any] = {"integration": self.integration}
            if arguments is not None:
                payload["arguments"] = _plain(arguments)
            if output is not None and self.capture_content:
                payload["output"] = _clip(output)
            if data:
                payload.update(data)
            self._error_fields(payload, error)
            self.monitor.record(
                self._event(
                    step,
                    "tool_call",
                    tool=tool or step.name,
                    latency_ms=step.elapsed_ms() if latency_ms is None else latency_ms,
                    status="ok" if error is None else "error",
                    data=payload,
                    trace=trace,
                )
            )

    def record(self, identity: Identity, event_type: str, **fields: Any) -> None:
        """Record any other event (a handoff, a guardrail result) for ``identity``, quietly."""
        with self.quietly():
            step = Step(identity, time.perf_counter())
            trace = fields.pop("trace", None)
            self.monitor.record(self._event(step, event_type, trace=trace, **fields))

    def abandon(self, step: Step) -> None:
        """Release what ``step`` reserved (the framework dropped the call)."""
        with self.quietly():
            if step.reservation is not None:
                step.reservation.release()

    # -- never break the agent by accident -------------------------------------------------

    def quietly(self) -> _Quietly:
        """Run adapter code: a deliberate stop propagates, any other failure is swallowed.

        A plain context-manager object, reused (a generator-based one costs ~1 µs per use,
        and every hook uses a few)."""
        return self._quiet

    def _swallowed(self, exc: Exception) -> None:
        key = type(exc).__name__
        note = getattr(self.monitor, "note_integration_error", None)
        if note is not None:
            with suppress(Exception):
                note(self.integration)
        with self._lock:
            first = key not in self._logged
            self._logged.add(key)
        if first:
            _log.warning(
                "redline integration %s: %s while recording (further %s errors are counted, "
                "not logged)",
                self.integration,
                key,
                key,
                exc_info=exc,
            )

    # -- helpers ---------------------------------------------------------------------------

    def _event(
        self,
        step: Step,
        event_type: str,
        *,
        trace: tuple[str | None, str | None, str | None] | None = None,
        **fields: Any,
    ) -> AgentEvent:
        ident = step.identity
        trace_id, span_id, parent = trace if trace is not None else _current_ids()
        return AgentEvent(
            agent=ident.agent or "unknown",
            event_type=event_type,
            session_id=ident.session_id,
            user=ident.user,
            tenant=ident.tenant,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            **fields,
        )

    @staticmethod
    def _error_fields(payload: dict[str, Any], error: BaseException | str | None) -> None:
        if error is None:
            return
        if isinstance(error, BaseException):
            payload["error_type"] = type(error).__name__
            payload["error"] = _clip(str(error))
        else:
            payload["error"] = _clip(error)


_OTEL: list[Any] = []  # [opentelemetry.trace or None], resolved on first use


#: How many calls an integration keeps in flight before the oldest is given up.
IN_FLIGHT_LIMIT = 4096


class Bounded:
    """Values by key, oldest first, at most ``limit``; ``on_drop`` gets what is pushed out.

    A framework that starts a call and never ends it (a crash, a cancelled run, a hook it does
    not call on failure) must not make an integration grow without bound, nor keep a budget
    reservation forever: the call pushed out (or replaced under the same key) goes to
    ``on_drop``, for steps :meth:`StepRecorder.abandon`, which releases what it reserved.
    """

    def __init__(
        self, on_drop: Callable[[Any], object] | None = None, limit: int = IN_FLIGHT_LIMIT
    ) -> None:
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._limit = limit
        self._on_drop = on_drop
        self._lock = threading.Lock()

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            replaced = self._items.pop(key, None)
            self._items[key] = value
            dropped = self._items.popitem(last=False)[1] if len(self._items) > self._limit else None
        for old in (replaced, dropped):
            if old is not None and self._on_drop is not None:
                self._on_drop(old)

    def get(self, key: Hashable) -> Any:
        return self._items.get(key)

    def pop(self, key: Hashable) -> Any:
        with self._lock:
            return self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class _Quietly:
    """``with recorder.quietly():`` lets :class:`~redline.AgentStoppedError` (and
    ``BaseException``) through and swallows, logs once and counts any other ``Exception``."""

    __slots__ = ("_recorder",)

    def __init__(self, recorder: StepRecorder) -> None:
        self._recorder = recorder

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc is None or isinstance(exc, AgentStoppedError) or not isinstance(exc, Exception):
            return False
        self._recorder._swallowed(exc)  # the agent must not fail because we did
        return True


def _otel_trace() -> Any:
    if not _OTEL:
        try:
            from opentelemetry import trace as otel_trace
        except ImportError:
            otel_trace = None  # type: ignore[assignment]
        _OTEL.append(otel_trace)
    return _OTEL[0]


def _current_ids() -> tuple[str | None, str | None, str | None]:
    """Trace ids of the current OpenTelemetry span if one is recording, else Redline's trace."""
    otel_trace = _otel_trace()
    if otel_trace is not None:
        ctx = otel_trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", None
    causal = current_trace()
    if causal is not None:
        return causal.w3c_trace_id, causal.w3c_span_id, None
    return None, None, None


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "…"


def _plain(value: Any) -> Any:
    """Arguments as JSON-able data (the monitor's redaction then scrubs secrets out of it)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return _clip(value) if isinstance(value, str) else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _plain(dump())
        except Exception:
            pass
    return _clip(value)
