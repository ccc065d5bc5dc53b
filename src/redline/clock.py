"""Time, injected.

Windows, cooldowns, baselines, TTLs and retention all read time through a :class:`Clock`, so
tests drive a manual clock (``redline.testing.ManualClock``) instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``time()`` returning seconds since the epoch, as ``time.time()``."""

    def time(self) -> float: ...


class SystemClock:
    """The wall clock. ``time`` is bound straight to ``time.time`` so a call costs nothing extra."""

    __slots__ = ()

    time = staticmethod(time.time)
