"""Per-minute rollups: the history a chart of the last day reads without touching raw events.

A :class:`Rollup` is one (minute, agent) cell: counts by kind, cost, tokens and a log-bucket
latency histogram (:class:`LatencyHistogram`, ±12 % per bucket, mergeable by addition), so p50 and
p95 over any range are merged from cells instead of recomputed from events. Stores keep cells
as they write (SQLite in the append transaction, PostgreSQL in its fleet rollup), and
:func:`points` turns cells into evenly spaced chart points, empty steps included, so a chart has
a continuous x-axis.

The histogram's text form is a JSON object ``{"bucket": count}`` (sparse); SQLite merges two of
them in SQL through a registered function (:func:`merge_text`), so one upsert per cell and batch
is all ``append()`` pays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from redline.events import AgentEvent

__all__ = [
    "HistoryPoint",
    "LatencyHistogram",
    "Rollup",
    "from_events",
    "merge_text",
    "points",
    "rollups_of",
]

#: Bucket ``i`` holds latencies in ``[_LOW * _GROWTH**(i-1), _LOW * _GROWTH**i)`` ms; 0 holds
#: anything below ``_LOW``; the last holds everything above ~28 hours.
_LOW: Final = 0.1
_GROWTH: Final = 1.25
_LOG_GROWTH: Final = math.log(_GROWTH)
_TOP: Final = 95
#: The width of a cell, in seconds.
MINUTE: Final = 60


class HistoryPoint(msgspec.Struct, kw_only=True):
    """One step of a history answer (``t`` is the step's start, epoch seconds)."""

    t: float
    events: int = 0
    errors: int = 0
    denials: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None


class LatencyHistogram:
    """Counts of latencies in geometric buckets: mergeable, small, and good to ±12 %."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    @staticmethod
    def bucket(latency_ms: float) -> int:
        if not latency_ms > _LOW:  # also NaN
            return 0
        return min(_TOP, 1 + int(math.log(latency_ms / _LOW) / _LOG_GROWTH))

    def add(self, latency_ms: float) -> None:
        b = self.bucket(latency_ms)
        self.counts[b] = self.counts.get(b, 0) + 1

    def merge(self, other: LatencyHistogram) -> None:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile as its bucket's geometric middle; None when empty."""
        total = sum(self.counts.values())
        if not total:
            return None
        rank = q * total
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                if b == 0:
                    return _LOW / 2
                return float(_LOW * math.pow(_GROWTH, b - 0.5))
        return float(_LOW * math.pow(_GROWTH, _TOP - 0.5))

    def to_text(self) -> str:
        return json.dumps(
            {str(k): v for k, v in sorted(self.counts.items())}, separators=(",", ":")
        )

    @classmethod
    def from_text(cls, text: str | bytes | None) -> LatencyHistogram:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        if not isinstance(raw, dict):
            return cls()
        return cls({int(k): int(v) for k, v in raw.items() if str(k).isdigit()})


def merge_text(a: str | bytes | None, b: str | bytes | None) -> str:
    """Two histograms' text forms merged (SQLite's ``redline_hist_merge``)."""
    h = LatencyHistogram.from_text(a)
    h.merge(LatencyHistogram.from_text(b))
    return h.to_text()


class Rollup:
    """One (minute, agent) cell, or the merge of several."""

    __slots__ = (
        "actions",
        "cost",
        "denials",
        "errors",
        "events",
        "hist",
        "latency_n",
        "latency_sum",
        "llm_calls",
        "tokens_cached",
        "tokens_in",
        "tokens_out",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.events = self.actions = self.denials = self.errors = 0
        self.llm_calls = self.tool_calls = 0
        self.cost = self.latency_sum = 0.0
        self.latency_n = self.tokens_in = self.tokens_out = self.tokens_cached = 0
        self.hist = LatencyHistogram()

    def add(self, e: AgentEvent) -> None:
        """Count one event (validated by the monitor: numbers are finite, tokens integers)."""
        self.events += 1
        t = e.event_type
        if t == "llm_call":
            self.llm_calls += 1
        elif t == "tool_call":
            self.tool_calls += 1
        elif t == "action":
            self.actions += 1
        elif t == "denial":
            self.denials += 1
        elif t == "error":
            self.errors += 1
        if e.cost_usd is not None:
            self.cost += e.cost_usd
        lat = e.latency_ms
        if lat is not None:
            self.latency_sum += lat
            self.latency_n += 1
            b = 0 if not lat > _LOW else 1 + int(math.log(lat / _LOW) / _LOG_GROWTH)
            counts = self.hist.counts
            b = b if b < _TOP else _TOP
            counts[b] = counts.get(b, 0) + 1
        if e.tokens_in is not None:
            self.tokens_in += e.tokens_in
        if e.tokens_out is not None:
            self.tokens_out += e.tokens_out
        if e.tokens_cached is not None:
            self.tokens_cached += e.tokens_cached

    def merge(self, o: Rollup) -> None:
        self.events += o.events
        self.actions += o.actions
        self.denials += o.denials
        self.errors += o.errors
        self.llm_calls += o.llm_calls
        self.tool_calls += o.tool_calls
        self.cost += o.cost
        self.latency_sum += o.latency_sum
        self.latency_n += o.latency_n
        self.tokens_in += o.tokens_in
        self.tokens_out += o.tokens_out
        self.tokens_cached += o.tokens_cached
        self.hist.merge(o.hist)

    def row(self) -> tuple[Any, ...]:
        """The stored columns after ``(minute, agent)``, in :data:`COLUMNS` order."""
        return (
            self.events,
            self.actions,
            self.denials,
            self.errors,
            self.llm_calls,
            self.tool_calls,
            self.cost,
            self.latency_sum,
            self.latency_n,
            self.tokens_in,
            self.tokens_out,
            self.tokens_cached,
            self.hist.to_text(),
        )

    @classmethod
    def from_row(cls, values: Iterable[Any]) -> Rollup:
        r = cls()
        (r.events, r.actions, r.denials, r.errors, r.llm_calls, r.tool_calls, r.cost,
         r.latency_sum, r.latency_n, r.tokens_in, r.tokens_out, r.tokens_cached,
         hist) = values  # fmt: skip
        r.cost = float(r.cost or 0.0)
        r.latency_sum = float(r.latency_sum or 0.0)
        r.hist = LatencyHistogram.from_text(hist)
        return r


#: The cell columns after ``minute`` and ``agent`` (both stores use these names).
COLUMNS: Final = (
    "events",
    "actions",
    "denials",
    "errors",
    "llm_calls",
    "tool_calls",
    "cost",
    "latency_sum",
    "latency_n",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
    "latency_hist",
)


def rollups_of(events: Iterable[AgentEvent]) -> dict[tuple[int, str], Rollup]:
    """Events folded into (minute, agent) cells."""
    cells: dict[tuple[int, str], Rollup] = {}
    get = cells.get
    for e in events:
        key = (int(e.timestamp // MINUTE) * MINUTE, e.agent)
        cell = get(key)
        if cell is None:
            cell = cells[key] = Rollup()
        cell.add(e)
    return cells


def points(
    cells: Iterable[tuple[int, Rollup]], since: float, until: float, step: int
) -> list[HistoryPoint]:
    """Cells (``(minute, rollup)``, any agents) as one point per ``step`` seconds from
    ``since`` (aligned down to the step) to ``until``; empty steps are zero points.

    Resolution is the minute: a minute counts when it starts before ``until`` (and, through
    the step alignment, at or after the first point's start)."""
    first = int(since // step) * step
    count = max(1, math.ceil((until - first) / step))
    merged: dict[int, Rollup] = {}
    for minute, cell in cells:
        if minute >= until:
            continue
        index = (minute - first) // step
        if 0 <= index < count:
            slot = merged.get(index)
            if slot is None:
                slot = merged[index] = Rollup()
            slot.merge(cell)
    out: list[HistoryPoint] = []
    for i in range(count):
        t = float(first + i * step)
        r = merged.get(i)
        if r is None:
            out.append(HistoryPoint(t=t))
            continue
        out.append(
            HistoryPoint(
                t=t,
                events=r.events,
                errors=r.errors,
                denials=r.denials,
                cost_usd=round(r.cost, 9),
                tokens=r.tokens_in + r.tokens_out,
                p50_latency_ms=_round(r.hist.quantile(0.5)),
                p95_latency_ms=_round(r.hist.quantile(0.95)),
            )
        )
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def from_events(
    events: Iterable[AgentEvent], agent: str | None, since: float, until: float, step: int
) -> list[HistoryPoint]:
    """Points computed from raw events: for stores small by design (memory, JSONL) and files
    opened read-only before they had rollups."""
    chosen = (e for e in events if agent is None or e.agent == agent)  # the caller's range
    cells = [(m, c) for (m, _), c in rollups_of(chosen).items()]
    return points(cells, since, until, step)


def cells_from_rows(
    rows: Iterable[Mapping[str, Any] | tuple[Any, ...]],
) -> list[tuple[int, Rollup]]:
    """``(minute, agent, *COLUMNS)`` rows as ``(minute, Rollup)`` pairs (the agent dropped)."""
    out: list[tuple[int, Rollup]] = []
    for row in rows:
        values = tuple(row.values()) if isinstance(row, Mapping) else tuple(row)
        out.append((int(values[0]), Rollup.from_row(values[2:])))
    return out
