"""The in-process event bus: typed and wildcard subscribers (seed 003).

Subscribers run on the recording thread, after the event is validated and counted, so they must be
quick (exporters hand off to their own queues). A subscriber that raises is isolated: the error is
counted per subscriber, logged once, and neither ``record()`` nor the other subscribers notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from redline.events import AgentEvent

__all__ = ["EventBus", "Handler"]

log = logging.getLogger("redline")

Handler = Callable[[AgentEvent], object]


class EventBus:
    """Routes each event to the subscribers of its type and to the wildcard subscribers."""

    def __init__(self) -> None:
        self._typed: dict[str, tuple[Handler, ...]] = {}
        self._wildcard: tuple[Handler, ...] = ()
        self._lock = threading.Lock()
        #: True while anyone listens; lets ``record()`` skip the bus entirely otherwise.
        self.active = False
        self.errors: dict[str, int] = {}
        self.delivered = 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held this one)."""
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler, event_type: str | None = None) -> Callable[[], None]:
        """Call ``handler(event)`` for events of ``event_type`` (all when ``None``).

        Returns a function that unsubscribes.
        """
        with self._lock:
            if event_type is None:
                self._wildcard = (*self._wildcard, handler)
            else:
                self._typed[event_type] = (*self._typed.get(event_type, ()), handler)
            self.active = True

        def unsubscribe() -> None:
            with self._lock:
                if event_type is None:
                    self._wildcard = tuple(h for h in self._wildcard if h is not handler)
                else:
                    rest = tuple(h for h in self._typed.get(event_type, ()) if h is not handler)
                    if rest:
                        self._typed[event_type] = rest
                    else:
                        self._typed.pop(event_type, None)
                self.active = bool(self._wildcard or self._typed)

        return unsubscribe

    def publish(self, event: AgentEvent) -> None:
        """Hand ``event`` to its subscribers; never raises."""
        typed = self._typed.get(event.event_type, ())
        for handler in (*typed, *self._wildcard):
            try:
                handler(event)
                self.delivered += 1
            except Exception:
                name = getattr(handler, "__qualname__", None) or repr(handler)
                count = self.errors.get(name, 0)
                self.errors[name] = count + 1
                if count == 0:
                    log.exception(
                        "redline subscriber %s failed; further failures are counted", name
                    )
