"""Turn anomalies, kills and revives into alerts, and hand them to channels and hooks.

Every alert is also recorded as an ``alert`` event by the monitor, so the audit trail holds it
whatever happens to delivery. Channels with a ``min_severity`` only see alerts at or above it.

``notify()`` never blocks on the network and never raises: local channels (console, jsonl) are
written inline, remote ones are queued for :class:`~redline.alerts.delivery.Dispatcher`, which
retries, breaks circuits and dead-letters on its own threads (see :mod:`redline.alerts.delivery`).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from redline.alerts.channels import build_channel
from redline.alerts.delivery import Dispatcher, RetryPolicy
from redline.clock import Clock
from redline.config import AlertConfig, severity_rank
from redline.exceptions import ConfigError

__all__ = ["Alert", "AlertChannel", "AlertManager", "build_channel"]

log = logging.getLogger("redline")

#: States an alert moves through; channels map them to their vendor's action.
STATES = ("firing", "acknowledged", "resolved")


class Alert(msgspec.Struct, kw_only=True):
    """One notification: what happened, to whom, how bad, and the evidence."""

    id: str
    kind: str
    severity: str
    title: str
    message: str
    agent: str
    timestamp: float
    rule: str | None = None
    session_id: str | None = None
    fingerprint: str = ""
    state: str = "firing"
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    #: How many times the alert's cause happened while its group was open (see
    #: :mod:`redline.alerts.groups`), and when it was first and last seen.
    count: int = 1
    first_seen: float | None = None
    last_seen: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON channels and the ``alert`` event."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class AlertChannel(Protocol):
    """Anything that can deliver an alert.

    Optional attributes the manager looks for: ``deliver_inline`` (True for local channels,
    written on the caller's thread), ``redact(text)`` (masks credentials in error messages) and
    ``close()`` (releases connections).
    """

    name: str
    min_severity: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert (may raise; the manager counts and survives it)."""
        ...


_LIVE: weakref.WeakSet[AlertManager] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """Give queued alerts (a kill just before exit) a bounded chance to go out."""
    for manager in list(_LIVE):
        manager.flush(manager.exit_timeout)


class AlertManager:
    """Fans alerts out to channels and hooks, counting what was sent and what failed.

    Delivery options (all keyword-only): ``dead_letter_path`` (JSONL of alerts that finally
    failed; None keeps none), ``queue_size`` (per remote channel), ``max_attempts``,
    ``backoff_base``/``backoff_cap`` (seconds, full jitter), ``max_retry_after``,
    ``breaker_threshold``/``breaker_reset_seconds``, ``exit_timeout`` (how long interpreter
    exit waits for queued alerts), and for tests ``sleep``, ``clock`` and ``rng``.
    """

    def __init__(
        self,
        config: AlertConfig | None = None,
        *,
        channels: Iterable[AlertChannel] = (),
        dead_letter_path: str | os.PathLike[str] | None = None,
        queue_size: int = 1000,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 300.0,
        breaker_threshold: int = 5,
        breaker_reset_seconds: float = 30.0,
        exit_timeout: float = 5.0,
        sleep: Callable[[float], object] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._dispatcher = Dispatcher(
            queue_size=queue_size,
            retry=RetryPolicy(max_attempts, backoff_base, backoff_cap, max_retry_after),
            breaker_threshold=breaker_threshold,
            breaker_reset_seconds=breaker_reset_seconds,
            dead_letter_path=dead_letter_path,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        self.exit_timeout = exit_timeout
        self.channels: list[AlertChannel] = []
        self.unsupported: list[str] = []
        errors: list[str] = []
        for i, ch in enumerate(config.channels if config else []):
            if not ch.enabled:
                continue
            try:
                built = build_channel(ch)
            except ConfigError as exc:
                errors.extend(f"alerts.channels[{i}].{e}" for e in exc.errors)
                continue
            if built is None:
                self.unsupported.append(ch.type)
                log.warning(
                    "redline: alert channel type %r is not delivered by this build; "
                    "alerts are still stored as 'alert' events",
                    ch.type,
                )
            else:
                self.channels.append(built)
        if errors:
            raise ConfigError(errors)
        self.channels.extend(channels)
        self._routes: list[tuple[str, int, bool]] = []
        taken: set[str] = set()
        for channel in self.channels:
            base, n = channel.name, 1
            while channel.name in taken:  # two unnamed webhooks: "webhook", "webhook-2"
                n += 1
                channel.name = f"{base}-{n}"
            taken.add(channel.name)
            self._dispatcher.add(channel)
            inline = bool(getattr(channel, "deliver_inline", False))
            self._routes.append((channel.name, severity_rank(channel.min_severity), inline))
        self._hooks: list[Callable[[Alert], object]] = []
        self._ids = itertools.count(1)
        self._epoch = int(time.time()) & 0xFFFFFF  # ids stay unique across restarts
        self._lock = threading.Lock()
        self.hook_errors = 0
        self.history: list[Alert] = []
        self._max_history = 1000
        if any(not inline for _, _, inline in self._routes):
            _LIVE.add(self)

    def next_id(self) -> str:
        """A process-unique alert id."""
        return f"al-{os.getpid():x}{self._epoch:x}-{next(self._ids)}"

    def add_hook(self, hook: Callable[[Alert], object]) -> Callable[[], None]:
        """Call ``hook(alert)`` for every alert; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def notify(self, alert: Alert, channels: Iterable[str] | None = None) -> None:
        """Hand ``alert`` to each channel at or above its severity, then to hooks. Never raises.

        ``channels`` (a rule's own routing) names the channels to use instead; those get the
        alert whatever their ``min_severity``. Remote channels only get it queued; hooks run
        inline, their exceptions logged and counted.
        """
        with self._lock:
            self.history.append(alert)
            if len(self.history) > self._max_history:
                del self.history[: len(self.history) - self._max_history]
        dispatcher = self._dispatcher
        try:
            rank = severity_rank(alert.severity)
            chosen = set(channels) if channels is not None else None
            for name, min_rank, inline in self._routes:
                if chosen is not None:
                    if name not in chosen:
                        continue
                elif rank < min_rank:
                    continue
                if inline:
                    dispatcher.deliver_inline(name, alert)
                else:
                    dispatcher.submit(name, alert)
        except Exception:  # a bug in Redline must not reach the agent
            log.exception("redline: routing alert %s failed", alert.id)
        for hook in list(self._hooks):
            try:
                hook(alert)
            except Exception:
                with self._lock:
                    self.hook_errors += 1
                log.exception("redline: alert hook failed")

    # -- counters ---------------------------------------------------------------------------
    @property
    def sent(self) -> int:
        """Deliveries that succeeded, over all channels."""
        return self._dispatcher.total("sent")

    @property
    def failed(self) -> int:
        """Deliveries given up (after retries) plus hooks that raised."""
        return self._dispatcher.total("failed") + self.hook_errors

    def stats(self) -> dict[str, Any]:
        """``sent``, ``failed``, ``retried``, ``dropped``, ``dead_lettered``, ``queued``,
        ``hook_errors`` and the same per channel (plus its ``circuit`` state) under ``channels``."""
        out = self._dispatcher.stats()
        out["hook_errors"] = self.hook_errors
        return out

    # -- lifecycle --------------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every alert queued so far was delivered or given up; False on timeout."""
        return self._dispatcher.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the delivery workers and close channel connections. Idempotent."""
        _LIVE.discard(self)
        return self._dispatcher.close(timeout)
