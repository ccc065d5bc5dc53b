"""One bounded, fork-safe batch worker: the shape every slow sink in Redline sits behind.

Modelled on OpenTelemetry's ``BatchProcessor`` (no code copied): the caller's side is a bounded
deque append that never blocks and never drops silently; one daemon thread, started on the first
item, wakes when a batch is ready (``batch_size`` items) or when ``interval`` has passed, and
hands batches to ``export``. What the worker promises:

* **Bounded and counted.** Past ``queue_size`` either the oldest queued item is dropped
  (``full_policy="drop_oldest"``, for telemetry where the newest matters most) or the new one is
  (``"drop_newest"``, for ordered work such as alerts); either way :attr:`BatchWorker.dropped`
  counts it, and :meth:`~BatchWorker.put` says which happened.
* **Honest flush.** :meth:`~BatchWorker.force_flush` returns True only once everything put
  before the call was handed to ``export`` and ``export`` returned (or was dropped, counted);
  False when the timeout passed first. An ``export`` that raises is logged (rate-limited) and
  counted in :attr:`~BatchWorker.errors`; its items are finished, not retried (retrying is the
  exporter's business: only it knows what is worth retrying).
* **Fork-safe.** In a child forked from the process (via :mod:`redline._lifecycle`, plus a pid
  check on :meth:`~BatchWorker.put` for forks that bypass ``os.register_at_fork``) the worker
  gets a fresh lock, condition and wake-up, drops the parent's queued items (the parent still
  exports them: copying them is how one event is sent twice), restarts its counters, and starts
  a thread of its own lazily, on the child's first item.
* **One exit path.** Each worker registers with :func:`redline._lifecycle.at_exit` in the phase
  its owner names, and is flushed and stopped there once, in order with the others.

The store writer (:mod:`redline.writer`) is the one queue not built on this class; its module
docstring says why.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from redline import _lifecycle

__all__ = ["BatchWorker"]

log = logging.getLogger("redline")

T = TypeVar("T")

_POLICIES = ("drop_oldest", "drop_newest")


class BatchWorker(Generic[T]):
    """A bounded queue drained in batches by one daemon thread into ``export(batch)``.

    ``name`` names the thread (``redline-{name}``) and the log lines. ``exit_phase`` is the
    :mod:`redline._lifecycle` phase in which the worker is flushed and stopped at exit (None:
    the owner takes care of it).
    """

    def __init__(
        self,
        export: Callable[[list[T]], object],
        *,
        name: str,
        queue_size: int = 10_000,
        batch_size: int = 512,
        interval: float = 0.5,
        full_policy: str = "drop_oldest",
        exit_phase: int | None = _lifecycle.PRODUCERS,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        if interval <= 0:
            raise ValueError("interval must be positive")
        if full_policy not in _POLICIES:
            raise ValueError(f"full_policy must be one of {', '.join(_POLICIES)}")
        self.name = name
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.interval = interval
        self._export = export
        self._drop_oldest = full_policy == "drop_oldest"
        #: Items dropped (full queue, or put after shutdown).
        self.dropped = 0
        #: Items handed to ``export`` (whether it succeeded or raised).
        self.exported = 0
        #: ``export`` calls that raised.
        self.errors = 0
        self._shut_down = False
        self._init_state()
        _lifecycle.after_fork_in_child(self._after_fork)
        if exit_phase is not None:
            _lifecycle.at_exit(self, BatchWorker._at_exit, exit_phase)

    def _init_state(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._queue: deque[T] = deque()
        self._enqueued = 0
        self._finished = 0
        self._flush_requested = False
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the caller's side ----------------------------------------------------------------------
    def put(self, item: T) -> bool:
        """Queue ``item``; False when it was dropped instead (full queue or shut down). O(1)."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._shut_down:
                self.dropped += 1
                return False
            queue = self._queue
            if len(queue) >= self.queue_size:
                self.dropped += 1
                if not self._drop_oldest:
                    return False
                queue.popleft()
                self._finished += 1  # it will never be exported: keep flush() waits honest
            queue.append(item)
            self._enqueued += 1
            ready = len(queue) >= self.batch_size
            if self._thread is None:
                # Started under the lock, so that no flush() can see a thread not yet alive and
                # export beside it (the new thread needs nothing of the lock to start).
                self._thread = threading.Thread(
                    target=self._run, name=f"redline-{self.name}", daemon=True
                )
                self._thread.start()
        if ready and not self._wake.is_set():
            self._wake.set()
        return True

    @property
    def queued(self) -> int:
        """Items waiting (not counting a batch being exported)."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether ``export`` is running now."""
        return self._busy

    # -- waiting and stopping -------------------------------------------------------------------
    def force_flush(self, timeout: float | None = 10.0) -> bool:
        """Export everything put so far, partial batches too; True once done, False on timeout."""
        with self._lock:
            target = self._enqueued
            if self._finished >= target:
                return True
            thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            # No worker to wait for (it stopped, or this *is* it: an exporter that flushes
            # from inside export()): export on this thread instead of waiting for ourselves.
            self._drain(everything=True)
            with self._lock:
                return self._finished >= target
        self._flush_requested = True
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._finished >= target, timeout)

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Export what is queued, stop the thread; later puts are dropped (counted). Idempotent.

        True when everything queued was exported and the thread ended within ``timeout``.
        """
        _lifecycle.cancel_at_exit(self)
        with self._lock:
            if self._shut_down:
                return True
            self._shut_down = True
            self._stopping = True
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            self._drain(everything=True)
            return not self._queue
        self._wake.set()
        thread.join(timeout)
        return not thread.is_alive() and not self._queue

    def _at_exit(self, timeout: float) -> None:
        self.shutdown(timeout)

    # -- the worker -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            woken = self._wake.wait(self.interval)
            self._wake.clear()  # before reading the flag: a flush after this wakes us again
            flush, self._flush_requested = self._flush_requested, False
            stopping = self._stopping
            self._drain(everything=stopping or flush or not woken)
            if stopping:
                return

    def _drain(self, *, everything: bool) -> None:
        """Export full batches, and with ``everything`` the partial one left at the end too."""
        while True:
            with self._lock:
                queue = self._queue
                if not queue or (not everything and len(queue) < self.batch_size):
                    return
                n = min(self.batch_size, len(queue))
                batch = [queue.popleft() for _ in range(n)]
                self._busy = True
            try:
                self._export(batch)
            except Exception:
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.exception(
                        "redline: %s: exporting %d item(s) failed (%d failures so far)",
                        self.name,
                        n,
                        self.errors,
                    )
            finally:
                with self._done:
                    self._busy = False
                    self.exported += n
                    self._finished += n
                    self._done.notify_all()

    # -- fork -----------------------------------------------------------------------------------
    def _after_fork(self) -> None:
        """In a forked child: fresh synchronisation, an empty queue, a thread started lazily."""
        if self._pid == os.getpid():
            return  # already done (the at-fork hook and the pid check both lead here)
        stopped = self._shut_down
        self._init_state()
        self._shut_down = stopped
