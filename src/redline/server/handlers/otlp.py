"""``POST /v1/traces``: an OTLP/HTTP trace receiver, so spans the world already emits govern.

Per the OTLP/HTTP specification: protobuf or JSON bodies, optionally gzip; success is 200 with an
``ExportTraceServiceResponse`` in the request's encoding, whose ``partial_success`` counts the
spans that were rejected (a GenAI span the monitor refused) with a reason; an undecodable
payload is 400 with a ``google.rpc.Status`` body; a writer that is behind is 503 with
``Retry-After`` (OTLP exporters retry 429, 502, 503 and 504 with backoff). Authentication is the
gate's (an ``ingest`` token as a bearer token; ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer
...`` sends exactly that). OTLP batches are larger than event batches, so the body limit is its
own (``server.otlp_max_body_bytes``).

Spans become events through the same mapping as the in-process span processor
(:mod:`redline.integrations._spanmap`); non-GenAI spans are accepted and ignored. Each event goes
through ``record_checked(untrusted=True)``: validated, redacted, and never a governance type.
"""

from __future__ import annotations

from typing import Final

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.integrations._spanmap import SpanData, SpanMapper
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError
from redline.server.otlp import (
    JSON,
    PROTOBUF,
    OTLPError,
    decode_request,
    encode_response,
    encode_status,
    gunzip,
)
from redline.server.params import BodyReader

__all__ = ["OTLPHandlers"]

#: The writer is "behind" when its queue is this full: new batches are refused (503) until it
#: drains, so an exporter retries later instead of having its spans dropped.
_BEHIND: Final = 0.9
_RETRY_AFTER: Final = "2"
_GRPC_INVALID_ARGUMENT: Final = 3
_GRPC_UNAVAILABLE: Final = 14


class OTLPHandlers:
    """``POST /v1/traces``."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.body = BodyReader(cfg.otlp_max_body_bytes)
        self.mapper = SpanMapper(
            agent_attribute=cfg.otlp_agent_attribute, agents=dict(cfg.otlp_agents)
        )
        #: Spans received, recorded as events, ignored (not GenAI) and rejected, since start.
        self.received = 0
        self.recorded = 0
        self.ignored = 0
        self.rejected = 0

    async def post_traces(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/traces``: decode, map, record; answer in the request's encoding."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply = PROTOBUF if ctype == PROTOBUF else JSON
        try:
            raw = await self.body.read(request)
        except ApiError as exc:
            return _status(reply, exc.status, exc.message)
        try:
            encoding = request.headers.get("content-encoding", "").strip().lower()
            if encoding == "gzip":
                raw = gunzip(raw, self.ctx.config.otlp_max_body_bytes)
            elif encoding not in ("", "identity"):
                raise OTLPError(
                    f"unsupported Content-Encoding {encoding!r}: send gzip or none", 415
                )
            spans = decode_request(raw, ctype, self.ctx.config.otlp_max_spans)
        except OTLPError as exc:
            return _status(reply, exc.status, str(exc))
        if self._behind():
            return _status(
                reply, 503, "the writer is behind; retry later", {"Retry-After": _RETRY_AFTER}
            )
        rejected, message = await anyio.to_thread.run_sync(self._record, spans)
        return Response(encode_response(reply, rejected, message), 200, media_type=reply)

    def _behind(self) -> bool:
        m = self.ctx.monitor
        capacity = m.config.storage.queue_size
        return bool(capacity) and int(m.stats()["queued"]) >= _BEHIND * capacity

    def _record(self, spans: list[SpanData]) -> tuple[int, str]:
        record = self.ctx.monitor.record_checked
        to_event = self.mapper.to_event
        rejected = 0
        reasons: list[str] = []
        with self.ctx.monitor.batch():
            for span in spans:
                self.received += 1
                try:
                    event = to_event(span)
                except Exception as exc:  # a span no mapping rule foresaw: rejected, counted
                    rejected += 1
                    reasons.append(f"span {span.span_id or span.name!r}: {exc}")
                    continue
                if event is None:
                    self.ignored += 1
                    continue
                status, why = record(event, untrusted=True)
                if status == "rejected":
                    rejected += 1
                    reasons.append(f"span {span.span_id or span.name!r}: {'; '.join(why)}")
                else:
                    self.recorded += 1
        self.rejected += rejected
        return rejected, "; ".join(reasons[:5]) + (" ..." if len(reasons) > 5 else "")


def _status(
    reply: str, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    code = _GRPC_UNAVAILABLE if status in (429, 503) else _GRPC_INVALID_ARGUMENT
    return Response(encode_status(reply, code, message), status, headers, media_type=reply)
