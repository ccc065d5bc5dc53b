"""The background writer: a bounded queue between ``record()`` and the store.

Modelled on OpenTelemetry's batch processor. ``put()`` is a deque append plus, when a batch is
ready, one wake-up of the worker; it never blocks (unless the ``block`` policy is chosen) and never
drops silently. The worker drains batches into ``store.append()``, wakes at least every
``flush_interval`` seconds, runs the monitor's periodic duties (``on_tick``: kill polling, TTL
expiry), and retries a failing store with backoff while keeping the batch.

``flush()`` returns once everything put before it has been committed (or the timeout passed).

Full-queue policies: ``drop_oldest`` (default; the oldest queued event is dropped), ``drop_newest``,
``block`` (wait up to ``block_timeout`` for room, then drop the newest), ``spill`` (append to a
JSONL file, stored by :meth:`replay_spill` when the next monitor starts). Every drop is counted.

Why this is not a :class:`redline._batch.BatchWorker` like the other three queues: ``put()`` is
on ``record()``'s path and is called under the monitor's lock, so it needs no lock of its own and
no pid check (the monitor re-makes the writer after a fork). Measured in pure Python, one run:
``BatchWorker.put`` 659 ns against this ``put`` 134 ns (4.9x), with ``record()`` itself ~4.4 us:
building on it would cost ``record()`` about 12 %, more once this module is compiled by mypyc and
``_batch`` is not. The writer also does what a generic worker should not know about: group
commit (:meth:`wake`), a failed batch kept and retried in order with backoff while the periodic
duties go on ticking, quarantine of an event the store cannot encode, ``block`` and ``spill``.
It shares the lifecycle instead: :mod:`redline._lifecycle` runs the monitor's after-fork callback
(which calls :meth:`after_fork` once the store has its own connections) and closes the monitor,
and so this writer, at exit in the ``WRITERS`` phase: after the producers, before delivery.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from redline.events import AgentEvent
from redline.exceptions import StoreError
from redline.store.base import Store

__all__ = ["BackgroundWriter"]

log = logging.getLogger("redline")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(AgentEvent).decode


class BackgroundWriter:
    """Moves events from a bounded queue to a store on a daemon thread."""

    def __init__(
        self,
        store: Store,
        *,
        queue_size: int = 100_000,
        batch_size: int = 1_000,
        flush_interval: float = 0.2,
        tick_interval: float = 0.05,
        full_policy: str = "drop_oldest",
        block_timeout: float = 0.05,
        on_tick: Callable[[], None] | None = None,
        spill_path: str | None = None,
    ) -> None:
        self.store = store
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.tick_interval = min(tick_interval, flush_interval)
        self.full_policy = full_policy
        self.block_timeout = block_timeout
        self._on_tick = on_tick
        self.spill_path = spill_path
        self._spill_file: Any = None
        self._spill_lock = threading.Lock()
        self.spilled = 0
        self._queue: deque[AgentEvent] = deque()
        self._wake = threading.Event()
        self._signalled = False
        self._tick_now = False
        self._done = threading.Condition()
        self._space = threading.Condition()
        self._enqueued = 0
        self._written = 0
        self.dropped = 0
        self.write_errors = 0
        self.quarantined = 0
        self.last_write_at: float | None = None
        self.last_error: str | None = None
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="redline-writer", daemon=True)
        self._worker.start()

    # -- the hot path ---------------------------------------------------------------------
    def put(self, event: AgentEvent) -> None:
        """Queue ``event``; applies the full-queue policy when the queue is at capacity."""
        queue = self._queue
        if len(queue) >= self.queue_size and not self._make_room():
            if self.full_policy == "spill" and self._spill(event):
                return
            self.dropped += 1
            return
        queue.append(event)
        self._enqueued += 1
        if not self._signalled and len(queue) >= self.batch_size:
            self._signalled = True
            self._wake.set()

    def wake(self) -> None:
        """Ask the worker to commit what is queued now (group commit); never waits.

        Used for governance evidence (``storage.sync_types``) under ``durability: group``: the
        event is on disk within one commit's time, and ``record()`` stays off the disk.
        """
        if not self._signalled:
            self._signalled = True
            self._wake.set()

    def after_fork(self) -> None:
        """In a forked child: a fresh, empty queue and a worker of its own.

        What the parent had queued is the parent's to write (it still will); copying it into the
        child's queue is how 50 events became 100 rows. The counters start again so that
        ``flush()`` in the child waits for the child's own events only.
        """
        self._queue = deque()
        self._wake = threading.Event()
        self._signalled = False
        self._tick_now = False
        self._done = threading.Condition()
        self._space = threading.Condition()
        self._spill_lock = threading.Lock()
        self._spill_file = None
        self._enqueued = 0
        self._written = 0
        if not self._closing:
            self._worker = threading.Thread(target=self._run, name="redline-writer", daemon=True)
            self._worker.start()

    def request_tick(self) -> None:
        """Run the periodic duties at the worker's next wake, due or not, and wake it now."""
        self._tick_now = True
        self._wake.set()

    def _make_room(self) -> bool:
        """Apply the policy; True when the event may still be appended to the queue."""
        if self.full_policy == "drop_oldest":
            try:
                self._queue.popleft()
            except IndexError:
                return True
            self.dropped += 1
            self._written += 1  # it will never be written; keep flush() waits honest
            return True
        if self.full_policy == "block":
            self._wake.set()
            deadline = time.monotonic() + self.block_timeout
            with self._space:
                while len(self._queue) >= self.queue_size:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._worker.is_alive():
                        return False
                    self._space.wait(left)
            return True
        return False

    def _spill(self, event: AgentEvent) -> bool:
        """Append an event that did not fit to the spill file; replayed at the next start."""
        if self.spill_path is None:
            return False
        try:
            with self._spill_lock:
                if self._spill_file is None:
                    path = Path(self.spill_path)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._spill_file = path.open("ab", buffering=0)
                self._spill_file.write(_encode(event) + b"\n")
        except OSError:
            log.exception("redline: spilling to %s failed", self.spill_path)
            return False
        self.spilled += 1
        return True

    def replay_spill(self) -> int:
        """Store the events a previous run spilled, then truncate the file; returns how many."""
        if self.spill_path is None:
            return 0
        path = Path(self.spill_path)
        if not path.exists() or path.stat().st_size == 0:
            return 0
        events: list[AgentEvent] = []
        for line in path.read_bytes().splitlines():
            if line.strip():
                try:
                    events.append(_decode(line))
                except msgspec.DecodeError:
                    log.warning("redline: skipped an unreadable line in %s", path)
        for start in range(0, len(events), self.batch_size):
            self.store.append(events[start : start + self.batch_size])
        path.write_bytes(b"")
        return len(events)

    # -- waiting for durability -----------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is committed; False on timeout."""
        target = self._enqueued
        if self._written >= target:
            return True
        if not self._worker.is_alive() or self._worker is threading.current_thread():
            # On the writer thread itself (a periodic duty recording a TTL revive), waiting for
            # the worker would wait for ourselves: write inline instead.
            self._drain_inline()
            return self._written >= target
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the thread and close the store. Idempotent."""
        if self._closing:
            return True
        ok = self.flush(timeout)
        self._closing = True
        self._wake.set()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout)
        self._drain_inline()
        if self._spill_file is not None:
            self._spill_file.close()
        try:
            self.store.close()
        except Exception:
            log.exception("redline: closing the store failed")
            return False
        return ok

    @property
    def queued(self) -> int:
        """Events waiting to be written."""
        return len(self._queue)

    @property
    def written(self) -> int:
        """Events committed (plus those dropped-oldest, which will never be)."""
        return self._written

    # -- the worker -----------------------------------------------------------------------
    def _run(self) -> None:
        next_tick = 0.0
        backoff = 0.05
        retry_at = 0.0
        while True:
            self._wake.wait(self.tick_interval)
            self._wake.clear()
            self._signalled = False
            next_tick = self._maybe_tick(next_tick)
            while self._queue and time.monotonic() >= retry_at:
                if not self._write_batch():
                    # The store failed: retry with backoff, but keep ticking meanwhile (kill
                    # polling must not wait on a store outage or a long backlog).
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, 5.0)
                    break
                backoff = 0.05
                retry_at = 0.0
                next_tick = self._maybe_tick(next_tick)
            if self._closing:
                return

    def _maybe_tick(self, next_tick: float) -> float:
        """Run the periodic duties when due; returns when they are next due."""
        now = time.monotonic()
        if self._on_tick is None or (now < next_tick and not self._tick_now):
            return next_tick
        self._tick_now = False
        try:
            self._on_tick()
        except Exception:
            log.exception("redline: periodic duty failed")
        return now + self.tick_interval

    def _write_batch(self) -> bool:
        queue = self._queue
        batch: list[AgentEvent] = []
        pop = queue.popleft
        with contextlib.suppress(IndexError):  # fewer than a batch queued
            for _ in range(self.batch_size):
                batch.append(pop())
        if not batch:
            return True
        try:
            self.store.append(batch)
        except StoreError as exc:
            # The store is down or locked: put the batch back, in order, and retry later.
            queue.extendleft(reversed(batch))
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.error(
                    "redline: writing %d events failed (%s); will retry",
                    len(batch),
                    self.last_error,
                )
            return False
        except Exception:
            # Not the store but an event it cannot encode (validation should have repaired it):
            # store the rest one by one and set the bad ones aside, or one event would stop
            # every later one from being stored.
            left = self._quarantine(batch)
            if left:
                queue.extendleft(reversed(left))
                done = len(batch) - len(left)
                with self._done:
                    self._written += done
                    self._done.notify_all()
                return False
        self.last_write_at = time.time()
        with self._done:
            self._written += len(batch)
            self._done.notify_all()
        if self.full_policy == "block":
            with self._space:
                self._space.notify_all()
        return True

    def _quarantine(self, batch: list[AgentEvent]) -> list[AgentEvent]:
        """Store ``batch`` one event at a time, setting aside those that cannot be encoded.

        Returns the events not yet attempted when the store itself failed (to retry later).
        """
        for i, event in enumerate(batch):
            try:
                self.store.append([event])
            except StoreError:
                return batch[i:]
            except Exception as exc:
                self.quarantined += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.quarantined == 1 or self.quarantined % 100 == 0:
                    log.error(
                        "redline: an event could not be stored and was set aside (%s); "
                        "%d so far (stats()['quarantined'])",
                        self.last_error,
                        self.quarantined,
                    )
        return []

    def _drain_inline(self) -> None:
        """Write what is left from the calling thread (after the worker stopped)."""
        for _ in range(3):
            while self._queue:
                if not self._write_batch():
                    break
            if not self._queue:
                return
