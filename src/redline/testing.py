"""Test doubles Redline ships for its users and uses itself, instead of mocks.

* :class:`ManualClock`: time that moves only when the test says so.
* :class:`RecordingSubscriber`: a bus subscriber that keeps what it saw.
"""

from __future__ import annotations

import threading

from redline.events import AgentEvent

__all__ = ["ManualClock", "RecordingSubscriber"]


class ManualClock:
    """A clock for tests and simulations: starts at ``start`` and moves by ``advance()``/``set()``."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)

    def time(self) -> float:
        """The current manual time, in seconds since the epoch."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (forwards or backwards, for replaying recorded traffic)."""
        self._now = float(now)


class RecordingSubscriber:
    """Collects the events the bus hands it; ``wait_for(n)`` blocks until ``n`` arrived."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: AgentEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Whether ``count`` events arrived within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.events) >= count, timeout)

    @property
    def types(self) -> list[str]:
        """The event types seen, in order."""
        return [e.event_type for e in self.events]
