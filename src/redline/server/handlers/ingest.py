"""``POST /v1/events``: a batch, parsed whole, then each event through ``record_checked``.

The whole body is parsed before anything is recorded (malformed JSON records nothing); each event
is then validated by the monitor itself (:meth:`redline.Monitor.record_checked` with
``untrusted=True``, which also refuses governance types), so the server has no second copy of the
bad-input policy. The only rules of its own are the network's: ``killed_scope`` is the monitor's
to set, a timestamp may be sent as text (read by :func:`~redline.timeparse.parse_time`), and
numbers no agent produces are dropped before they reach the aggregates (:func:`bounded`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Final

import anyio
from starlette.requests import Request
from starlette.responses import Response

from redline.events import AgentEvent
from redline.server.auth import Principal
from redline.server.context import ServerContext
from redline.server.errors import ApiError, json_response
from redline.server.jsonparse import JSONBodyError, loads_strict, loads_strict_lines
from redline.server.schemas import IngestItem, IngestResponse
from redline.timeparse import parse_time

__all__ = ["IngestHandlers", "bounded"]

_EVENT_FIELDS: Final = frozenset(AgentEvent.__struct_fields__) - {"killed_scope"}
_NDJSON: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})

#: Bounds on numbers from the network: beyond them a value is nonsense that would only overflow
#: sums and sketches (a 1e308 ms latency), so it is dropped and the event marked repaired.
_BOUNDS: Final = (
    ("cost_usd", 1e6),
    ("latency_ms", 1e9),
    ("tokens_in", 2**53),
    ("tokens_out", 2**53),
    ("tokens_cached", 2**53),
    ("tokens_cache_write", 2**53),
    ("tokens_reasoning", 2**53),
)
#: Timestamps from 1970 up to the year 5138; anything else is set to now (and reported).
_MAX_TIMESTAMP: Final = 1e11


class IngestHandlers:
    """``POST /v1/events``."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def post_events(self, request: Request, who: Principal | None) -> Response:
        """``POST /v1/events``: a batch, parsed whole before anything is recorded."""
        raw = await self.ctx.body.read(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (ctype in _NDJSON or ctype in ("", "application/json") or ctype.endswith("+json")):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send application/json or application/x-ndjson, not {ctype!r}",
            )
        # Parsing and recording run on a worker thread: the event loop stays free for checks.
        result = await anyio.to_thread.run_sync(self._parse_and_ingest, raw, ctype in _NDJSON)
        return json_response(result)

    def _parse_and_ingest(self, raw: bytes, ndjson: bool) -> IngestResponse:
        try:
            if ndjson:
                items = loads_strict_lines(raw)
            else:
                doc = loads_strict(raw)
                if isinstance(doc, dict) and set(doc) == {"events"}:
                    doc = doc["events"]
                if not isinstance(doc, list):
                    raise ApiError(
                        400,
                        "invalid_request",
                        'expected a JSON array of events or {"events": [...]}',
                    )
                items = doc
        except JSONBodyError as exc:
            raise ApiError(400, "invalid_json", f"{exc}; nothing was recorded") from None
        max_batch = self.ctx.config.max_batch
        if len(items) > max_batch:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(items)} events in one request; the limit is {max_batch} (max_batch)",
            )
        with self.ctx.monitor.batch():  # one commit for the request's synchronous types
            return self._ingest(items)

    def _ingest(self, items: list[Any]) -> IngestResponse:
        record = self.ctx.monitor.record_checked
        counts = {"accepted": 0, "repaired": 0, "rejected": 0}
        results: list[IngestItem] = []
        for index, item in enumerate(items):
            notes: list[str] = []
            event: Any = item
            if type(item) is dict:
                event = _prepare(item, notes)
            status, reasons = record(event, untrusted=True)
            if notes and status == "accepted":
                status = "repaired"
            counts[status] += 1
            if status != "accepted":
                results.append(IngestItem(index=index, status=status, reasons=notes + reasons))  # type: ignore[arg-type]
        return IngestResponse(results=results, **counts)


def _prepare(fields: dict[str, Any], notes: list[str]) -> Any:
    """One JSON object made ready for ``record_checked``: an ``AgentEvent`` when its fields are
    all known (the fast path), else the mapping for the validator to repair or reject."""
    if "killed_scope" in fields:
        fields = {k: v for k, v in fields.items() if k != "killed_scope"}
        notes.append("killed_scope: set by the monitor, not by callers; ignored")
    ts = fields.get("timestamp")
    if type(ts) is str:
        with contextlib.suppress(ValueError, OverflowError):  # else the validator repairs it
            fields = {**fields, "timestamp": parse_time(ts, now=time.time())}
    fields = bounded(fields, notes)
    if _EVENT_FIELDS.issuperset(fields):
        with contextlib.suppress(TypeError):
            return AgentEvent(**fields)
    return fields


def bounded(fields: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """``fields`` with out-of-range numbers dropped (timestamps set to now) and the originals kept
    under ``data["_out_of_range"]`` as evidence; each noted."""
    originals: dict[str, Any] | None = None
    get = fields.get
    for name, bound in _BOUNDS:
        value = get(name)
        if value is not None and isinstance(value, (int, float)) and not -bound <= value <= bound:
            originals = originals or {}
            originals[name] = value
            notes.append(
                f"{name}_out_of_range: {name} was {value!r} (limit {bound:g}); field cleared, event kept"
            )
    ts = get("timestamp")
    if isinstance(ts, (int, float)) and not 0 <= ts <= _MAX_TIMESTAMP:
        originals = originals or {}
        originals["timestamp"] = ts
        notes.append(f"timestamp_out_of_range: timestamp was {ts!r}; set to now")
    if originals is None:
        return fields
    out = {**fields, **dict.fromkeys(originals)}
    if "timestamp" in originals:
        out["timestamp"] = time.time()
    data = fields.get("data", {})
    if isinstance(data, dict):
        out["data"] = {**data, "_out_of_range": originals}
    return out
