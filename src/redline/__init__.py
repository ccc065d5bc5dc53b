"""Redline: governance-first observability for AI agents. See, stop, prove.

Three lines give an agent a monitor::

    from redline import Monitor, AgentEvent, load_config
    monitor = Monitor(load_config("monitor.yaml"))
    monitor.record(AgentEvent(agent="sales-agent", event_type="action", cost_usd=0.007))

The public surface is exactly ``__all__`` (a test holds it to that):

* the monitor: ``Monitor``, ``MonitorConfig``, ``load_config``, ``parse_config``, ``context``
* events: ``AgentEvent``, ``EventType``, ``EVENT_TYPES``, ``CATEGORIES``, ``category_of``
* what a monitor returns: ``MetricSnapshot``, ``METRIC_NAMES``, ``Alert``, ``Anomaly``,
  ``AnomalyAlert``, ``Store``, ``EventQuery``, ``StoredEvent``, ``KillRecord``, ``Reservation``,
  ``BudgetState``
* tracing: ``CausalTraceId``, ``current_trace``, ``start_span``
* errors: ``RedlineError`` and under it ``ConfigError``, ``InvalidEventError``, ``StoreError``,
  ``IntegrityError``, ``AgentStoppedError``, ``AgentKilledError``, ``BudgetExceededError``
* ``__version__``

Each name is imported when first used (module ``__getattr__``, PEP 562), so ``import redline``
costs a few milliseconds and pulls in neither PyYAML, cryptography, httpx nor an alert channel:
a command or an agent pays only for what it touches (``bench/import_time.py`` measures it).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os

# Not ``typing.TYPE_CHECKING``: importing typing would be a third of ``import redline``.
TYPE_CHECKING = False

if _os.environ.get("REDLINE_PURE_PYTHON", "") not in ("", "0"):
    from redline._compiled import prefer_source as _prefer_source

    _prefer_source()

if TYPE_CHECKING:
    from typing import Any

    from redline._context import context
    from redline.alerts.manager import Alert
    from redline.config import MonitorConfig, load_config, parse_config
    from redline.control.budgets.reservation import BudgetState, Reservation
    from redline.detect.anomaly import Anomaly, AnomalyAlert
    from redline.events import CATEGORIES, EVENT_TYPES, AgentEvent, EventType, category_of
    from redline.exceptions import (
        AgentKilledError,
        AgentStoppedError,
        BudgetExceededError,
        ConfigError,
        IntegrityError,
        InvalidEventError,
        RedlineError,
        StoreError,
    )
    from redline.metrics.snapshot import METRIC_NAMES, MetricSnapshot
    from redline.monitor import Monitor
    from redline.store.base import EventQuery, KillRecord, Store, StoredEvent
    from redline.tracing import CausalTraceId, current_trace, start_span

__version__ = "0.1.0"

#: Public name → the module that defines it (imported on first use).
_HOMES: dict[str, str] = {
    "context": "redline._context",
    "Alert": "redline.alerts.manager",
    "MonitorConfig": "redline.config",
    "load_config": "redline.config",
    "parse_config": "redline.config",
    "BudgetState": "redline.control.budgets.reservation",
    "Reservation": "redline.control.budgets.reservation",
    "Anomaly": "redline.detect.anomaly",
    "AnomalyAlert": "redline.detect.anomaly",
    "CATEGORIES": "redline.events",
    "EVENT_TYPES": "redline.events",
    "AgentEvent": "redline.events",
    "EventType": "redline.events",
    "category_of": "redline.events",
    "AgentKilledError": "redline.exceptions",
    "AgentStoppedError": "redline.exceptions",
    "BudgetExceededError": "redline.exceptions",
    "ConfigError": "redline.exceptions",
    "IntegrityError": "redline.exceptions",
    "InvalidEventError": "redline.exceptions",
    "RedlineError": "redline.exceptions",
    "StoreError": "redline.exceptions",
    "METRIC_NAMES": "redline.metrics.snapshot",
    "MetricSnapshot": "redline.metrics.snapshot",
    "Monitor": "redline.monitor",
    "EventQuery": "redline.store.base",
    "KillRecord": "redline.store.base",
    "Store": "redline.store.base",
    "StoredEvent": "redline.store.base",
    "CausalTraceId": "redline.tracing",
    "current_trace": "redline.tracing",
    "start_span": "redline.tracing",
}

__all__ = [
    "CATEGORIES",
    "EVENT_TYPES",
    "METRIC_NAMES",
    "AgentEvent",
    "AgentKilledError",
    "AgentStoppedError",
    "Alert",
    "Anomaly",
    "AnomalyAlert",
    "BudgetExceededError",
    "BudgetState",
    "CausalTraceId",
    "ConfigError",
    "EventQuery",
    "EventType",
    "IntegrityError",
    "InvalidEventError",
    "KillRecord",
    "MetricSnapshot",
    "Monitor",
    "MonitorConfig",
    "RedlineError",
    "Reservation",
    "Store",
    "StoreError",
    "StoredEvent",
    "__version__",
    "category_of",
    "context",
    "current_trace",
    "load_config",
    "parse_config",
    "start_span",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'redline' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
