"""The ``exporters`` section of ``monitor.yaml``: Prometheus and OpenTelemetry, off by default.

```yaml
exporters:
  prometheus: {enabled: true, port: 9464, addr: 127.0.0.1}
  otel:
    enabled: true
    endpoint: http://otel-collector:4318      # base URL; /v1/traces and /v1/metrics are added
    headers: {authorization: "Bearer ${OTLP_TOKEN}"}
    service_name: sales-agents
```

An empty ``endpoint`` (or ``headers``, ``service_name``) leaves the choice to the standard
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` environment variables. This module imports
nothing optional: :func:`start_exporters` imports ``prometheus_client`` or the OpenTelemetry SDK
only for the exporters that are enabled.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, Protocol

import msgspec

__all__ = [
    "ExportersConfig",
    "OTelExporterConfig",
    "PrometheusExporterConfig",
    "RunningExporters",
    "start_exporters",
]

log = logging.getLogger("redline")


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Config structs reject unknown keys so typos are caught at load."""


class PrometheusExporterConfig(_Base):
    """``exporters.prometheus``: serve ``/metrics`` on a stdlib HTTP server thread."""

    enabled: bool = False
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9464
    addr: str = "127.0.0.1"
    max_agents: Annotated[int, msgspec.Meta(ge=1)] = 200
    max_tools: Annotated[int, msgspec.Meta(ge=1)] = 50


class OTelExporterConfig(_Base):
    """``exporters.otel``: spans and GenAI metrics over OTLP/HTTP."""

    enabled: bool = False
    endpoint: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    service_name: str = ""
    capture_content: bool = False
    metrics: bool = True
    metric_interval_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: GenAI conventions: ``stable`` (released), ``latest`` (experimental), or empty to follow
    #: ``OTEL_SEMCONV_STABILITY_OPT_IN`` (see :mod:`redline.export.genai`).
    semconv: Literal["", "stable", "latest"] = ""


class ExportersConfig(_Base):
    """``exporters``: which exporters a :class:`~redline.Monitor` starts with."""

    prometheus: PrometheusExporterConfig = msgspec.field(default_factory=PrometheusExporterConfig)
    otel: OTelExporterConfig = msgspec.field(default_factory=OTelExporterConfig)


class _Closeable(Protocol):
    def close(self) -> None: ...


class RunningExporters:
    """What :func:`start_exporters` returns: the exporters it started, and ``close()`` for all."""

    def __init__(self) -> None:
        self.prometheus: Any = None
        self.prometheus_server: Any = None
        self.otel: Any = None
        self._closers: list[_Closeable] = []

    def close(self) -> None:
        """Stop the HTTP server and flush/shut down OTLP export. Idempotent; never raises."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                closer.close()
            except Exception:
                log.exception("redline: closing an exporter failed")


class _ServerCloser:
    def __init__(self, server: Any, collector: Any) -> None:
        self._server = server
        self._collector = collector

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._collector.close()


def start_exporters(monitor: Any, config: ExportersConfig | None) -> RunningExporters:
    """Start the exporters ``config`` enables for ``monitor``; a missing extra raises ImportError.

    Called once by ``Monitor.__init__``; the monitor calls ``close()`` on the result when it
    closes (after its own flush, so the last spans are exported).
    """
    running = RunningExporters()
    if config is None:
        return running
    prom = config.prometheus
    if prom.enabled:
        from redline.export.prometheus import RedlineCollector, serve

        collector = RedlineCollector(monitor, max_agents=prom.max_agents, max_tools=prom.max_tools)
        server = serve(collector, prom.port, prom.addr)
        running.prometheus = collector
        running.prometheus_server = server
        running._closers.append(_ServerCloser(server, collector))
    if config.otel.enabled:
        from redline.export.otel import from_config

        exporter = from_config(monitor, config.otel)
        running.otel = exporter
        running._closers.append(exporter)
    return running
