"""The bad-input policy: what ``record()`` does with an event that is not quite right.

Observation must never break the agent, so by default nothing here raises. Each problem is
*repaired* (the event is kept, the bad value fixed, the original kept under ``data["_repaired"]``
as evidence) or *rejected* (the event is dropped), counted by reason in ``monitor.stats()``, and
logged once per reason. With ``strict=True`` every problem raises :class:`InvalidEventError` instead.

=========================================  ==========  =============================================
problem                                    outcome     how
=========================================  ==========  =============================================
not an ``AgentEvent`` nor a mapping        rejected    ``not_an_event``
``agent`` empty or blank                   rejected    ``agent_empty`` (nothing to attribute it to)
``agent`` / ``event_type`` not a string    repaired    ``str(value)``
``event_type`` empty                       repaired    becomes ``"action"``
``timestamp`` not a finite number          repaired    set to now
``timestamp`` ahead of now by > skew       repaired    set to now (a future time would expire windows)
``timestamp`` older than ``max_age``       repaired    set to now (1970 would create a partition a day)
``cost_usd`` / ``latency_ms`` NaN, inf,    repaired    set to ``None``; numeric strings are parsed
negative, ≥ 1e15 or not a number
``tokens_*`` negative or not an integer    repaired    set to ``None``; integral floats converted
other optional text fields not strings     repaired    ``str(value)``
``tags`` not a list of strings             repaired    each item ``str()``-ed; a lone value wrapped
``data`` not a dict                        repaired    ``{"value": data}``
``data`` values not JSON-serialisable      repaired    each such value ``str()``-ed, keys made strings
text UTF-8 cannot hold (lone surrogates)   repaired    those characters become U+FFFD
``data`` larger than ``max_data_bytes``    repaired    replaced by a preview and the original size
=========================================  ==========  =============================================
"""

from __future__ import annotations

import logging
import math
import operator
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from redline.events import AgentEvent
from redline.exceptions import InvalidEventError

__all__ = ["EventValidator"]

log = logging.getLogger("redline")

_INF: Final = math.inf
#: Larger costs or latencies are not measurements (1e15 ms is 31,000 years) and would overflow
#: the sums and the latency sketch; they are repaired like NaN.
_MAX_NUMBER: Final = 1e15
_TEXT_FIELDS: Final = (
    "session_id",
    "user",
    "tenant",
    "model",
    "tool",
    "status",
    "trace_id",
    "span_id",
    "parent_span_id",
    "level",
)
_TOKEN_FIELDS: Final = (
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "tokens_cache_write",
    "tokens_reasoning",
)
_PREVIEW_BYTES: Final = 1024


_texts = operator.attrgetter(*_TEXT_FIELDS)


def _texts_ok(event: Any) -> bool:
    """Whether every text field and tag is a string (or ``None``) that UTF-8 can encode.

    ``event`` is an ``AgentEvent`` whose fields may hold anything (msgspec does not check types
    when a struct is constructed), hence ``Any``: compiled builds must not assume the types.
    """
    if not (event.agent.isascii() or _utf8_ok(event.agent)) or not (
        event.event_type.isascii() or _utf8_ok(event.event_type)
    ):
        return False
    for value in _texts(event):
        if value is not None and (
            type(value) is not str or not (value.isascii() or _utf8_ok(value))
        ):
            return False
    return all(type(tag) is str and _utf8_ok(tag) for tag in event.tags) if event.tags else True


def _utf8_ok(text: str) -> bool:
    """Whether ``text`` can be stored (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates) replaced by U+FFFD."""
    if _utf8_ok(text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def _sanitise(value: Any, depth: int = 0) -> Any:
    """A JSON-storable copy: string keys, encodable text, scalars, lists; the rest ``str()``."""
    if depth > 64:
        return repr(value)[:_PREVIEW_BYTES]
    if isinstance(value, str):
        return _clean_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {_clean_text(str(k)): _sanitise(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_sanitise(v, depth + 1) for v in value]
    return _clean_text(str(value))


def _stringify(obj: Any) -> Any:
    return str(obj)


class EventValidator:
    """Checks events on the hot path; repairs, rejects or raises per the policy above.

    ``check()`` costs a few type tests for a good event; only a bad one takes the slow path.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        strict: bool = False,
        max_data_bytes: int = 65_536,
        max_clock_skew: float = 300.0,
        max_age: float | None = 30 * 86_400.0,
    ) -> None:
        self._now = clock
        self.strict = strict
        self.max_data_bytes = max_data_bytes
        self.max_clock_skew = max_clock_skew
        #: How far in the past a timestamp may be (``None``: any). Events from 1970 would each
        #: open a day's partition on PostgreSQL and fall out of every window anyway.
        self.max_age: float = _INF if max_age is None else max_age
        self.repaired: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._logged: set[str] = set()
        self._notes = threading.local()
        # Sorted, as the store's canonical encoding: what passes here can be stored.
        self._encode = msgspec.json.Encoder(order="sorted").encode
        self._encode_lenient = msgspec.json.Encoder(enc_hook=_stringify).encode

    # -- the hot path ---------------------------------------------------------------------
    def check(self, event: Any) -> AgentEvent | None:
        """The event to record (possibly repaired), or ``None`` when rejected."""
        # Read through ``raw`` (``Any``): an AgentEvent's fields are unchecked until here.
        raw: Any = event
        if type(event) is AgentEvent:
            t = raw.timestamp
            c = raw.cost_usd
            lat = raw.latency_ms
            agent = raw.agent
            data = raw.data
            now = self._now()
            if (
                type(t) is float
                and now - self.max_age < t < now + self.max_clock_skew
                and type(agent) is str
                and agent
                and not agent.isspace()
                and type(raw.event_type) is str
                and raw.event_type
                and (c is None or (type(c) is float and 0.0 <= c < _MAX_NUMBER))
                and (lat is None or (type(lat) is float and 0.0 <= lat < _MAX_NUMBER))
                and type(data) is dict
                and type(raw.tags) is list
                and (raw.cost_estimated is None or type(raw.cost_estimated) is bool)
                and _texts_ok(raw)
            ):
                if data and not self._small_flat(data):
                    try:
                        size = len(self._encode(data))
                    except (TypeError, msgspec.EncodeError, OverflowError, ValueError):
                        return self._slow(event)
                    if size > self.max_data_bytes:
                        return self._slow(event)
                if (
                    raw.tokens_in is None
                    and raw.tokens_out is None
                    and raw.tokens_cached is None
                    and raw.tokens_cache_write is None
                    and raw.tokens_reasoning is None
                ):
                    return event
                if all(
                    v is None or (type(v) is int and v >= 0)
                    for v in (
                        raw.tokens_in,
                        raw.tokens_out,
                        raw.tokens_cached,
                        raw.tokens_cache_write,
                        raw.tokens_reasoning,
                    )
                ):
                    return event
            return self._slow(event)
        if isinstance(event, Mapping):
            return self._from_mapping(event)
        self._reject("not_an_event", f"expected an AgentEvent, got {type(event).__name__}")
        return None

    def check_with_reasons(self, event: Any) -> tuple[AgentEvent | None, str, list[str]]:
        """Like :meth:`check`, also saying what happened: ``(event, status, reasons)``.

        ``status`` is ``"accepted"``, ``"repaired"`` or ``"rejected"`` (then ``event`` is
        ``None``); ``reasons`` are ``"reason: message"`` lines for this event only, however many
        threads are validating at once. Strict mode still raises.
        """
        notes = self.start_notes()
        try:
            ev = self.check(event)
        finally:
            self.stop_notes()
        if ev is None:
            return None, "rejected", [text for _, text in notes]
        return ev, ("repaired" if notes else "accepted"), [text for _, text in notes]

    def start_notes(self) -> list[tuple[str, str]]:
        """Collect, on this thread, ``(outcome, "reason: message")`` for each repair or rejection
        until :meth:`stop_notes`; returns the list that fills up. For callers that report per
        event around a ``record()`` call (``Monitor.record_checked``); costs nothing otherwise.
        """
        notes: list[tuple[str, str]] = []
        self._notes.items = notes
        return notes

    def stop_notes(self) -> None:
        """Stop collecting on this thread."""
        self._notes.items = None

    def _small_flat(self, data: dict[str, Any]) -> bool:
        """Whether ``data`` is certainly JSON-encodable and under the size limit, unencoded.

        True for a small dict of string keys and scalar values whose worst-case encoded size
        (6 bytes per character, as ``\\u0000`` escapes) fits; anything else gets encoded.
        """
        if len(data) > 32:
            return False
        size = 0
        for key, value in data.items():
            if type(key) is not str:
                return False
            cls = type(value)
            if cls is str:
                if not value.isascii():
                    return False
                size += len(key) + len(value)
            elif value is None or cls is int or cls is float or cls is bool:
                size += len(key) + 8
            else:
                return False
        return size * 6 + 64 * len(data) <= self.max_data_bytes

    # -- the slow path --------------------------------------------------------------------
    def _from_mapping(self, raw: Mapping[str, Any]) -> AgentEvent | None:
        fields = set(AgentEvent.__struct_fields__)
        unknown = [k for k in raw if k not in fields]
        kwargs = {k: v for k, v in raw.items() if k in fields}
        if unknown:
            data = dict(kwargs.get("data") or {}) if isinstance(kwargs.get("data"), dict) else {}
            extra = {k: raw[k] for k in unknown}
            data.setdefault("_extra", extra)
            kwargs["data"] = data
            self._repair("unknown_fields", f"unknown event fields {sorted(map(str, unknown))}")
        event = AgentEvent(**kwargs)
        return self._slow(event)

    def _slow(self, event: Any) -> AgentEvent | None:
        """Repair or reject field by field (``event``'s fields may hold anything: ``Any``)."""
        notes: dict[str, Any] = {}
        changes: dict[str, Any] = {}

        agent: Any = event.agent
        if not isinstance(agent, str):
            agent = "" if agent is None else str(agent)
            changes["agent"] = agent
            notes["agent"] = repr(event.agent)
            self._repair("agent_type", "agent was not a string")
        if not agent or agent.isspace():
            self._reject("agent_empty", "agent name is empty")
            return None
        if not _utf8_ok(agent):
            changes["agent"] = agent = _clean_text(agent)
            self._repair("text_encoding", "a text field held characters UTF-8 cannot store")

        etype: Any = event.event_type
        if not isinstance(etype, str):
            changes["event_type"] = etype = str(etype)
            self._repair("event_type_type", "event_type was not a string")
        if not etype:
            changes["event_type"] = "action"
            self._repair("event_type_empty", "event_type was empty; recorded as 'action'")

        now = self._now()
        t = event.timestamp
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            notes["timestamp"] = repr(t)
            changes["timestamp"] = now
            self._repair("timestamp_invalid", "timestamp was not a finite number; set to now")
        elif t >= now + self.max_clock_skew:
            notes["timestamp"] = t
            changes["timestamp"] = now
            self._repair("timestamp_future", "timestamp was in the future; set to now")
        elif t <= now - self.max_age:
            notes["timestamp"] = t
            changes["timestamp"] = now
            self._repair(
                "timestamp_too_old",
                "timestamp was older than events.max_age_seconds; set to now (original kept)",
            )
        elif type(t) is not float:
            changes["timestamp"] = float(t)

        for name in ("cost_usd", "latency_ms"):
            value = getattr(event, name)
            if value is None:
                continue
            fixed = _as_nonneg_float(value)
            if fixed is None:
                notes[name] = value if isinstance(value, (int, float, str)) else repr(value)
                changes[name] = None
                self._repair(f"{name}_invalid", f"{name} was {value!r}; field cleared, event kept")
            elif fixed != value or type(value) is not float:
                changes[name] = fixed

        for name in _TOKEN_FIELDS:
            value = getattr(event, name)
            if value is None:
                continue
            fixed_int = _as_nonneg_int(value)
            if fixed_int is None:
                notes[name] = value if isinstance(value, (int, float, str)) else repr(value)
                changes[name] = None
                self._repair(f"{name}_invalid", f"{name} was {value!r}; field cleared, event kept")
            elif fixed_int != value or type(value) is not int:
                changes[name] = fixed_int

        if isinstance(etype, str) and not _utf8_ok(etype):
            changes["event_type"] = _clean_text(etype)
            self._repair("text_encoding", "a text field held characters UTF-8 cannot store")
        for name in _TEXT_FIELDS:
            value = getattr(event, name)
            if value is not None and not isinstance(value, str):
                changes[name] = _clean_text(str(value))
                self._repair(f"{name}_type", f"{name} was not a string")
            elif value is not None and not _utf8_ok(value):
                changes[name] = _clean_text(value)
                self._repair("text_encoding", "a text field held characters UTF-8 cannot store")

        tags: Any = event.tags
        if isinstance(tags, list) and not all(isinstance(x, str) and _utf8_ok(x) for x in tags):
            tags = [_clean_text(x) if isinstance(x, str) else x for x in tags]
            changes["tags"] = tags
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            if isinstance(tags, (list, tuple, set, frozenset)):
                changes["tags"] = [str(x) for x in tags]
            elif tags is None:
                changes["tags"] = []
            else:
                changes["tags"] = [str(tags)]
            self._repair("tags_type", "tags was not a list of strings")

        estimated: Any = event.cost_estimated
        if estimated is not None and type(estimated) is not bool:
            notes["cost_estimated"] = repr(estimated)[:100]
            changes["cost_estimated"] = None
            self._repair(
                "cost_estimated_invalid", "cost_estimated was not true or false; field cleared"
            )

        data: Any = event.data
        if not isinstance(data, dict):
            data = {} if data is None else {"value": data}
            self._repair("data_type", "data was not a dict")
        data = self._repair_data(data)
        if notes:
            data = dict(data)
            data["_repaired"] = notes
        if data is not event.data:
            changes["data"] = data

        repaired: AgentEvent = event if not changes else msgspec.structs.replace(event, **changes)
        return repaired

    def _repair_data(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            raw = self._encode(data)
        except (TypeError, msgspec.EncodeError, OverflowError, ValueError, RecursionError):
            try:
                data = _sanitise(data)
                raw = self._encode(data)
            except (TypeError, msgspec.EncodeError, OverflowError, ValueError, RecursionError):
                self._repair("data_unserialisable", "data could not be encoded; stringified")
                return {"_unserialisable": _clean_text(repr(data)[:_PREVIEW_BYTES])}
            self._repair("data_unserialisable", "data held values JSON cannot encode; stringified")
        if len(raw) > self.max_data_bytes:
            self._repair("data_oversize", f"data was {len(raw)} bytes; kept a preview")
            return {
                "_truncated": True,
                "_original_bytes": len(raw),
                "_preview": raw[:_PREVIEW_BYTES].decode("utf-8", "replace"),
            }
        return data

    # -- bookkeeping ----------------------------------------------------------------------
    def _repair(self, reason: str, message: str) -> None:
        if self.strict:
            raise InvalidEventError([(reason, message)])
        self.repaired[reason] = self.repaired.get(reason, 0) + 1
        self._note("repaired", reason, message)
        self._log_once(reason, "repaired an event: %s", message)

    def reject(self, reason: str, message: str) -> None:
        """Count (and note) an event refused before validation, by a rule of its caller's."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._note("rejected", reason, message)
        self._log_once(reason, "rejected an event: %s", message)

    def _reject(self, reason: str, message: str) -> None:
        if self.strict:
            raise InvalidEventError([(reason, message)])
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._note("rejected", reason, message)
        self._log_once(reason, "rejected an event: %s", message)

    def _note(self, outcome: str, reason: str, message: str) -> None:
        """Keep the reason for :meth:`start_notes` (the slow path only; per thread)."""
        items: list[tuple[str, str]] | None = getattr(self._notes, "items", None)
        if items is not None:
            items.append((outcome, f"{reason}: {message}"))

    def _log_once(self, reason: str, fmt: str, message: str) -> None:
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning(fmt + " (further cases are counted in stats(), not logged)", message)


def _as_nonneg_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)):
        f = float(value)
        if math.isfinite(f) and 0.0 <= f < _MAX_NUMBER:
            return f
    return None


def _as_nonneg_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    return None
