"""Sliding windows of per-second buckets with running totals.

The peer rescans every in-window event up to three times per ``record()``; this module never
iterates a window on the hot path. Each agent has one *open* bucket for the current second. The
first event of a second is *folded* straight into the running total of every configured window
(and the current minute), and remembered as a compact contribution tuple so it can leave the
window again; further events of that second update the open bucket only. When the second changes
the open bucket, if it holds anything, is *closed*: added into every window total and the minute,
and entries that fell out of a window are subtracted from its total. A snapshot is then
``closed total + open bucket``: O(1) in events.

Why fold the first event: at low rates (an agent acting every few seconds) nearly every event
opens a new second, and closing a one-event bucket cost three generic merges per event (window,
minute, expiry). A fold is one specialised update per total, and a tuple is a fifth of a bucket's
memory. At high rates a second's first event is folded and the rest share one bucket, so the cost
per event stays flat as the rate grows.

Late events (older than the open second but still inside the largest window) are counted in the
open bucket, so they leave the window a little later than their timestamp says; events older than
the largest window are stored but not counted (``stats()["late_events"]``).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable
from itertools import chain
from typing import Any

from redline.events import AgentEvent
from redline.metrics.sketch import (
    _INTERNED,
    _INV_LOG_GAMMA,
    _LOW,
    _MIN_VALUE,
    _ZERO_BUCKET,
    _ceil,
    _log,
)

__all__ = ["AgentWindows", "Frozen", "IntervalHook", "Totals"]

_N_INTERNED = len(_INTERNED)
_OK_STATUSES = frozenset({"ok", "success", "succeeded", "completed"})


class Totals:
    """Sums over a span of time: one second's bucket, a window, an interval or a lifetime.

    ``tools`` maps a tool to ``[calls, failures, latency_sum_ms, latency_count]``; ``models`` maps a
    model to ``[calls, cost_usd, tokens_in, tokens_out, tokens_cached]``; ``hist`` is the latency
    sketch (see :mod:`redline.metrics.sketch`).
    """

    __slots__ = (
        "cost",
        "count",
        "hist",
        "last_ts",
        "lat_n",
        "lat_sum",
        "models",
        "second",
        "tok_cached",
        "tok_in",
        "tok_out",
        "tool_calls",
        "tool_failures",
        "tools",
        "types",
    )

    def __init__(self, second: int = 0) -> None:
        self.second = second
        self.count = 0
        self.cost = 0.0
        self.lat_sum = 0.0
        self.lat_n = 0
        self.tok_in = 0
        self.tok_out = 0
        self.tok_cached = 0
        self.tool_calls = 0
        self.tool_failures = 0
        self.last_ts = 0.0
        self.types: dict[str, int] = {}
        self.tools: dict[str, list[float]] = {}
        self.models: dict[str, list[float]] = {}
        self.hist: dict[int, int] = {}

    def add(self, other: Totals) -> None:
        """Absorb ``other`` (a closed bucket or another total)."""
        self.count += other.count
        if other.cost:
            self.cost += other.cost
        if other.lat_n:
            self.lat_sum += other.lat_sum
            self.lat_n += other.lat_n
        if other.hist:
            hist = self.hist
            if hist is not _NO_HIST:
                get = hist.get
                for bucket, n in other.hist.items():  # inlined: a second's bucket is tiny
                    hist[bucket] = get(bucket, 0) + n
        if other.tok_in or other.tok_out or other.tok_cached:
            self.tok_in += other.tok_in
            self.tok_out += other.tok_out
            self.tok_cached += other.tok_cached
        if other.tool_calls:
            self.tool_calls += other.tool_calls
            self.tool_failures += other.tool_failures
        if other.last_ts > self.last_ts:
            self.last_ts = other.last_ts
        types = self.types
        get_type = types.get
        for key, n in other.types.items():
            types[key] = get_type(key, 0) + n
        if other.tools:
            _add_rows(self.tools, other.tools)
        if other.models:
            _add_rows(self.models, other.models)

    def add_scalars(self, other: Totals) -> None:
        """Absorb everything but the latency histogram (snapshots read histograms in place)."""
        hist = self.hist
        self.hist = _NO_HIST
        try:
            self.add(other)
        finally:
            self.hist = hist

    def copy(self) -> Totals:
        """An independent copy (for snapshots that outlive the lock)."""
        out = Totals(self.second)
        out.add(self)
        return out


#: Marks a total that does not keep a histogram (see :meth:`Totals.add_scalars`).
_NO_HIST: dict[int, int] = {}


def _add_rows(into: dict[str, list[float]], other: dict[str, list[float]]) -> None:
    """Add ``other``'s rows (per tool or model) into ``into``, element-wise.

    Only ever adds: what leaves a window is subtracted in its frozen form (:func:`_merge_frozen`).
    """
    for key, values in other.items():
        row = into.get(key)
        if row is None:
            into[key] = list(values)
            continue
        for i, v in enumerate(values):
            row[i] += v


#: One event's share of a total: ``(timestamp, event_type, cost_usd, latency_ms, latency_bucket,
#: (tokens_in, tokens_out, tokens_cached) | None, tool | None, tool_failed, model,
#: derived_counter_keys)``. Built once per event; folded into totals and, for a second's first
#: event, kept in the window's deque until it expires (its second is ``int(timestamp)``: only
#: on-time events are kept this way).
Contribution = tuple[
    float,
    str,
    "float | None",
    "float | None",
    int,
    "tuple[int | None, int | None, int | None] | None",
    "str | None",
    bool,
    "str | None",
    "tuple[str, ...]",
]


def _apply(t: Totals, c: Contribution) -> None:
    """Add one event's contribution to ``t``."""
    ts, etype, cost, latency, b, tokens, tool, failed, model, derived = c
    t.count += 1
    if ts > t.last_ts:
        t.last_ts = ts
    types = t.types
    types[etype] = types.get(etype, 0) + 1
    for key in derived:
        types[key] = types.get(key, 0) + 1
    if cost:
        t.cost += cost
    if latency is not None:
        t.lat_sum += latency
        t.lat_n += 1
        hist = t.hist
        if hist is not _NO_HIST:
            hist[b] = hist.get(b, 0) + 1
    if tokens is not None:
        t.tok_in += tokens[0] or 0
        t.tok_out += tokens[1] or 0
        t.tok_cached += tokens[2] or 0
    if tool is not None:
        t.tool_calls += 1
        row = t.tools.get(tool)
        if row is None:
            row = t.tools[tool] = [0, 0, 0.0, 0]
        row[0] += 1
        if failed:
            t.tool_failures += 1
            row[1] += 1
        if latency is not None:
            row[2] += latency
            row[3] += 1
    if model is not None:
        mrow = t.models.get(model)
        if mrow is None:
            mrow = t.models[model] = [0, 0.0, 0, 0, 0]
        mrow[0] += 1
        if cost:
            mrow[1] += cost
        if tokens is not None:
            mrow[2] += tokens[0] or 0
            mrow[3] += tokens[1] or 0
            mrow[4] += tokens[2] or 0


def _unapply(t: Totals, c: Contribution) -> None:
    """Take one event's contribution back out of ``t``; zeroed keys are dropped."""
    _, etype, cost, latency, b, tokens, tool, failed, model, derived = c
    t.count -= 1
    types = t.types
    for key in (etype, *derived) if derived else (etype,):
        n = types.get(key, 0) - 1
        if n > 0:
            types[key] = n
        else:
            types.pop(key, None)
    if cost:
        t.cost -= cost
    if latency is not None:
        t.lat_sum -= latency
        t.lat_n -= 1
        hist = t.hist
        n = hist.get(b, 0) - 1
        if n > 0:
            hist[b] = n
        else:
            hist.pop(b, None)
    if tokens is not None:
        t.tok_in -= tokens[0] or 0
        t.tok_out -= tokens[1] or 0
        t.tok_cached -= tokens[2] or 0
    if tool is not None:
        t.tool_calls -= 1
        if failed:
            t.tool_failures -= 1
        row = t.tools.get(tool)
        if row is not None:
            row[0] -= 1
            if failed:
                row[1] -= 1
            if latency is not None:
                row[2] -= latency
                row[3] -= 1
            if row[0] <= 0:
                del t.tools[tool]
    if model is not None:
        mrow = t.models.get(model)
        if mrow is not None:
            mrow[0] -= 1
            if cost:
                mrow[1] -= cost
            if tokens is not None:
                mrow[2] -= tokens[0] or 0
                mrow[3] -= tokens[1] or 0
                mrow[4] -= tokens[2] or 0
            if mrow[0] <= 0:
                del t.models[model]
    if t.count <= 0:
        # Floating-point sums drift; an empty window is exactly empty.
        t.cost = t.lat_sum = 0.0
        t.count = t.lat_n = 0


class Frozen:
    """A closed second or minute, kept only to be subtracted (or summed) later: compact.

    A window keeps 300+ of these per agent and the minute tier up to 60, so they hold flat
    tuples and a packed ``array`` instead of four dicts: a busy second costs ~400 bytes and a
    minute with 150 latency buckets ~1.5 KB, a quarter of a :class:`Totals`. Read-only.
    """

    __slots__ = (
        "cost",
        "count",
        "hist",
        "last_ts",
        "lat_n",
        "lat_sum",
        "models",
        "second",
        "tok_cached",
        "tok_in",
        "tok_out",
        "tool_calls",
        "tool_failures",
        "tools",
        "types",
    )

    def __init__(self, t: Totals) -> None:
        self.second = t.second
        self.count = t.count
        self.cost = t.cost
        self.lat_sum = t.lat_sum
        self.lat_n = t.lat_n
        self.tok_in = t.tok_in
        self.tok_out = t.tok_out
        self.tok_cached = t.tok_cached
        self.tool_calls = t.tool_calls
        self.tool_failures = t.tool_failures
        self.last_ts = t.last_ts
        #: ``(type, n, type, n, ...)``
        self.types: tuple[Any, ...] = tuple(chain.from_iterable(t.types.items()))
        #: ``[bucket, n, bucket, n, ...]`` as 32-bit ints (bucket indices fit; see the sketch)
        self.hist = array("i", chain.from_iterable(t.hist.items()))
        #: ``(tool, calls, failures, latency_sum, latency_n, ...)``
        self.tools: tuple[Any, ...] = (
            tuple(chain.from_iterable((k, *row) for k, row in t.tools.items())) if t.tools else ()
        )
        #: ``(model, calls, cost, tokens_in, tokens_out, tokens_cached, ...)``
        self.models: tuple[Any, ...] = (
            tuple(chain.from_iterable((k, *row) for k, row in t.models.items())) if t.models else ()
        )


def _merge_frozen(t: Totals, f: Frozen, sign: int) -> None:
    """Add (``sign`` 1) or subtract (-1) a frozen total; zeroed keys are dropped."""
    t.count += sign * f.count
    t.cost += sign * f.cost
    t.lat_sum += sign * f.lat_sum
    t.lat_n += sign * f.lat_n
    t.tok_in += sign * f.tok_in
    t.tok_out += sign * f.tok_out
    t.tok_cached += sign * f.tok_cached
    t.tool_calls += sign * f.tool_calls
    t.tool_failures += sign * f.tool_failures
    if sign > 0 and f.last_ts > t.last_ts:
        t.last_ts = f.last_ts
    types = t.types
    flat = f.types
    for i in range(0, len(flat), 2):
        key = flat[i]
        n = types.get(key, 0) + sign * flat[i + 1]
        if n:
            types[key] = n
        else:
            types.pop(key, None)
    hist = t.hist
    if hist is not _NO_HIST:
        packed = f.hist
        for i in range(0, len(packed), 2):
            b = packed[i]
            n = hist.get(b, 0) + sign * packed[i + 1]
            if n:
                hist[b] = n
            else:
                hist.pop(b, None)
    _merge_flat(t.tools, f.tools, 5, sign)
    _merge_flat(t.models, f.models, 6, sign)
    if sign < 0 and t.count <= 0:
        # Floating-point sums drift; an empty window is exactly empty.
        t.cost = t.lat_sum = 0.0
        t.count = t.lat_n = 0


def _merge_flat(into: dict[str, list[float]], flat: tuple[Any, ...], width: int, sign: int) -> None:
    for i in range(0, len(flat), width):
        key = flat[i]
        row = into.get(key)
        if row is None:
            if sign < 0:
                continue
            row = into[key] = [0.0] * (width - 1)
        for j in range(1, width):
            row[j - 1] += sign * flat[i + j]
        if row[0] <= 0:
            del into[key]


def _expire(entries: deque[Frozen | Contribution], closed: Totals, horizon: int) -> None:
    """Subtract from ``closed`` every entry of a second at or before ``horizon``."""
    while entries:
        head = entries[0]
        if isinstance(head, Frozen):
            if head.second > horizon:
                return
            entries.popleft()
            _merge_frozen(closed, head, -1)
        else:
            if int(head[0]) > horizon:
                return
            entries.popleft()
            _unapply(closed, head)


#: ``hook(windows, interval_totals, interval_start, empty_intervals_after)``: called when a
#: baseline interval closes.
IntervalHook = Callable[["AgentWindows", Totals, int, int], None]


class AgentWindows:
    """One agent's open bucket, its window totals, its baseline interval and its lifetime."""

    __slots__ = (
        "_buckets",
        "_by_minute",
        "_closed",
        "_hook",
        "_interval",
        "_interval_acc",
        "_interval_start",
        "_max_window",
        "_minute",
        "_minutes",
        "_span",
        "_windows",
        "agent",
        "cur",
        "lifetime",
    )

    def __init__(
        self,
        agent: str,
        windows: tuple[int, ...],
        *,
        start: float,
        interval: int = 60,
        hook: IntervalHook | None = None,
        span: int | None = None,
    ) -> None:
        self.agent = agent
        self._windows = windows
        self._max_window = max(windows)
        # The coarse tier: closed per-minute totals back to ``span`` seconds, for ad-hoc
        # windows longer than every configured one (60 totals an hour, not 3,600 buckets).
        self._span = max(span or 0, self._max_window)
        second = int(start)
        self._minute = Totals(second - second % 60)
        self._minutes: deque[Frozen] = deque()
        self.cur = Totals(second)
        self._closed: dict[int, Totals] = {w: Totals() for w in windows}
        self._buckets: dict[int, deque[Frozen | Contribution]] = {w: deque() for w in windows}
        self.lifetime = Totals()
        self._interval = interval
        self._by_minute = interval % 60 == 0
        self._interval_start = second - second % interval
        self._interval_acc = Totals(self._interval_start)
        self._hook = hook

    # -- the hot path ---------------------------------------------------------------------
    def observe(self, event: AgentEvent, derived: tuple[str, ...] = ()) -> bool:
        """Count ``event``; False when it is older than the largest window (not counted).

        ``derived`` names the derived counters (``metrics.counters``) the event counts toward:
        they are counted as extra type keys wherever the event is, and leave with it.
        """
        cur = self.cur
        ts = event.timestamp
        second = int(ts)
        first = False
        if second != cur.second:
            if second > cur.second:
                self.roll(second)
                cur = self.cur
                first = True
            elif second <= cur.second - self._max_window:
                return False
        latency = event.latency_ms
        tin = event.tokens_in
        tout = event.tokens_out
        tcached = event.tokens_cached
        etype = event.event_type
        tool = event.tool
        b = 0
        if latency is not None:
            if latency >= _MIN_VALUE:
                # bucket_of(), inlined: this is the hottest line in Redline.
                b = _ceil(_log(latency) * _INV_LOG_GAMMA)
                if b - _LOW < _N_INTERNED:
                    b = _INTERNED[b - _LOW]
            else:
                b = _ZERO_BUCKET
        failed = False
        if tool is not None or etype == "tool_call":
            status = event.status
            failed = status is not None and status not in _OK_STATUSES
            tool = tool or "unknown"
        c: Contribution = (
            ts,
            etype,
            event.cost_usd,
            latency,
            b,
            None if tin is None and tout is None and tcached is None else (tin, tout, tcached),
            tool,
            failed,
            event.model,
            derived,
        )
        if first:
            # The second's first event goes straight into the running totals (see the module
            # docstring); the open bucket stays empty unless the second gets more events.
            for w in self._windows:
                self._buckets[w].append(c)
                _apply(self._closed[w], c)
            _apply(self._minute, c)
            if not self._by_minute:
                _apply(self._interval_acc, c)
        else:
            _apply(cur, c)
        return True

    # -- once a second at most ------------------------------------------------------------
    def roll(self, second: int) -> None:
        """Close the open bucket and open one for ``second``; expire what left each window."""
        cur = self.cur
        if second <= cur.second:
            return
        if cur.count:
            if not self._by_minute:
                self._interval_acc.add(cur)
            self._minute.add(cur)
            for w in self._windows:
                self._closed[w].add(cur)
            # One entry per second: the second's first event (folded, kept as a tuple) joins
            # the rest of the second in one frozen entry.
            windows = self._windows
            first = self._buckets[windows[0]]
            last = first[-1] if first else None
            if last is not None and not isinstance(last, Frozen) and int(last[0]) == cur.second:
                for w in windows:
                    self._buckets[w].pop()
                _apply(cur, last)
            frozen = Frozen(cur)
            for w in windows:
                self._buckets[w].append(frozen)
            self.cur = Totals(second)
        else:
            cur.second = second  # nothing to close: reuse the empty bucket
        for w in self._windows:
            buckets = self._buckets[w]
            if buckets:
                _expire(buckets, self._closed[w], second - w)
        minute = second - second % 60
        if minute != self._minute.second:
            minutes = self._minutes
            done = self._minute
            if done.count:
                # Lifetime, and baseline intervals made of whole minutes, grow a minute at a
                # time: one merge a minute instead of one a second.
                minutes.append(Frozen(done))
                self.lifetime.add(done)
                if self._by_minute:
                    self._interval_acc.add(done)
            self._minute = Totals(minute)
            horizon = second - self._span
            while minutes and minutes[0].second + 60 <= horizon:
                minutes.popleft()
        interval = self._interval
        end = self._interval_start + interval
        if second >= end:
            acc = self._interval_acc
            start = self._interval_start
            self._interval_start = second - second % interval
            self._interval_acc = Totals(self._interval_start)
            if self._hook is not None:
                empties = (self._interval_start - end) // interval
                self._hook(self, acc, start, empties)

    # -- reads ----------------------------------------------------------------------------
    def window(self, seconds: int, now: float) -> tuple[Totals, Totals]:
        """``(closed, open)`` totals of the window of ``seconds`` as of ``now`` (after expiry)."""
        self.roll(int(now))
        return self._closed[seconds], self.cur

    def closed(self, seconds: int) -> Totals:
        """The closed-bucket total of a configured window, without advancing time."""
        return self._closed[seconds]

    @property
    def windows(self) -> tuple[int, ...]:
        """The window lengths kept, in seconds."""
        return self._windows

    @property
    def interval(self) -> int:
        """The baseline interval, in seconds."""
        return self._interval

    @property
    def last_seen(self) -> float:
        """Timestamp of the newest counted event (0.0 if none)."""
        return max(self.cur.last_ts, self._minute.last_ts, self.lifetime.last_ts)

    def lifetime_totals(self) -> Totals:
        """Everything counted since these windows were created (a copy, open bucket included)."""
        out = self.lifetime.copy()
        out.add(self._minute)
        out.add(self.cur)
        return out


def sum_recent(windows: AgentWindows, seconds: int, now: float) -> Totals:
    """Totals of the last ``seconds`` for a length that is not a configured window.

    Up to the largest configured window, sums its young-enough per-second buckets; beyond it,
    the per-minute tier (kept back to ``max_window_seconds``), so a long ad-hoc window is exact
    to the minute. O(buckets), fine for reads, never used on the hot path.
    """
    largest = max(windows.windows)
    closed, cur = windows.window(largest, now)
    del closed
    out = Totals()
    horizon = int(now) - seconds
    if seconds <= largest:
        for entry in windows._buckets[largest]:
            if isinstance(entry, Frozen):
                if entry.second > horizon:
                    _merge_frozen(out, entry, 1)
            elif int(entry[0]) > horizon:
                _apply(out, entry)
    else:
        # Minute resolution: a minute counts when it started inside the window.
        for minute in windows._minutes:
            if minute.second >= horizon:
                _merge_frozen(out, minute, 1)
        out.add(windows._minute)
    out.add(cur)
    return out
