"""Redline: governance-first observability for AI agents. See, stop, prove.

Three lines give an agent a monitor::

    from redline import Monitor, AgentEvent, load_config
    monitor = Monitor(load_config("monitor.yaml"))
    monitor.record(AgentEvent(agent="sales-agent", event_type="action", cost_usd=0.007))
"""

from __future__ import annotations

import os as _os

if _os.environ.get("REDLINE_PURE_PYTHON", "") not in ("", "0"):
    from redline._compiled import prefer_source as _prefer_source

    _prefer_source()

from redline._context import context
from redline.alerts.manager import Alert
from redline.config import MonitorConfig, load_config, parse_config
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
