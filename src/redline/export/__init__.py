"""Exporters: Redline's state and events in the formats the ecosystem reads.

* :mod:`redline.export.prometheus`: a custom collector (``pip install 'redline[prometheus]'``).
* :mod:`redline.export.otel`: spans and GenAI metrics for OpenTelemetry (``redline[otel]``).
* :mod:`redline.export.spans`: the library-free span model and the :class:`SpanSink` protocol.
* :mod:`redline.export.logs`: events as JSON log lines, and log records as events.
* :mod:`redline.export.config`: the ``exporters`` section of ``monitor.yaml``.

Importing this package imports no optional dependency; each module imports its own on use.
"""

from __future__ import annotations

from redline.export.config import (
    ExportersConfig,
    OTelExporterConfig,
    PrometheusExporterConfig,
    RunningExporters,
    start_exporters,
)

__all__ = [
    "ExportersConfig",
    "OTelExporterConfig",
    "PrometheusExporterConfig",
    "RunningExporters",
    "start_exporters",
]
