"""Detectors as protocols, built once from config and compiled into the per-event pipeline.

Two kinds, by the thread they run on:

* an :class:`ActionDetector` sees every event that performs an action (a tool call, or an
  action event naming one), on the recording thread, and may return an :class:`Anomaly`: it must
  be O(1) and touch memory only (``record()`` never waits);
* an :class:`IntervalDetector` sees an agent's totals when a window interval closes, on the
  duties thread.

:data:`DETECTORS` names each one: the field of the ``detectors:`` config section that configures
it, its kind, and its class as ``"module:Class"`` (imported only when enabled). Adding a detector
is one module with its class, one config struct in :class:`redline.config.schema.DetectorsConfig`
and one line here. The order of :data:`DETECTORS` is the order detectors see an event.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from redline.config.schema import DetectorsConfig
    from redline.detect.anomaly import Anomaly
    from redline.events import AgentEvent
    from redline.metrics.windows import Totals

__all__ = ["DETECTORS", "ActionDetector", "IntervalDetector", "build_detectors"]


@runtime_checkable
class ActionDetector(Protocol):
    """Judges one action as it is recorded (in memory, O(1))."""

    def observe(self, event: AgentEvent, name: str) -> Anomaly | None:
        """An anomaly when ``event`` (performing the action ``name``) is one."""
        ...


@runtime_checkable
class IntervalDetector(Protocol):
    """Judges an agent's totals when a window interval closes (the duties thread)."""

    def observe_interval(self, agent: str, totals: Totals) -> Anomaly | None:
        """An anomaly when the interval's ``totals`` for ``agent`` are one."""
        ...


#: ``(config field, kind, "module:Class")`` for every detector, in the order they run.
DETECTORS: Final[tuple[tuple[str, str, str], ...]] = (
    ("suspicious", "action", "redline.detect.patterns:SuspiciousDetector"),
    ("loop", "action", "redline.detect.patterns:LoopDetector"),
    ("stuck", "action", "redline.detect.patterns:StuckDetector"),
    ("drift", "interval", "redline.detect.drift:DriftDetector"),
)


def build_detectors(
    config: DetectorsConfig, clock: Callable[[], float]
) -> tuple[tuple[ActionDetector, ...], tuple[IntervalDetector, ...]]:
    """The enabled detectors, built once: ``(action detectors, interval detectors)``."""
    actions: list[ActionDetector] = []
    intervals: list[IntervalDetector] = []
    for field, kind, target in DETECTORS:
        section: Any = getattr(config, field)
        if not section.enabled:
            continue
        module, _, name = target.partition(":")
        built = getattr(importlib.import_module(module), name)(section, clock)
        if kind == "action":
            actions.append(built)
        else:
            intervals.append(built)
    return tuple(actions), tuple(intervals)
