"""Sliding windows of per-second buckets with running totals.

The peer rescans every in-window event up to three times per ``record()``; this module never
iterates a window on the hot path. Each agent has one *open* bucket for the current second. An
event updates that bucket and nothing else. When the second changes (at most once a second per
agent) the bucket is *closed*: added into the running total of every configured window, into the
current baseline interval and into the lifetime totals, and buckets that fell out of a window are
subtracted from its total. A snapshot is then ``closed total + open bucket``: O(1) in events.

Late events (older than the open second but still inside the largest window) are counted in the
open bucket, so they leave the window a little later than their timestamp says; events older than
the largest window are stored but not counted (``stats()["late_events"]``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from redline.events import AgentEvent
from redline.metrics.sketch import _INV_LOG_GAMMA, _MIN_VALUE, _ZERO_BUCKET, _ceil, _log

__all__ = ["AgentWindows", "IntervalHook", "Totals"]

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
            _merge_lists(self.tools, other.tools, 1)
        if other.models:
            _merge_lists(self.models, other.models, 1)

    def add_scalars(self, other: Totals) -> None:
        """Absorb everything but the latency histogram (snapshots read histograms in place)."""
        hist = self.hist
        self.hist = _NO_HIST
        try:
            self.add(other)
        finally:
            self.hist = hist

    def subtract(self, other: Totals) -> None:
        """Give back a bucket that left the window; zeroed keys are dropped to stay bounded."""
        self.count -= other.count
        self.cost -= other.cost
        self.lat_sum -= other.lat_sum
        self.lat_n -= other.lat_n
        self.tok_in -= other.tok_in
        self.tok_out -= other.tok_out
        self.tok_cached -= other.tok_cached
        self.tool_calls -= other.tool_calls
        self.tool_failures -= other.tool_failures
        _merge_counts(self.types, other.types, -1)
        if other.hist:
            _merge_counts(self.hist, other.hist, -1)
        if other.tools:
            _merge_lists(self.tools, other.tools, -1)
        if other.models:
            _merge_lists(self.models, other.models, -1)
        if self.count <= 0:
            # Floating-point sums drift; an empty window is exactly empty.
            self.cost = self.lat_sum = 0.0
            self.count = self.lat_n = 0

    def copy(self) -> Totals:
        """An independent copy (for snapshots that outlive the lock)."""
        out = Totals(self.second)
        out.add(self)
        return out


#: Marks a total that does not keep a histogram (see :meth:`Totals.add_scalars`).
_NO_HIST: dict[int, int] = {}


def _add_counts(into: dict[Any, int], other: dict[Any, int]) -> None:
    get = into.get
    for key, value in other.items():
        into[key] = get(key, 0) + value


def _merge_counts(into: dict[Any, int], other: dict[Any, int], sign: int) -> None:
    for key, value in other.items():
        new = into.get(key, 0) + sign * value
        if new:
            into[key] = new
        else:
            into.pop(key, None)


def _merge_lists(into: dict[str, list[float]], other: dict[str, list[float]], sign: int) -> None:
    for key, values in other.items():
        row = into.get(key)
        if row is None:
            if sign < 0:
                continue
            into[key] = list(values)
            continue
        for i, v in enumerate(values):
            row[i] += sign * v
        if row[0] <= 0:
            del into[key]


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
        self._minutes: deque[Totals] = deque()
        self.cur = Totals(second)
        self._closed: dict[int, Totals] = {w: Totals() for w in windows}
        self._buckets: dict[int, deque[Totals]] = {w: deque() for w in windows}
        self.lifetime = Totals()
        self._interval = interval
        self._by_minute = interval % 60 == 0
        self._interval_start = second - second % interval
        self._interval_acc = Totals(self._interval_start)
        self._hook = hook

    # -- the hot path ---------------------------------------------------------------------
    def observe(self, event: AgentEvent) -> bool:
        """Count ``event``; False when it is older than the largest window (not counted)."""
        cur = self.cur
        ts = event.timestamp
        second = int(ts)
        if second != cur.second:
            if second > cur.second:
                self.roll(second)
                cur = self.cur
            elif second <= cur.second - self._max_window:
                return False
        cur.count += 1
        if ts > cur.last_ts:
            cur.last_ts = ts
        types = cur.types
        etype = event.event_type
        types[etype] = types.get(etype, 0) + 1
        cost = event.cost_usd
        if cost:
            cur.cost += cost
        latency = event.latency_ms
        if latency is not None:
            cur.lat_sum += latency
            cur.lat_n += 1
            # bucket_of(), inlined: this is the hottest line in Redline.
            b = _ceil(_log(latency) * _INV_LOG_GAMMA) if latency >= _MIN_VALUE else _ZERO_BUCKET
            hist = cur.hist
            hist[b] = hist.get(b, 0) + 1
        if (
            event.tokens_in is not None
            or event.tokens_out is not None
            or (event.tokens_cached is not None)
        ):
            cur.tok_in += event.tokens_in or 0
            cur.tok_out += event.tokens_out or 0
            cur.tok_cached += event.tokens_cached or 0
        tool = event.tool
        if tool is not None or etype == "tool_call":
            failed = event.status is not None and event.status not in _OK_STATUSES
            cur.tool_calls += 1
            if failed:
                cur.tool_failures += 1
            key = tool or "unknown"
            row = cur.tools.get(key)
            if row is None:
                row = cur.tools[key] = [0, 0, 0.0, 0]
            row[0] += 1
            if failed:
                row[1] += 1
            if latency is not None:
                row[2] += latency
                row[3] += 1
        model = event.model
        if model is not None:
            mrow = cur.models.get(model)
            if mrow is None:
                mrow = cur.models[model] = [0, 0.0, 0, 0, 0]
            mrow[0] += 1
            if cost:
                mrow[1] += cost
            mrow[2] += event.tokens_in or 0
            mrow[3] += event.tokens_out or 0
            mrow[4] += event.tokens_cached or 0
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
                self._buckets[w].append(cur)
                self._closed[w].add(cur)
        for w in self._windows:
            buckets = self._buckets[w]
            if buckets:
                closed = self._closed[w]
                horizon = second - w
                while buckets and buckets[0].second <= horizon:
                    closed.subtract(buckets.popleft())
        self.cur = Totals(second)
        minute = second - second % 60
        if minute != self._minute.second:
            minutes = self._minutes
            done = self._minute
            if done.count:
                # Lifetime, and baseline intervals made of whole minutes, grow a minute at a
                # time: one merge a minute instead of one a second.
                minutes.append(done)
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
        for bucket in windows._buckets[largest]:
            if bucket.second > horizon:
                out.add(bucket)
    else:
        # Minute resolution: a minute counts when it started inside the window.
        for minute in windows._minutes:
            if minute.second >= horizon:
                out.add(minute)
        out.add(windows._minute)
    out.add(cur)
    return out
