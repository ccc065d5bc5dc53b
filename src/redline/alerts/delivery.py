"""Alert delivery off the caller's thread: one bounded lane per remote channel.

The path of one alert::

    AlertManager.notify(alert)                      caller's thread: a few dict lookups, no I/O
      └── Dispatcher.submit(channel, alert)         deque append (drop + count when full), wake
            └── lane worker (a BatchWorker)         one per channel, FIFO, one alert at a time
                  ├── CircuitBreaker.allow()        open → dead letter at once, no request
                  ├── channel.send(alert)           per-request timeout, set by the channel
                  ├── retry: full-jitter backoff,   Retry-After honoured on 429/503,
                  │          4xx (not 408/429) never retried
                  └── sent | DeadLetterFile.write() what finally failed, secrets masked

Why a lane (a queue and one worker) per channel rather than one shared pool: a receiver that
hangs or backs off can only hold its own worker, so it never delays any other channel, whatever
the number of stuck receivers (a shared pool of N workers is starved by N of them); and each
channel sees its alerts in order, so PagerDuty's ``resolve`` never overtakes its ``trigger``.
Threads cost one per remote channel configured (a handful), started on the first alert. Each
lane is a :class:`redline._batch.BatchWorker` (batches of one, the newest dropped when full): in
a child after ``os.fork()`` it starts afresh with an empty queue (the parent still delivers what
it had queued, so no alert goes out twice), and at interpreter exit it is flushed once, after
the monitors (whose closing may still raise an alert). The circuit breaker keeps a dead receiver from turning every alert into
five timeouts; while it is open alerts are dead-lettered at once instead of piling up.

The console channel sets ``deliver_inline = True`` and is written on the caller's thread by
:meth:`Dispatcher.deliver_inline`: one attempt, counted and dead-lettered like the rest. The JSONL
channel goes through a worker like remote ones (its fsync is too slow for the caller's thread).

Time is injected: ``sleep`` (backoff waits; the default wakes early on ``close()``), ``clock``
(the breaker's half-open timer and HTTP-date ``Retry-After``) and ``rng`` (the jitter).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redline import _lifecycle
from redline._batch import BatchWorker
from redline.clock import Clock, SystemClock
from redline.exceptions import RedlineError

if TYPE_CHECKING:
    from redline.alerts.manager import Alert, AlertChannel

__all__ = [
    "CircuitBreaker",
    "DeadLetterFile",
    "DeliveryError",
    "Dispatcher",
    "RetryPolicy",
    "parse_retry_after",
]

log = logging.getLogger("redline")


class DeliveryError(RedlineError):
    """A channel could not deliver one alert, and whether trying again may help.

    Channels translate their library's errors into this at the boundary (``raise ... from exc``);
    the message is already free of secrets. ``retry_after`` is the raw ``Retry-After`` header
    (seconds or an HTTP date), ``status`` the HTTP or SMTP status when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one alert is retried.

    The wait before retry ``n`` (1-based) is uniform in ``[0, min(cap, base * 2**(n-1))]`` ("full
    jitter"), unless the receiver sent ``Retry-After``: then exactly that, and the alert is given
    up when it asks for more than ``max_retry_after`` seconds.
    """

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_cap < 0 or self.max_retry_after < 0:
            raise ValueError("backoff_base, backoff_cap and max_retry_after must not be negative")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The jittered wait after failed attempt ``attempt``."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** min(attempt - 1, 62)))
        return rng.uniform(0.0, ceiling)


class CircuitBreaker:
    """Closed → open after ``threshold`` consecutive failures → half-open after ``reset_seconds``.

    Half-open lets one trial through: success closes the circuit, failure opens it again for
    another ``reset_seconds``. Only failures that say the receiver is unavailable (timeouts,
    connection errors, 408, 429, 5xx) count; a 4xx answer says nothing about availability.
    Not thread-safe on its own: each lane's single worker is its only user.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __init__(self, threshold: int = 5, reset_seconds: float = 30.0, clock: Clock | None = None):
        if threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self._clock = clock or SystemClock()
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.opens = 0

    def allow(self) -> bool:
        """Whether a request may be made now (moves open → half-open when the timer ran out)."""
        if self.state == self.CLOSED:
            return True
        if self.state == self.OPEN and self._clock.time() - self.opened_at >= self.reset_seconds:
            self.state = self.HALF_OPEN
            return True
        return False

    def record_success(self) -> None:
        """The receiver answered 2xx: close the circuit."""
        self.state = self.CLOSED
        self.failures = 0

    def record_failure(self) -> bool:
        """The receiver looked unavailable; True when this failure opened the circuit."""
        self.failures += 1
        if self.state == self.HALF_OPEN or (
            self.state == self.CLOSED and self.failures >= self.threshold
        ):
            self.state = self.OPEN
            self.opened_at = self._clock.time()
            self.opens += 1
            return True
        return False


class DeadLetterFile:
    """An append-only JSONL file of alerts that could not be delivered, one record per line.

    Each record: ``time`` (ISO 8601 UTC), ``channel``, ``attempts``, ``error`` (secrets masked),
    ``alert`` (the alert as a dict). Replay it with any tool that reads JSON lines.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.errors = 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held it at the fork)."""
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> bool:
        """Append and fsync one record; False (logged once per ten failures) when it failed."""
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            self.errors += 1
            if self.errors % 10 == 1:
                log.error(
                    "redline: writing the alert dead-letter file %s failed: %s", self.path, exc
                )
            return False
        return True


class ChannelStats:
    """Delivery counters for one channel."""

    __slots__ = ("dead_lettered", "dropped", "failed", "retried", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.dropped = 0
        self.dead_lettered = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class _Lane:
    """One channel's queue and worker, breaker and counters."""

    def __init__(
        self,
        channel: AlertChannel,
        breaker: CircuitBreaker,
        deliver: Callable[[_Lane, list[Alert]], None],
        queue_size: int,
    ) -> None:
        self.channel = channel
        self.breaker = breaker
        self.stats = ChannelStats()
        self.lock = threading.Lock()  # guards stats from the caller's and the worker's threads
        self.worker: BatchWorker[Alert] = BatchWorker(
            lambda batch: deliver(self, batch),
            name=f"alerts-{channel.name}",
            queue_size=queue_size,
            batch_size=1,  # one alert at a time, in order: the worker wakes for each
            interval=1.0,
            full_policy="drop_newest",
            exit_phase=_lifecycle.DELIVERY,
        )


def _redact(channel: object, text: str) -> str:
    """The channel's own masking (``redact(text)``) when it has one."""
    redact = getattr(channel, "redact", None)
    if redact is None:
        return text
    try:
        return str(redact(text))
    except Exception:
        return "<error message withheld: masking failed>"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, DeliveryError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Dispatcher:
    """Delivers alerts to channels: inline for local ones, on a worker lane for remote ones."""

    def __init__(
        self,
        *,
        queue_size: int = 1000,
        retry: RetryPolicy | None = None,
        breaker_threshold: int = 5,
        breaker_reset_seconds: float = 30.0,
        dead_letter_path: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self.retry = retry or RetryPolicy()
        self.breaker_threshold = breaker_threshold
        self.breaker_reset_seconds = breaker_reset_seconds
        self.dead_letter = DeadLetterFile(dead_letter_path) if dead_letter_path else None
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._lanes: dict[str, _Lane] = {}
        self._closing = False
        CircuitBreaker(breaker_threshold, breaker_reset_seconds)  # validate at construction
        _lifecycle.after_fork_in_child(self._after_fork)

    # -- setup ------------------------------------------------------------------------------
    def add(self, channel: AlertChannel) -> None:
        """Give ``channel`` its counters (and, unless it delivers inline, its lane)."""
        if channel.name in self._lanes:
            raise ValueError(f"two alert channels are named {channel.name!r}")
        breaker = CircuitBreaker(self.breaker_threshold, self.breaker_reset_seconds, self._clock)
        self._lanes[channel.name] = _Lane(channel, breaker, self._run, self.queue_size)

    # -- the caller's side ------------------------------------------------------------------
    def submit(self, name: str, alert: Alert) -> bool:
        """Queue ``alert`` for channel ``name``; False (counted as dropped) when its queue is full."""
        lane = self._lanes[name]
        if self._closing:
            with lane.lock:
                lane.stats.dropped += 1
            return False
        if lane.worker.put(alert):
            return True
        with lane.lock:
            lane.stats.dropped += 1
            dropped = lane.stats.dropped
        if dropped == 1 or dropped % 1000 == 0:
            log.warning(
                "redline: alert channel %s is behind; dropped %d alert(s) so far",
                name,
                dropped,
            )
        return False

    def deliver_inline(self, name: str, alert: Alert) -> bool:
        """Deliver on this thread (local channels): one attempt, counted, dead-lettered on failure."""
        lane = self._lanes[name]
        try:
            lane.channel.send(alert)
        except Exception as exc:
            error = _redact(lane.channel, _error_text(exc))
            self._give_up(lane, alert, 1, error)
            return False
        with lane.lock:
            lane.stats.sent += 1
        return True

    # -- waiting ----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every alert queued so far was delivered or given up; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = True
        for lane in self._lanes.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = lane.worker.force_flush(left) and ok
        return ok

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then stop the workers; what is still queued is dead-lettered. Idempotent."""
        if self._closing:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        ok = self.flush(timeout)
        self._closing = True  # what is still queued is now given up, not sent
        self._stop.set()  # and a retry's backoff wait ends at once
        for lane in self._lanes.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ok = lane.worker.shutdown(left) and ok
        for lane in self._lanes.values():
            close = getattr(lane.channel, "close", None)
            if close is not None and not lane.worker.busy:
                try:
                    close()
                except Exception as exc:
                    log.warning(
                        "redline: closing alert channel %s failed: %s", lane.channel.name, exc
                    )
        return ok

    # -- reading ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Totals and per-channel counters, queue depth and circuit state."""
        totals = ChannelStats().as_dict()
        channels: dict[str, dict[str, Any]] = {}
        for name, lane in self._lanes.items():
            with lane.lock:
                counts = lane.stats.as_dict()
            for key, value in counts.items():
                totals[key] += value
            channels[name] = {
                **counts,
                "queued": lane.worker.queued,
                "circuit": lane.breaker.state,
            }
        out: dict[str, Any] = dict(totals)
        out["queued"] = sum(lane.worker.queued for lane in self._lanes.values())
        out["channels"] = channels
        return out

    def total(self, counter: str) -> int:
        """One counter summed over channels."""
        return sum(getattr(lane.stats, counter) for lane in self._lanes.values())

    # -- the worker -------------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held one at the fork).

        Each lane's worker re-makes itself (empty queue, a thread on the next alert).
        """
        for lane in self._lanes.values():
            lane.lock = threading.Lock()
        if self.dead_letter is not None:
            self.dead_letter.after_fork()

    def _run(self, lane: _Lane, batch: list[Alert]) -> None:
        """A lane worker's export: deliver (or, once closing, give up) each alert in order."""
        for alert in batch:
            try:
                if self._closing:
                    self._give_up(lane, alert, 0, "not delivered before close()")
                else:
                    self._deliver(lane, alert)
            except Exception as exc:  # a bug in Redline: never let it kill the lane
                log.error(
                    "redline: alert delivery on %s failed unexpectedly: %s",
                    lane.channel.name,
                    type(exc).__name__,
                )

    def _deliver(self, lane: _Lane, alert: Alert) -> None:
        channel, breaker, policy = lane.channel, lane.breaker, self.retry
        attempts = 0
        error = ""
        while True:
            if not breaker.allow():
                why = "circuit open" + (f" after: {error}" if error else "")
                self._give_up(lane, alert, attempts, why)
                return
            attempts += 1
            try:
                channel.send(alert)
            except Exception as exc:
                error = _redact(channel, _error_text(exc))
                retryable = exc.retryable if isinstance(exc, DeliveryError) else True
                retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
            else:
                breaker.record_success()
                with lane.lock:
                    lane.stats.sent += 1
                return
            if retryable and breaker.record_failure():
                log.warning(
                    "redline: alert channel %s: circuit open after %d consecutive failures; "
                    "alerts are dead-lettered for %.0fs (last error: %s)",
                    channel.name,
                    breaker.failures,
                    breaker.reset_seconds,
                    error,
                )
            if not retryable or attempts >= policy.max_attempts or self._stop.is_set():
                self._give_up(lane, alert, attempts, error)
                return
            delay = policy.backoff(attempts, self._rng)
            wait = parse_retry_after(retry_after, self._clock.time())
            if wait is not None:
                if wait > policy.max_retry_after:
                    self._give_up(
                        lane, alert, attempts, f"{error} (Retry-After {wait:.0f}s is too long)"
                    )
                    return
                delay = wait
            with lane.lock:
                lane.stats.retried += 1
            log.debug(
                "redline: alert channel %s: attempt %d failed (%s); retrying in %.2fs",
                channel.name,
                attempts,
                error,
                delay,
            )
            self._sleep(delay)
            if self._stop.is_set():
                self._give_up(lane, alert, attempts, f"{error} (closed while retrying)")
                return

    def _give_up(self, lane: _Lane, alert: Alert, attempts: int, error: str) -> None:
        """Count a final failure, log it (rate-limited) and dead-letter the alert."""
        with lane.lock:
            lane.stats.failed += 1
            failed = lane.stats.failed
        if failed == 1 or failed % 100 == 0:
            log.warning(
                "redline: alert %s not delivered to %s after %d attempt(s): %s "
                "(%d undelivered on this channel so far)",
                alert.id,
                lane.channel.name,
                attempts,
                error,
                failed,
            )
        if self.dead_letter is None:
            return
        record = {
            "time": datetime.fromtimestamp(self._clock.time(), timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "channel": lane.channel.name,
            "attempts": attempts,
            "error": error,
            "alert": alert.to_dict(),
        }
        if self.dead_letter.write(record):
            with lane.lock:
                lane.stats.dead_lettered += 1
