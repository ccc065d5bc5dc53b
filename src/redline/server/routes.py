"""The route table: every operation's method, path, role, handler, parameters and schemas.

One list (:func:`operations`) both routes requests (:func:`routes`, each wrapped by
:func:`redline.server.gate.guarded` in authentication, authorisation and the per-token rate limit)
and documents them (:func:`redline.server.openapi.build_document`), so what is served is what is
documented. Handlers live in :mod:`redline.server.handlers`, parameter parsing in
:mod:`redline.server.params`; this module only says which is which.
"""

from __future__ import annotations

from typing import Final

from starlette.routing import Route

from redline.compliance.report import FORMATS
from redline.server.context import ServerContext
from redline.server.gate import guarded
from redline.server.handlers import Handlers
from redline.server.handlers.dashboard import ASSET_NAMES
from redline.server.operation import Operation, Param
from redline.server.params import TIME_DESCRIPTION, TIME_SCHEMA, str_param
from redline.server.schemas import (
    AckFilter,
    AckRequest,
    AgentList,
    AlertList,
    BudgetList,
    CheckResponse,
    ErrorBody,
    Health,
    Identity,
    IngestResponse,
    KillList,
    KillResponse,
    MetricHistory,
    Ready,
    ReviveResponse,
)

__all__ = ["ERR", "operations", "routes"]

#: Error responses are documented with this schema.
ERR: Final = ErrorBody


def routes(ctx: ServerContext, table: list[Operation]) -> list[Route]:
    """The Starlette routes for ``table``, each behind the gate."""
    return [Route(op.route_path, guarded(ctx, op), methods=[op.method]) for op in table]


def operations(ctx: ServerContext, h: Handlers) -> list[Operation]:
    """The table for one app: ``h``'s handlers, documented with ``ctx``'s limits.

    Also hands the table to the OpenAPI handler, which documents exactly this list.
    """
    agent_q = str_param("agent", "Only this agent.")
    window = Param(
        "window",
        {"type": "integer", "minimum": 1, "maximum": ctx.monitor.max_window},
        "Window in seconds (default: metrics.default_window_seconds).",
    )
    time_filters = (
        agent_q,
        str_param("type", "Only this event type."),
        str_param("session", "Only this session."),
        str_param("user", "Only this user."),
        Param("since", TIME_SCHEMA, "From. " + TIME_DESCRIPTION),
        Param("until", TIME_SCHEMA, "Until. " + TIME_DESCRIPTION),
    )
    body_errors = {
        400: ("Malformed JSON or an invalid field.", ERR),
        413: ("Body larger than max_body_bytes.", ERR),
    }
    table = [
        Operation(
            "POST",
            "/v1/events",
            "postEvents",
            "Record a batch of events",
            h.ingest.post_events,
            "ingest",
            {
                200: ("What happened to each event.", IngestResponse),
                **body_errors,
                413: ("Body larger than max_body_bytes, or more than max_batch events.", ERR),
                415: ("Neither JSON nor NDJSON.", ERR),
            },
            body="events",
            description='A JSON array of events, `{"events": [...]}`, or NDJSON '
            "(`Content-Type: application/x-ndjson`). Validated as `Monitor.record()` does: "
            "each event is accepted, repaired or rejected, and only the non-accepted appear "
            "in `results`. The whole body is parsed before anything is recorded: malformed "
            "JSON records nothing.",
            tags=("events",),
        ),
        Operation(
            "POST",
            "/v1/traces",
            "postTraces",
            "Receive OpenTelemetry spans (OTLP/HTTP)",
            h.otlp.post_traces,
            "ingest",
            {
                200: ("An ExportTraceServiceResponse; partial_success counts rejections.", "otlp"),
                400: ("Undecodable payload (a google.rpc.Status body).", "otlp"),
                413: ("Body larger than otlp_max_body_bytes, or too many spans.", "otlp"),
                415: ("Neither application/x-protobuf nor application/json.", "otlp"),
                503: ("The writer is behind; retry after Retry-After seconds.", "otlp"),
            },
            body="otlp",
            description="OTLP/HTTP traces: `application/x-protobuf` or `application/json`, "
            "optionally `Content-Encoding: gzip`. GenAI spans (OpenTelemetry GenAI conventions, "
            "OpenInference, OpenLLMetry) become `llm_call`, `tool_call` and `error` events; "
            "other spans are accepted and ignored. Answers in the request's encoding.",
            tags=("events",),
        ),
        Operation(
            "GET",
            "/v1/events",
            "getEvents",
            "Query stored events",
            h.events.get_events,
            "read",
            {200: ("A page of stored events.", "EventPage"), 400: ("Bad parameter.", ERR)},
            params=(
                *time_filters,
                Param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                    "Page size (default 100).",
                ),
                Param(
                    "cursor",
                    {"type": "integer", "minimum": 0, "maximum": 2**62},
                    "`next_cursor` of the previous page.",
                ),
                Param(
                    "order",
                    {"type": "string", "enum": ["desc", "asc"]},
                    "Newest first (default) or oldest first.",
                ),
            ),
            tags=("events",),
        ),
        Operation(
            "GET",
            "/v1/agents",
            "getAgents",
            "The fleet: every agent's metrics and kill state",
            h.fleet.get_agents,
            "read",
            {200: ("Agents, sorted by name.", AgentList), 400: ("Bad parameter.", ERR)},
            params=(
                window,
                Param(
                    "detail",
                    {"type": "string", "enum": ["summary", "full"]},
                    "`full` adds each agent's whole snapshot.",
                ),
            ),
            tags=("fleet",),
        ),
        Operation(
            "GET",
            "/v1/metrics",
            "getFleetMetrics",
            "Fleet-wide metrics",
            h.fleet.get_fleet_metrics,
            "read",
            {
                200: ("The fleet's snapshot (agent `*`).", "MetricSnapshot"),
                400: ("Bad parameter.", ERR),
            },
            params=(window,),
            tags=("fleet",),
        ),
        Operation(
            "GET",
            "/v1/metrics/history",
            "getMetricHistory",
            "Chart history from the store's per-minute rollups",
            h.history.get_history,
            "read",
            {
                200: ("One point per step over the range.", MetricHistory),
                400: ("Bad parameter (a time, a step, too many points).", ERR),
            },
            params=(
                str_param("agent", "Only this agent (default: the whole fleet)."),
                Param(
                    "since",
                    TIME_SCHEMA,
                    "From (default: an hour before until). " + TIME_DESCRIPTION,
                ),
                Param("until", TIME_SCHEMA, "Until (default: now). " + TIME_DESCRIPTION),
                Param(
                    "step",
                    {"type": "integer", "minimum": 60, "maximum": 31 * 86400, "multipleOf": 60},
                    "Seconds per point, whole minutes (default: a round step giving ~120 points).",
                ),
            ),
            description="Events, errors, denials, cost, tokens and p50/p95 latency per step, "
            "served from per-minute rollups the store keeps as it writes (so a day over millions "
            "of events answers in milliseconds). Steps with nothing are zero points. At most "
            "1,500 points per answer. An agent literally named `history` is read with "
            "`/v1/metrics/history?agent=history`.",
            tags=("fleet",),
        ),
        Operation(
            "GET",
            "/v1/metrics/{agent}",
            "getAgentMetrics",
            "One agent's metrics",
            h.fleet.get_agent_metrics,
            "read",
            {
                200: (
                    "The agent's snapshot (zeros when it has no events in the window).",
                    "MetricSnapshot",
                ),
                400: ("Bad parameter.", ERR),
            },
            params=(
                Param(
                    "agent",
                    {"type": "string", "minLength": 1, "maxLength": 256},
                    "The agent.",
                    "path",
                    True,
                ),
                window,
            ),
            tags=("fleet",),
        ),
        Operation(
            "GET",
            "/v1/stats",
            "getStats",
            "Redline's own health counters",
            h.fleet.get_stats,
            "read",
            {200: ("Counters (see Monitor.stats()) and the server's.", {"type": "object"})},
            tags=("fleet",),
        ),
        Operation(
            "GET",
            "/v1/alerts",
            "getAlerts",
            "Alerts, newest first",
            h.alerts.get_alerts,
            "read",
            {200: ("Alerts.", AlertList), 400: ("Bad parameter.", ERR)},
            params=(
                Param(
                    "state",
                    {"type": "string", "enum": ["firing", "acknowledged", "resolved"]},
                    "Only alerts in this state.",
                ),
                agent_q,
                Param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                    "At most this many (default 100).",
                ),
            ),
            description="Read from the store, so every process's alerts on a shared store are "
            "listed: each alert once, in its newest state (from its stored `alert` events).",
            tags=("alerts",),
        ),
        Operation(
            "POST",
            "/v1/alerts/ack",
            "ackAlerts",
            "Acknowledge every firing alert of a filter",
            h.alerts.ack_alerts,
            "admin",
            {200: ("The alerts acknowledged.", AlertList), **body_errors},
            body=AckFilter,
            description="Acknowledges each firing alert that matches the filter (agent, kind, "
            "rule, severity; an empty body means all), as `POST /v1/alerts/{id}/ack` does each, "
            "with one `security` event (action `alert_ack`) listing the ids.",
            tags=("alerts",),
        ),
        Operation(
            "POST",
            "/v1/alerts/{id}/ack",
            "ackAlert",
            "Acknowledge an alert",
            h.alerts.ack_alert,
            "admin",
            {
                200: ("The alert, now acknowledged.", "Alert"),
                **body_errors,
                404: ("No such alert.", ERR),
            },
            params=(
                Param(
                    "id",
                    {"type": "string", "minLength": 1, "maxLength": 128},
                    "The alert's id.",
                    "path",
                    True,
                ),
            ),
            body=AckRequest,
            description="Marks the alert acknowledged, records an `alert` event with its new "
            "state and a `security` event (action `alert_ack`), both with the token's name as "
            "actor. Acknowledging twice changes nothing.",
            tags=("alerts",),
        ),
        Operation(
            "POST",
            "/v1/kill",
            "kill",
            "Kill an agent, a session or the fleet",
            h.kills.kill,
            "admin",
            {200: ("The kill now in force.", KillResponse), **body_errors},
            body="KillRequest",
            description="Committed to the store before the response (every monitor on the "
            "store obeys it), recorded as a `kill` event with the token's name as actor.",
            tags=("kill switches",),
        ),
        Operation(
            "POST",
            "/v1/revive",
            "revive",
            "Lift a kill",
            h.kills.revive,
            "admin",
            {200: ("Whether a kill was lifted.", ReviveResponse), **body_errors},
            body="ReviveRequest",
            tags=("kill switches",),
        ),
        Operation(
            "GET",
            "/v1/check",
            "check",
            "Is this agent (or session) killed?",
            h.kills.check,
            "check",
            {
                200: ("`killed: false`, or the covering kill.", CheckResponse),
                400: ("No agent given.", ERR),
            },
            params=(
                Param(
                    "agent",
                    {"type": "string", "minLength": 1, "maxLength": 256},
                    "The agent.",
                    required=True,
                ),
                str_param("session", "Its session."),
            ),
            description='Always 200: `{"killed": false}` or `{"killed": true, scope, target, '
            "reason, actor, expires_at}` (global before agent before session). An O(1) lookup.",
            tags=("kill switches",),
        ),
        Operation(
            "GET",
            "/v1/whoami",
            "whoami",
            "The calling token's name and role",
            h.ops.whoami,
            "check",
            {200: ("Who is calling.", Identity)},
            tags=("operations",),
        ),
        Operation(
            "GET",
            "/v1/kills",
            "getKills",
            "Active kills",
            h.kills.get_kills,
            "read",
            {200: ("Every active kill.", KillList)},
            tags=("kill switches",),
        ),
        Operation(
            "GET",
            "/v1/budgets",
            "getBudgets",
            "Budget spend and reservations",
            h.kills.get_budgets,
            "read",
            {200: ("Every budget key in its current period.", BudgetList)},
            description="Spend and outstanding reservations of every budget key in its current "
            "period, as every monitor on the store recorded them, with the limit and when the "
            "period resets.",
            tags=("kill switches",),
        ),
        Operation(
            "GET",
            "/v1/stream",
            "stream",
            "Live events, alerts and kills (Server-Sent Events)",
            h.stream.stream,
            "read",
            {200: ("A `text/event-stream`.", "sse")},
            params=(
                agent_q,
                Param(
                    "types",
                    {"type": "string", "maxLength": 1000},
                    "Comma-separated event types (default: all).",
                ),
            ),
            description="Frames: `hello` first, then `event` (ordinary events), `kill`, "
            '`revive`, `alert`, `anomaly`, and `dropped` (`{"dropped": n}`: messages lost '
            "because this client lagged); `: heartbeat` comments keep the connection open.",
            tags=("events",),
        ),
        Operation(
            "GET",
            "/v1/verify",
            "verify",
            "Verify the hash chain",
            h.audit.verify,
            "admin",
            {200: ("The verification report.", "VerifyReport"), 400: ("Bad parameter.", ERR)},
            params=(
                Param(
                    "public_key",
                    {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    "Hex Ed25519 key the auditor trusts (default: the store's).",
                    "query",
                    False,
                ),
            ),
            tags=("audit",),
        ),
        Operation(
            "GET",
            "/v1/export",
            "export",
            "Compliance export, streamed",
            h.audit.export,
            "admin",
            {
                200: ("The report (JSON, JSONL or CSV by format).", "export"),
                400: ("Bad parameter.", ERR),
            },
            params=(
                Param(
                    "format",
                    {"type": "string", "enum": list(FORMATS)},
                    "Report format (default json).",
                ),
                *time_filters,
            ),
            description="Recorded as a `security` event (action `export`) before it starts.",
            tags=("audit",),
        ),
        Operation(
            "GET",
            "/healthz",
            "healthz",
            "Liveness (no token)",
            h.ops.healthz,
            None,
            {200: ("The process answers.", Health)},
            tags=("operations",),
        ),
        Operation(
            "GET",
            "/readyz",
            "readyz",
            "Readiness (no token)",
            h.ops.readyz,
            None,
            {200: ("Ready.", Ready), 503: ("Not ready; `problems` says why.", Ready)},
            description="Ready when the store answers a one-row query within 2 s and the "
            "writer is not stalled (events queued but nothing written for "
            "`ready_stall_seconds`).",
            tags=("operations",),
        ),
        Operation(
            "GET",
            "/metrics",
            "prometheusMetrics",
            "Prometheus exposition",
            h.ops.prometheus,
            "read",
            {
                200: ("Prometheus text (or OpenMetrics when asked for).", "prometheus"),
                503: ("prometheus-client is not installed.", ERR),
            },
            tags=("operations",),
        ),
        Operation(
            "GET",
            "/v1/openapi.json",
            "openapi",
            "This document (no token)",
            h.ops.openapi,
            None,
            {200: ("OpenAPI 3.1.", {"type": "object"})},
            tags=("operations",),
        ),
        Operation(
            "GET",
            "/",
            "dashboard",
            "The dashboard page (no token; its data calls carry one)",
            h.dashboard.dashboard,
            None,
            {200: ("HTML.", "html")},
            tags=("dashboard",),
        ),
        Operation(
            "GET",
            "/assets/{name}",
            "dashboardAsset",
            "The dashboard's script modules and style sheet (no token)",
            h.dashboard.asset,
            None,
            {200: ("JavaScript or CSS.", "asset"), 404: ("No such asset.", ERR)},
            params=(
                Param(
                    "name",
                    {"type": "string", "enum": list(ASSET_NAMES)},
                    "The file.",
                    "path",
                    True,
                ),
            ),
            tags=("dashboard",),
        ),
    ]
    h.ops.document(table)
    return table
