"""OTLP/HTTP trace payloads → :class:`~redline.integrations._spanmap.SpanData`, both encodings.

The OTLP specification (``/v1/traces``) allows binary protobuf
(``application/x-protobuf``, an ``ExportTraceServiceRequest``) and JSON (``application/json``,
the protobuf JSON mapping with two exceptions: ``traceId``/``spanId`` are hex strings, not
base64, and enum fields are integers). Either may be gzip-compressed (``Content-Encoding:
gzip``). Protobuf is decoded with the ``opentelemetry-proto`` package (the server extra); JSON is
read by hand here because the generic protobuf JSON parser would insist on base64 ids.

Decoding is bounded: a gzip body may expand to at most ``max_bytes``, and a request may carry at
most ``max_spans`` spans (both refused with a clear :class:`OTLPError`, never half-read).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, Final

from redline.integrations._spanmap import SpanData

__all__ = [
    "JSON",
    "PROTOBUF",
    "OTLPError",
    "decode_request",
    "encode_response",
    "encode_status",
    "gunzip",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_STATUS_ERROR: Final = 2  # Status.StatusCode.STATUS_CODE_ERROR


class OTLPError(ValueError):
    """The payload cannot be decoded; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def gunzip(body: bytes, max_bytes: int) -> bytes:
    """``body`` decompressed, refusing (413) to expand past ``max_bytes``."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise OTLPError(f"Content-Encoding is gzip but the body is not: {exc}") from None
    if len(out) > max_bytes or d.unconsumed_tail:
        raise OTLPError(f"the decompressed body is larger than {max_bytes} bytes", 413)
    if not d.eof:
        raise OTLPError("the gzip body is truncated")
    return out


def decode_request(body: bytes, content_type: str, max_spans: int) -> list[SpanData]:
    """Every span in an ``ExportTraceServiceRequest`` body, with its resource's attributes."""
    if content_type == PROTOBUF:
        spans = list(_from_protobuf(body))
    elif content_type == JSON:
        spans = list(_from_json(body))
    else:
        raise OTLPError(f"send {PROTOBUF} or {JSON}, not {content_type!r}", 415)
    if len(spans) > max_spans:
        raise OTLPError(
            f"{len(spans)} spans in one request; the limit is {max_spans} (otlp_max_spans)", 413
        )
    return spans


def encode_response(content_type: str, rejected: int, message: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` set only when spans were rejected."""
    if content_type == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        resp = trace_service_pb2.ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
        return bytes(resp.SerializeToString())
    doc: dict[str, Any] = {}
    if rejected:
        doc["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return json.dumps(doc).encode()


def encode_status(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (the OTLP error body): field 1 ``code``, field 2 ``message``."""
    if content_type != PROTOBUF:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# -- protobuf -------------------------------------------------------------------------------


def _from_protobuf(body: bytes) -> Iterator[SpanData]:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:  # pragma: no cover - the server extra brings it
        raise OTLPError(
            "OTLP protobuf needs opentelemetry-proto: pip install 'redline[server]'", 415
        ) from None
    req = trace_service_pb2.ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except Exception as exc:  # protobuf's DecodeError (its module ships no type stubs)
        raise OTLPError(f"the body is not an ExportTraceServiceRequest: {exc}") from None
    for rs in req.resource_spans:
        resource = _pb_attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                exc_type, exc_msg = _pb_exception(s.events)
                yield SpanData(
                    name=s.name,
                    attributes=_pb_attrs(s.attributes),
                    start_ns=int(s.start_time_unix_nano),
                    end_ns=int(s.end_time_unix_nano),
                    trace_id=s.trace_id.hex() or None,
                    span_id=s.span_id.hex() or None,
                    parent_span_id=s.parent_span_id.hex() or None,
                    error=s.status.code == _STATUS_ERROR,
                    status_message=s.status.message,
                    resource=resource,
                    exception_type=exc_type,
                    exception_message=exc_msg,
                )


def _pb_attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in kvs}


def _pb_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return json.dumps({kv.key: _pb_value(kv.value) for kv in v.kvlist_value.values})
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _pb_exception(events: Any) -> tuple[str | None, str | None]:
    for ev in events:
        if ev.name == "exception":
            attrs = _pb_attrs(ev.attributes)
            t, m = attrs.get("exception.type"), attrs.get("exception.message")
            return (None if t is None else str(t)), (None if m is None else str(m))
    return None, None


# -- JSON -----------------------------------------------------------------------------------


def _from_json(body: bytes) -> Iterator[SpanData]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OTLPError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OTLPError('expected an ExportTraceServiceRequest object: {"resourceSpans": [...]}')
    for rs in _list(doc, "resourceSpans", "resource_spans"):
        resource = _json_attrs(_obj(rs, "resource").get("attributes"))
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            for s in _list(ss, "spans"):
                status = _obj(s, "status")
                exc_type, exc_msg = _json_exception(s.get("events"))
                yield SpanData(
                    name=str(s.get("name", "")),
                    attributes=_json_attrs(s.get("attributes")),
                    start_ns=_int(s.get("startTimeUnixNano", s.get("start_time_unix_nano"))),
                    end_ns=_int(s.get("endTimeUnixNano", s.get("end_time_unix_nano"))),
                    trace_id=_hex(s.get("traceId", s.get("trace_id")), 32),
                    span_id=_hex(s.get("spanId", s.get("span_id")), 16),
                    parent_span_id=_hex(s.get("parentSpanId", s.get("parent_span_id")), 16),
                    error=_is_error(status.get("code")),
                    status_message=str(status.get("message", "")),
                    resource=resource,
                    exception_type=exc_type,
                    exception_message=exc_msg,
                )


def _is_error(code: Any) -> bool:
    """Status code ERROR: an integer per the specification, its enum name as some senders do."""
    if isinstance(code, str) and not code.isdigit():
        return code == "STATUS_CODE_ERROR"
    return _int(code) == _STATUS_ERROR


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OTLPError(f"{key}: expected an object")
    return value


def _list(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise OTLPError("expected an object")
    for key in keys:
        value = parent.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise OTLPError(f"{key}: expected a list of objects")
        return value
    return []


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value)  # int64 values are strings in OTLP/JSON
    except (TypeError, ValueError):
        raise OTLPError(f"expected an integer, got {value!r}") from None


def _hex(value: Any, width: int) -> str | None:
    if not value:
        return None
    text = str(value).lower()
    if len(text) != width or any(c not in "0123456789abcdef" for c in text):
        raise OTLPError(f"expected a {width}-digit hex id, got {value!r}")
    return text


def _json_attrs(kvs: Any) -> dict[str, Any]:
    if kvs is None:
        return {}
    if not isinstance(kvs, list):
        raise OTLPError("attributes: expected a list of {key, value}")
    out: dict[str, Any] = {}
    for kv in kvs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise OTLPError("attributes: expected a list of {key, value}")
        out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _json_value(v: Any) -> Any:
    if not isinstance(v, dict) or not v:
        return None
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return _int(v["intValue"])
    if "doubleValue" in v:
        try:
            return float(v["doubleValue"])
        except (TypeError, ValueError):
            raise OTLPError(f"doubleValue: expected a number, got {v['doubleValue']!r}") from None
    if "arrayValue" in v:
        return [_json_value(x) for x in _obj(v, "arrayValue").get("values", []) or []]
    if "kvlistValue" in v:
        return json.dumps(_json_attrs(_obj(v, "kvlistValue").get("values")))
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None


def _json_exception(events: Any) -> tuple[str | None, str | None]:
    if not isinstance(events, list):
        return None, None
    for ev in events:
        if isinstance(ev, dict) and ev.get("name") == "exception":
            attrs = _json_attrs(ev.get("attributes"))
            t, m = attrs.get("exception.type"), attrs.get("exception.message")
            return (None if t is None else str(t)), (None if m is None else str(m))
    return None, None
