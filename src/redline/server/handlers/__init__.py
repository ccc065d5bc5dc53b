"""The request handlers, one module per area of the API.

=============  ===========================================================================
module         operations
=============  ===========================================================================
ingest         ``POST /v1/events``
otlp           ``POST /v1/traces`` (OTLP/HTTP, protobuf or JSON)
events         ``GET /v1/events``
fleet          ``GET /v1/agents``, ``/v1/metrics``, ``/v1/metrics/{agent}``, ``/v1/stats``
history        ``GET /v1/metrics/history`` (per-minute rollups from the store)
alerts         ``GET /v1/alerts`` (from the store), ``POST /v1/alerts/{id}/ack``
kills          ``POST /v1/kill``, ``POST /v1/revive``, ``GET /v1/check``, ``GET /v1/kills``
stream         ``GET /v1/stream``
audit          ``GET /v1/verify``, ``GET /v1/export``
ops            ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/whoami``, ``/v1/openapi.json``
dashboard      ``/``, ``/assets/{name}``
=============  ===========================================================================

Every handler is ``async (request, who) -> Response`` and never blocks the event loop on the
store or the writer: anything that may wait runs in a worker thread. Which handler serves which
path, for which role, is decided in one place: :mod:`redline.server.routes`.
"""

from __future__ import annotations

from redline.server.context import ServerContext
from redline.server.handlers.alerts import AlertHandlers
from redline.server.handlers.audit import AuditHandlers
from redline.server.handlers.dashboard import DashboardHandlers
from redline.server.handlers.events import EventHandlers
from redline.server.handlers.fleet import FleetHandlers
from redline.server.handlers.history import HistoryHandlers
from redline.server.handlers.ingest import IngestHandlers
from redline.server.handlers.kills import KillHandlers
from redline.server.handlers.ops import OpsHandlers
from redline.server.handlers.otlp import OTLPHandlers
from redline.server.handlers.stream import StreamHandlers

__all__ = [
    "AlertHandlers",
    "AuditHandlers",
    "DashboardHandlers",
    "EventHandlers",
    "FleetHandlers",
    "Handlers",
    "HistoryHandlers",
    "IngestHandlers",
    "KillHandlers",
    "OTLPHandlers",
    "OpsHandlers",
    "StreamHandlers",
]


class Handlers:
    """Every handler group, bound to one :class:`ServerContext`."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ingest = IngestHandlers(ctx)
        self.otlp = OTLPHandlers(ctx)
        self.events = EventHandlers(ctx)
        self.fleet = FleetHandlers(ctx)
        self.history = HistoryHandlers(ctx)
        self.alerts = AlertHandlers(ctx)
        self.kills = KillHandlers(ctx)
        self.stream = StreamHandlers(ctx)
        self.audit = AuditHandlers(ctx)
        self.ops = OpsHandlers(ctx)
        self.dashboard = DashboardHandlers()
