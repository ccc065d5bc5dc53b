"""OpenTelemetry: Redline events as GenAI spans and metrics.

``OTelExporter(monitor)`` subscribes to the monitor's bus. Each event is captured on the recording
thread with the trace context current there (an OpenTelemetry span, else Redline's
:func:`~redline.tracing.current_trace`) and queued; a background thread turns it into spans (see
:mod:`redline.export.spans` for the mapping) and records the GenAI client metrics:

* ``gen_ai.client.token.usage`` (histogram, ``{token}``, ``gen_ai.token.type`` input|output)
* ``gen_ai.client.operation.duration`` (histogram, ``s``): model calls, failed ones included
  with ``error.type``
* ``gen_ai.execute_tool.duration`` (histogram, ``s``): tool executions, with ``error.type`` when
  they failed (a tool is not a client operation, so it is kept out of the one above)

Attributes follow :mod:`redline.export.genai` (``gen_ai.provider.name`` always present; the
released or the latest experimental conventions); the tracer and meter scopes carry Redline's
version and the conventions' schema URL.

with the bucket boundaries the semantic conventions recommend. Spans keep the ids the events
carry (Redline's short ids zero-padded to W3C width), so a trace started by one agent and
continued by another is one trace in Jaeger or Tempo.

Export never raises into ``record()``: the bus isolates subscribers, the subscriber only appends
to a bounded queue, and span building and export failures on the worker are logged once and
counted. :func:`from_config` builds an OTLP/HTTP pipeline (``TracerProvider`` +
``BatchSpanProcessor`` + ``OTLPSpanExporter``, and a periodic OTLP metric reader) from the
``exporters.otel`` config section or the standard ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Final

try:
    from opentelemetry import metrics as metrics_api
    from opentelemetry import trace as trace_api
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "redline.export.otel needs the OpenTelemetry SDK: pip install 'redline[otel]'"
    ) from exc

from redline.events import AgentEvent
from redline.export.genai import latest_conventions, operation_of, provider_name, schema_url
from redline.export.spans import BusSpanExporter, SpanRecord, SpanSink
from redline.tracing import current_trace

__all__ = [
    "DURATION_BUCKETS",
    "TOKEN_BUCKETS",
    "OTelExporter",
    "OTelSpanSink",
    "SpanSink",
    "from_config",
]

log = logging.getLogger("redline")

SCOPE: Final = "redline"
#: ``gen_ai.client.token.usage`` boundaries from the GenAI semantic conventions.
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
#: ``gen_ai.client.operation.duration`` boundaries (seconds) from the same conventions.
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_KIND = {"client": trace_api.SpanKind.CLIENT, "internal": trace_api.SpanKind.INTERNAL}
_OK_STATUSES = frozenset({"ok", "success", "succeeded", "completed"})


class _PresetIds(IdGenerator):
    """Hands out the ids a Redline span already has, else defers to the provider's generator.

    Installed on Redline's own tracer only (``Tracer.id_generator``), so ids the events carry
    survive into OpenTelemetry and a child exported before its parent still points at it.
    """

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner
        self._local = threading.local()

    def preset(self, trace_id: int | None, span_id: int | None) -> None:
        self._local.trace_id = trace_id
        self._local.span_id = span_id

    def generate_span_id(self) -> int:
        value: int | None = getattr(self._local, "span_id", None)
        if value is not None:
            self._local.span_id = None
            return value
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        value: int | None = getattr(self._local, "trace_id", None)
        if value is not None:
            self._local.trace_id = None
            return value
        return self.inner.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False


class OTelSpanSink:
    """A :class:`~redline.export.spans.SpanSink` that re-creates spans in an OpenTelemetry SDK.

    ``tracer_provider`` defaults to the global one. ``owns_provider=True`` makes
    :meth:`shutdown` shut the provider down too (for providers Redline built itself).
    """

    def __init__(
        self, tracer_provider: Any = None, *, owns_provider: bool = False, latest: bool = False
    ) -> None:
        self.provider: Any = (
            tracer_provider if tracer_provider is not None else trace_api.get_tracer_provider()
        )
        self._owns = owns_provider
        self.tracer: Any = self.provider.get_tracer(
            SCOPE, _version(), schema_url=schema_url(latest)
        )
        self._ids: _PresetIds | None = None
        current = getattr(self.tracer, "id_generator", None)
        if isinstance(current, _PresetIds):
            self._ids = current
        elif isinstance(current, IdGenerator):
            self._ids = _PresetIds(current)
            # Only Redline's own tracer (scope "redline") hands out preset ids.
            setattr(self.tracer, "id_generator", self._ids)  # noqa: B010

    def export(self, spans: Sequence[SpanRecord]) -> None:
        """Start and end one OpenTelemetry span per record, with its ids, times and events."""
        for s in spans:
            context = None
            trace_id = int(s.trace_id, 16)
            if s.parent_span_id is not None:
                parent = trace_api.SpanContext(
                    trace_id,
                    int(s.parent_span_id, 16),
                    is_remote=True,
                    trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
                )
                context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent))
            if self._ids is not None:
                self._ids.preset(trace_id if context is None else None, int(s.span_id, 16))
            span = self.tracer.start_span(
                s.name,
                context=context,
                kind=_KIND.get(s.kind, trace_api.SpanKind.INTERNAL),
                attributes=s.attributes,
                start_time=_ns(s.start_time),
            )
            for e in s.events:
                span.add_event(e.name, e.attributes, timestamp=_ns(e.timestamp))
            if s.status == "error":
                span.set_status(trace_api.Status(trace_api.StatusCode.ERROR, s.status_message))
            elif s.status == "ok":
                span.set_status(trace_api.Status(trace_api.StatusCode.OK))
            span.end(end_time=_ns(max(s.end_time, s.start_time)))

    def force_flush(self, timeout: float = 10.0) -> bool:
        flush = getattr(self.provider, "force_flush", None)
        return bool(flush(int(timeout * 1000))) if flush is not None else True

    def shutdown(self) -> None:
        """Flush; shut the provider down when this sink owns it."""
        self.force_flush()
        if self._owns:
            shutdown = getattr(self.provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _otel_context() -> object:
    """The context current on the recording thread: an OTel span's ids, else Redline's trace."""
    ctx = trace_api.get_current_span().get_span_context()
    if ctx.is_valid:
        return (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    return current_trace()


class _GenAIMetrics:
    """The GenAI client metrics, recorded on the exporter's worker thread."""

    def __init__(self, meter_provider: Any, latest: bool = False) -> None:
        provider = (
            meter_provider if meter_provider is not None else metrics_api.get_meter_provider()
        )
        meter = provider.get_meter(SCOPE, _version(), schema_url=schema_url(latest))
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(map(float, TOKEN_BUCKETS)),
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            unit="s",
            description="Duration of tool executions.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def __call__(self, ev: AgentEvent) -> None:
        etype = ev.event_type
        data = ev.data or {}
        failed = ev.status is not None and ev.status not in _OK_STATUSES
        if etype == "tool_call":
            attrs: dict[str, str] = {"gen_ai.operation.name": "execute_tool"}
            if ev.tool:
                attrs["gen_ai.tool.name"] = ev.tool
            if failed:
                attrs["error.type"] = _error_type(data, ev.status)
            if ev.latency_ms is not None:
                self.tool_duration.record(ev.latency_ms / 1000.0, attrs)
            return
        model = ev.model or data.get("model")
        model = model if isinstance(model, str) and model else None
        if etype == "error" and model is not None:
            failed = True  # a model call that failed: counted, with its error type
        elif etype != "llm_call":
            return
        attrs = {
            "gen_ai.operation.name": operation_of(data),
            "gen_ai.provider.name": provider_name(model, data),
        }
        if model is not None:
            attrs["gen_ai.request.model"] = model
        response_model = data.get("response_model")
        if isinstance(response_model, str) and response_model:
            attrs["gen_ai.response.model"] = response_model
        if failed:
            attrs["error.type"] = _error_type(data, ev.status)
        if ev.latency_ms is not None:
            self.duration.record(ev.latency_ms / 1000.0, attrs)
        if failed:
            return
        if ev.tokens_in is not None:
            self.tokens.record(ev.tokens_in, {**attrs, "gen_ai.token.type": "input"})
        if ev.tokens_out is not None:
            self.tokens.record(ev.tokens_out, {**attrs, "gen_ai.token.type": "output"})


def _error_type(data: dict[str, Any], status: str | None) -> str:
    error = data.get("error_type")
    if isinstance(error, str) and error:
        return error
    return status if status and status not in _OK_STATUSES else "_OTHER"


def _version() -> str:
    from redline import __version__

    return __version__


class OTelExporter:
    """Redline events → OpenTelemetry spans and GenAI metrics (see the module docstring).

    ``tracer_provider``/``meter_provider`` default to the global ones. ``capture_content=True``
    copies prompts, completions and tool arguments onto spans (``gen_ai.input.messages``,
    ``gen_ai.output.messages``); otherwise message content is never exported.
    """

    def __init__(
        self,
        monitor: Any,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        capture_content: bool = False,
        *,
        queue_size: int = 10_000,
        owns_providers: bool = False,
        semconv: str | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._owns = owns_providers
        #: Whether the latest experimental GenAI conventions are emitted (else the released).
        self.latest = latest_conventions(semconv)
        self.sink = OTelSpanSink(tracer_provider, owns_provider=owns_providers, latest=self.latest)
        self.metrics = _GenAIMetrics(meter_provider, self.latest)
        self._bus = BusSpanExporter(
            monitor,
            self.sink,
            capture_content=capture_content,
            queue_size=queue_size,
            context=_otel_context,
            on_event=self.metrics,
            latest=self.latest,
        )
        self._closed = False

    @property
    def dropped(self) -> int:
        """Events dropped because the exporter's queue was full."""
        return self._bus.dropped

    @property
    def errors(self) -> int:
        """Span building or export failures (logged once, then counted)."""
        return self._bus.errors

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export everything recorded so far: spans through the processors, metrics readers."""
        ok = self._bus.force_flush(timeout)
        ok = self.sink.force_flush(timeout) and ok
        flush = getattr(self.meter_provider, "force_flush", None)
        if flush is not None:
            ok = bool(flush(int(timeout * 1000))) and ok
        return ok

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Unsubscribe, export what is queued, end open session spans; idempotent."""
        if self._closed:
            return True
        self._closed = True
        ok = self._bus.shutdown(timeout)
        if self._owns and self.meter_provider is not None:
            shutdown = getattr(self.meter_provider, "shutdown", None)
            if shutdown is not None:
                shutdown()
        return ok

    def close(self) -> None:
        """Alias of :meth:`shutdown` (what ``RunningExporters.close()`` calls)."""
        self.shutdown()


def _endpoint(base: str, signal: str) -> str:
    """A signal URL from a base (as ``OTEL_EXPORTER_OTLP_ENDPOINT``) or a full signal URL."""
    base = base.rstrip("/")
    if base.endswith(f"/v1/{signal}"):
        return base
    if base.endswith(("/v1/traces", "/v1/metrics")):
        base = base.rsplit("/v1/", 1)[0]
    return f"{base}/v1/{signal}"


def from_config(monitor: Any, cfg: Any) -> OTelExporter:
    """Build an OTLP/HTTP pipeline from ``exporters.otel`` and subscribe it to ``monitor``.

    Empty ``endpoint``/``headers``/``service_name`` leave the standard ``OTEL_*`` environment
    variables in charge (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``,
    ``OTEL_SERVICE_NAME`` ...). The returned exporter owns the providers: ``close()`` flushes and
    shuts them down.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "OTLP export needs opentelemetry-exporter-otlp-proto-http: pip install 'redline[otel]'"
        ) from exc

    attributes = {SERVICE_NAME: cfg.service_name} if cfg.service_name else {}
    resource = Resource.create(attributes)
    options: dict[str, Any] = {"timeout": cfg.timeout_seconds}
    if cfg.headers:
        options["headers"] = dict(cfg.headers)
    span_options = dict(options)
    metric_options = dict(options)
    if cfg.endpoint:
        span_options["endpoint"] = _endpoint(cfg.endpoint, "traces")
        metric_options["endpoint"] = _endpoint(cfg.endpoint, "metrics")
    tracer_provider = TracerProvider(resource=resource, id_generator=RandomIdGenerator())
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(**span_options)))
    meter_provider = None
    if cfg.metrics:
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(**metric_options),
            export_interval_millis=cfg.metric_interval_seconds * 1000.0,
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return OTelExporter(
        monitor,
        tracer_provider,
        meter_provider,
        capture_content=cfg.capture_content,
        owns_providers=True,
        semconv=cfg.semconv or None,
    )
