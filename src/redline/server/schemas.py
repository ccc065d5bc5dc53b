"""The shapes the HTTP API reads and writes, as ``msgspec`` structs.

Request bodies are converted into these (so a wrong type is a 400 naming the field), responses are
encoded from them, and the OpenAPI document's schemas are generated from them
(:mod:`redline.server.openapi`), so the three cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from redline.alerts.manager import Alert
from redline.metrics.snapshot import MetricSnapshot
from redline.store._history import HistoryPoint
from redline.store.base import KillRecord
from redline.store.chain import VerifyReport

__all__ = [
    "AckFilter",
    "AckRequest",
    "AgentList",
    "AgentRow",
    "AlertList",
    "BudgetList",
    "BudgetRow",
    "CheckResponse",
    "ErrorBody",
    "Health",
    "Identity",
    "IngestItem",
    "IngestResponse",
    "KillAgent",
    "KillGlobal",
    "KillList",
    "KillRequest",
    "KillResponse",
    "KillSession",
    "MetricHistory",
    "Ready",
    "ReviveAgent",
    "ReviveGlobal",
    "ReviveRequest",
    "ReviveResponse",
    "ReviveSession",
    "VerifyReport",
]

Scope = Literal["agent", "session", "global"]
Text = Annotated[str, msgspec.Meta(max_length=1000)]


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error: a stable machine-readable ``error`` code and a human ``message``."""

    error: str
    message: str


class IngestItem(msgspec.Struct, kw_only=True):
    """What happened to one event of a batch that was not simply accepted."""

    index: int
    status: Literal["repaired", "rejected"]
    reasons: list[str]


class IngestResponse(msgspec.Struct, kw_only=True):
    """Counts for a batch; ``results`` lists only the events that were repaired or rejected."""

    accepted: int
    repaired: int
    rejected: int
    results: list[IngestItem]


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=31_536_000)]


class _Kill(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="scope"):
    reason: Text = ""
    ttl: Seconds | None = None


class KillAgent(_Kill, tag="agent"):
    """Kill one agent (everywhere the store is shared)."""

    target: Name


class KillSession(_Kill, tag="session"):
    """Kill one session; ``agent`` (optional) labels the kill event."""

    target: Name
    agent: Name | None = None


class KillGlobal(_Kill, tag="global"):
    """Kill every agent."""


#: ``POST /v1/kill``'s body: ``scope`` picks the shape (``target`` is required but for global).
KillRequest = KillAgent | KillSession | KillGlobal


class _Revive(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="scope"):
    """Common base of the revive bodies: tagged by ``scope``, unknown fields rejected."""


class ReviveAgent(_Revive, tag="agent"):
    """Lift the kill on one agent."""

    target: Name


class ReviveSession(_Revive, tag="session"):
    """Lift the kill on one session."""

    target: Name


class ReviveGlobal(_Revive, tag="global"):
    """Lift the fleet-wide kill."""


#: ``POST /v1/revive``'s body.
ReviveRequest = ReviveAgent | ReviveSession | ReviveGlobal


class AckRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An optional note kept with the acknowledgement."""

    note: Text = ""


class AckFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which firing alerts to acknowledge (every one without a filter), and a note."""

    agent: Name | None = None
    kind: Name | None = None
    rule: Name | None = None
    severity: Name | None = None
    note: Text = ""


class KillResponse(msgspec.Struct, kw_only=True):
    """The kill now in force."""

    kill: KillRecord


class ReviveResponse(msgspec.Struct, kw_only=True):
    """Whether a kill was lifted (``false``: there was none)."""

    revived: bool
    scope: Scope
    target: str


class KillList(msgspec.Struct, kw_only=True):
    """Every active kill."""

    kills: list[KillRecord]


class CheckResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``killed: false``, or the kill that covers the agent/session (global, agent, session)."""

    killed: bool
    scope: str | None = None
    target: str | None = None
    reason: str | None = None
    actor: str | None = None
    expires_at: float | None = None


class AgentRow(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One agent: its state, the dashboard's columns, and (``detail=full``) every metric.

    ``kill`` is the kill that stops the agent now, as :meth:`redline.Monitor.kill_for` decides
    (global, then agent): clients show it as sent rather than rank kills themselves.
    """

    agent: str
    state: Literal["running", "killed"]
    kill: KillRecord | None = None
    event_count: int = 0
    events_per_minute: float = 0.0
    cost_per_minute: float = 0.0
    cost_total: float = 0.0
    error_rate: float = 0.0
    p95_latency_ms: float = 0.0
    last_event_at: float | None = None
    metrics: MetricSnapshot | None = None


class AgentList(msgspec.Struct, kw_only=True):
    """The fleet over one window; ``global_kill`` is set while everything is stopped."""

    window_seconds: int
    timestamp: float
    global_kill: KillRecord | None
    agents: list[AgentRow]


class AlertList(msgspec.Struct, kw_only=True):
    """Alerts from the store, each in its newest state, newest first.

    ``truncated`` says that more alerts matched than ``limit`` allowed: the list is never cut
    short silently.
    """

    alerts: list[Alert]
    truncated: bool = False


class MetricHistory(msgspec.Struct, kw_only=True):
    """``GET /v1/metrics/history``: one point per ``step`` seconds from ``since`` (aligned down to
    the step) to ``until``; empty steps are zero points, so a chart's x-axis is continuous.
    ``p50_latency_ms``/``p95_latency_ms`` come from per-minute histograms (within ±12 %) and are
    null for a step with no latency. ``agent`` is null for the whole fleet."""

    agent: str | None
    since: float
    until: float
    step: int
    points: list[HistoryPoint]


class Identity(msgspec.Struct, kw_only=True):
    """The calling token: its name (the actor it is recorded as) and role."""

    name: str
    role: Literal["ingest", "read", "admin"]


class Health(msgspec.Struct, kw_only=True):
    """Liveness."""

    status: str


class Ready(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Readiness: ``ok`` true when the store answers and the writer keeps up."""

    ok: bool
    store: str
    queued: int
    last_write_at: float | None = None
    problems: list[str] = msgspec.field(default_factory=list)


def event_page_schema(event_ref: str) -> dict[str, Any]:
    """The schema of ``GET /v1/events``'s response (events are stored events)."""
    return {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": event_ref}},
            "next_cursor": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "Pass as `cursor` for the next page; null when this was the last.",
            },
        },
    }


class BudgetRow(msgspec.Struct, kw_only=True):
    """One budget key in its current period (see :class:`redline.control.budgets.BudgetState`)."""

    name: str
    scope: str
    key: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    remaining_usd: float
    period_start: float
    resets_at: float
    action: str


class BudgetList(msgspec.Struct, kw_only=True):
    """Every budget key with spend or holds, read from the store's ledger (every monitor on it)."""

    budgets: list[BudgetRow]
