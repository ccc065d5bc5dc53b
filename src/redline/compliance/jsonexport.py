"""Event exports: one JSON document, JSON lines, or CSV, streamed a row at a time.

* **json**: ``{"format": "redline-events/v1", "generated_at", "filters", "events": [...],
  "manifest": {...}}``, one event per line so the manifest is the file's last line.
* **jsonl**: one event per line, then ``{"manifest": {...}}`` as the last line.
* **csv**: a header and one row per event with fixed columns (:data:`CSV_COLUMNS`); cells that a
  spreadsheet would run as a formula are neutralised (OWASP: a leading ``'``).

Each event is written as :meth:`StoredEvent.to_dict` would give it (``seq``, the event's fields,
``hash``, ``prev_hash``), encoded straight from the struct rather than through a dict.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from redline.compliance.manifest import SCHEMAS, HashingWriter
from redline.compliance.report import iso
from redline.events import AgentEvent, category_of
from redline.store.base import StoredEvent

if TYPE_CHECKING:
    from redline.compliance.report import ExportContext

__all__ = [
    "CSV_COLUMNS",
    "csv_safe",
    "event_json",
    "write_csv",
    "write_json",
    "write_json_list",
    "write_jsonl",
    "write_jsonl_events",
]

_encode = msgspec.json.Encoder().encode

#: The CSV header, in order.
CSV_COLUMNS: Final = (
    "seq",
    "timestamp",
    "agent",
    "event_type",
    "category",
    "session_id",
    "user",
    "tenant",
    "model",
    "tool",
    "status",
    "cost_usd",
    "cost_estimated",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "tokens_cache_write",
    "tokens_reasoning",
    "trace_id",
    "span_id",
    "parent_span_id",
    "level",
    "tags",
    "killed_scope",
    "hash",
    "prev_hash",
    "data",
)
#: First characters a spreadsheet reads as the start of a formula (OWASP CSV injection).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
#: Events encoded before one write to the hashing writer.
_BATCH: Final = 512


#: Every field of the event schema, in its order. Exports are evidence: each record carries all
#: of them (``null`` where unset) so a filter such as ``select(.event_type == "action")`` finds
#: events whose type is the default; the stored encoding omits defaults, an export does not.
_FIELDS: Final = tuple(f.name for f in msgspec.structs.fields(AgentEvent))
_astuple = msgspec.structs.astuple


def event_json(stored: StoredEvent) -> bytes:
    """``seq``, every schema field of the event (``null`` where unset), then the hashes."""
    body = _encode(dict(zip(_FIELDS, _astuple(stored.event), strict=True)))
    h = stored.hash
    if h is None:
        return (
            b'{"seq":%d,%b' % (stored.seq, body[1:])
            if len(body) > 2
            else b'{"seq":%d}' % (stored.seq)
        )
    return b'{"seq":%d,%b,"hash":%b,"prev_hash":%b}' % (
        stored.seq,
        body[1:-1],
        _encode(h),
        _encode(stored.prev_hash),
    )


def write_json(ctx: ExportContext, out: HashingWriter) -> None:
    """The ``json`` document's content (everything before the manifest line)."""
    header = {
        "format": SCHEMAS["json"],
        "generated_at": iso(ctx.now),
        "filters": ctx.filters.to_dict(),
    }
    out.write(_encode(header)[:-1] + b',"events":[\n')
    if write_json_list(ctx.stream(), out):
        out.write(b"\n")
    out.write(b"],\n")


def write_json_list(events: Iterable[StoredEvent], out: HashingWriter) -> int:
    """Write events as JSON array items, one per line, comma-separated; return how many."""
    n = 0
    batch: list[bytes] = []
    append = batch.append
    for stored in events:
        append(event_json(stored))
        if len(batch) >= _BATCH:
            out.write((b",\n" if n else b"") + b",\n".join(batch))
            n += len(batch)
            batch.clear()
    if batch:
        out.write((b",\n" if n else b"") + b",\n".join(batch))
        n += len(batch)
    return n


def json_trailer(manifest_line: bytes) -> bytes:
    """The ``json`` document's last line: the manifest member and the closing brace."""
    return b'"manifest":' + manifest_line + b"}\n"


def write_jsonl(ctx: ExportContext, out: HashingWriter) -> None:
    """The ``jsonl`` content: one event per line."""
    write_jsonl_events(ctx.stream(), out)


def write_jsonl_events(events: Iterable[StoredEvent], out: HashingWriter) -> None:
    """Write events one per line."""
    batch: list[bytes] = []
    append = batch.append
    for stored in events:
        append(event_json(stored))
        if len(batch) >= _BATCH:
            out.write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        out.write(b"\n".join(batch) + b"\n")


def jsonl_trailer(manifest_line: bytes) -> bytes:
    """The ``jsonl`` last line: ``{"manifest": {...}}``."""
    return b'{"manifest":' + manifest_line + b"}\n"


def csv_safe(value: str) -> str:
    """``value`` with a leading ``'`` if a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_csv(ctx: ExportContext, out: HashingWriter) -> None:
    """The CSV file: header, then one row per event (``None`` is an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows: list[list[Any]] = []
    append = rows.append
    start = _FORMULA_START
    for stored in ctx.stream():
        e = stored.event
        data = e.data
        row = [
            e.agent,
            e.event_type,
            category_of(e.event_type),
            e.session_id,
            e.user,
            e.tenant,
            e.model,
            e.tool,
            e.status,
        ]
        append(
            [
                stored.seq,
                iso(e.timestamp),
                *[("'" + v if v and v.startswith(start) else v) for v in row],
                e.cost_usd,
                e.cost_estimated,
                e.latency_ms,
                e.tokens_in,
                e.tokens_out,
                e.tokens_cached,
                e.tokens_cache_write,
                e.tokens_reasoning,
                csv_safe(e.trace_id) if e.trace_id else e.trace_id,
                csv_safe(e.span_id) if e.span_id else e.span_id,
                csv_safe(e.parent_span_id) if e.parent_span_id else e.parent_span_id,
                csv_safe(e.level) if e.level else e.level,
                csv_safe(_encode(e.tags).decode()),
                csv_safe(e.killed_scope) if e.killed_scope else e.killed_scope,
                csv_safe(stored.hash) if stored.hash else stored.hash,
                csv_safe(stored.prev_hash) if stored.prev_hash else stored.prev_hash,
                _encode(data).decode() if data else None,
            ]
        )
        if len(rows) >= _BATCH:
            _flush_rows(writer, rows, buf, out)
    _flush_rows(writer, rows, buf, out)


def _flush_rows(writer: Any, rows: list[list[Any]], buf: io.StringIO, out: HashingWriter) -> None:
    writer.writerows(rows)
    rows.clear()
    out.write(buf.getvalue().encode("utf-8"))
    buf.seek(0)
    buf.truncate()
