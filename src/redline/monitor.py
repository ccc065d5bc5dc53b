"""``Monitor``: the one object an agent talks to, a façade over parts built once from config.

Its methods live with the idea they hold, each module a layer over the one before it, so a part
can be read (and changed) without the rest:

* :mod:`redline._core`: the parts (validation, redaction, windows, detectors, kill switch, bus,
  writer, alerts, budgets), built once in ``__init__``, and the internal record/alert paths;
* :mod:`redline.control._switches`: kill, revive, ``check()``, ``kill_for()``, ``guard()``;
* :mod:`redline._pipeline`: ``record()``, a handful of dict lookups and O(1) arithmetic under
  one short lock, then one queue append; what it decides (a kill) is done in memory;
* :mod:`redline._reads`: metrics, events, exports, verification, stats (reads never act);
* :mod:`redline._duties`: interval work on one thread (``run_duties()``) and the alert lifecycle;
* :mod:`redline.control.budgets.facade`: ``reserve()``, ``budgets()``.

Anything slow (the store, alert delivery, persistence of kills) happens off the recording path.
"""

from __future__ import annotations

from pathlib import Path

from redline import shutdown
from redline._duties import Duties
from redline.control.budgets.facade import BudgetMethods
from redline.guard import Guard

__all__ = ["Guard", "Monitor"]


class Monitor(Duties, BudgetMethods):
    """Governance-first observability for one process: see, judge, act, prove.

    ``Monitor()`` alone keeps events in a bounded in-memory store with default windows; pass a
    :class:`~redline.config.MonitorConfig` (``load_config("monitor.yaml")``) for the rest.
    ``clock`` injects time (tests and simulations use ``redline.testing.ManualClock``); ``store``
    overrides the configured storage; ``strict=True`` raises on bad events instead of repairing.
    """

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the writer, persist baselines and close the store. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        self._ready = False
        if self._budgets is not None:
            self._budgets.close()  # pending spend written, threshold records queued
        ok = self._writer.close(timeout)
        self._exporters.close()
        ok = self.alerts.close(timeout) and ok
        path = self.config.baselines.storage_path
        learned = self._baselines_dirty or bool(self._event_rules and self._recorded)
        if path and learned:
            # Only a monitor that learned something writes: a short-lived one (a script, the
            # CLI) must not overwrite what the agents learned.
            self._save_baselines(Path(path))
        shutdown.unregister(self)
        return ok

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
