"""``Monitor.batch()`` (one commit for many sync events) and ``redline._batch.BatchWorker``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from redline import AgentEvent, Monitor, parse_config
from redline._batch import BatchWorker


def _stored(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        con.close()


def test_denials_in_a_batch_are_committed_when_the_batch_ends(tmp_path: Path) -> None:
    """Leaving ``batch()`` returns only once the batch's denials are committed."""
    db = tmp_path / "e.db"
    config = parse_config({"storage": {"path": str(db), "flush_interval_seconds": 60}})
    with Monitor(config) as m:
        with m.batch():
            for i in range(50):
                m.record(AgentEvent(agent="a", event_type="denial", data={"i": i}))
        assert _stored(db) == 50


def test_batches_nest_and_commit_once_at_the_outermost(tmp_path: Path) -> None:
    """An inner batch does not commit; the outer one does."""
    db = tmp_path / "e.db"
    config = parse_config({"storage": {"path": str(db), "flush_interval_seconds": 60}})
    with Monitor(config) as m:
        with m.batch():
            with m.batch():
                m.record(AgentEvent(agent="a", event_type="denial"))
            m.record(AgentEvent(agent="a", event_type="denial"))
        assert _stored(db) == 2


def test_outside_a_batch_each_denial_is_committed_before_record_returns(tmp_path: Path) -> None:
    """Without ``batch()`` the per-event contract of ``durability: sync`` holds."""
    db = tmp_path / "e.db"
    config = parse_config(
        {"storage": {"path": str(db), "flush_interval_seconds": 60, "durability": "sync"}}
    )
    with Monitor(config) as m:
        m.record(AgentEvent(agent="a", event_type="denial"))
        assert _stored(db) == 1


# -- BatchWorker ----------------------------------------------------------------------------------


class Gate:
    """An export that records batches and, while ``hold`` is set, waits inside for ``release``."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, batch: list[int]) -> None:
        self.entered.set()
        assert self.release.wait(10)
        self.batches.append(batch)


def test_a_full_batch_wakes_the_worker_without_waiting_for_the_interval() -> None:
    """``batch_size`` items are exported at once, however long the interval."""
    gate = Gate()
    worker = BatchWorker(gate, name="t", batch_size=3, interval=3600, exit_phase=None)
    for i in range(3):
        worker.put(i)
    assert gate.entered.wait(10)
    assert worker.force_flush(10)
    assert gate.batches == [[0, 1, 2]]
    worker.shutdown()


def test_force_flush_exports_a_partial_batch_and_is_true_only_when_done() -> None:
    """``force_flush`` is False while the export is stuck, True once the items went out."""
    gate = Gate(hold=True)
    worker = BatchWorker(gate, name="t", batch_size=100, interval=3600, exit_phase=None)
    worker.put(1)
    assert worker.force_flush(0.05) is False
    gate.release.set()
    assert worker.force_flush(10) is True
    assert gate.batches == [[1]]
    worker.shutdown()


def test_drop_oldest_counts_and_keeps_the_newest() -> None:
    """Past ``queue_size`` the oldest queued item goes, and is counted."""
    gate = Gate(hold=True)
    worker = BatchWorker(gate, name="t", queue_size=3, batch_size=1, interval=3600,
                         exit_phase=None)  # fmt: skip
    worker.put(0)
    assert gate.entered.wait(10)  # item 0 is being exported
    for i in range(1, 6):
        assert worker.put(i)
    assert (worker.dropped, worker.queued) == (2, 3)
    gate.release.set()
    assert worker.force_flush(10)
    assert [b[0] for b in gate.batches] == [0, 3, 4, 5]
    worker.shutdown()


def test_drop_newest_refuses_and_counts() -> None:
    """With ``drop_newest`` a full queue refuses the new item: ``put`` is False, counted."""
    gate = Gate(hold=True)
    worker = BatchWorker(gate, name="t", queue_size=2, batch_size=1, interval=3600,
                         full_policy="drop_newest", exit_phase=None)  # fmt: skip
    worker.put(0)
    assert gate.entered.wait(10)
    assert worker.put(1)
    assert worker.put(2)
    assert worker.put(3) is False
    assert worker.dropped == 1
    gate.release.set()
    assert worker.force_flush(10)
    assert [b[0] for b in gate.batches] == [0, 1, 2]
    worker.shutdown()


def test_a_failing_export_is_counted_and_the_worker_goes_on() -> None:
    """An export that raises is counted in ``errors``; later batches still go out."""
    seen: list[int] = []

    def export(batch: list[int]) -> None:
        if batch == [0]:
            raise RuntimeError("sink down")
        seen.extend(batch)

    worker = BatchWorker(export, name="t", batch_size=1, interval=3600, exit_phase=None)
    worker.put(0)
    worker.put(1)
    assert worker.force_flush(10)
    assert (worker.errors, seen) == (1, [1])
    worker.shutdown()


def test_shutdown_exports_what_is_queued_and_later_puts_are_dropped() -> None:
    """``shutdown`` sends the queue; a put after it is refused and counted."""
    gate = Gate()
    worker = BatchWorker(gate, name="t", batch_size=100, interval=3600, exit_phase=None)
    worker.put(1)
    assert worker.shutdown(10)
    assert gate.batches == [[1]]
    assert worker.put(2) is False
    assert worker.dropped == 1
    assert worker.shutdown() is True  # idempotent


def test_in_a_forked_child_the_parents_queue_is_not_exported_again() -> None:
    """The child's worker starts empty and exports only the child's items; the parent's once."""
    read_fd, write_fd = os.pipe()
    exported: list[int] = []
    worker = BatchWorker(exported.extend, name="t", batch_size=100, interval=3600,
                         exit_phase=None)  # fmt: skip
    for i in range(5):
        worker.put(i)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        ok = worker.queued == 0
        worker.put(100)
        ok = ok and worker.force_flush(10) and exported == [100]
        os.write(write_fd, b"ok" if ok else repr(exported).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert worker.force_flush(10)
    assert exported == [0, 1, 2, 3, 4]
    worker.shutdown()


_EXIT_ORDER = """
from redline import _lifecycle
from redline._batch import BatchWorker

class Owner:
    def __init__(self, name):
        self.name = name

def say(owner, timeout):
    print(owner.name, flush=True)

delivery, writer, producer = Owner("delivery"), Owner("writer"), Owner("producer")
_lifecycle.at_exit(delivery, say, _lifecycle.DELIVERY)
_lifecycle.at_exit(writer, say, _lifecycle.WRITERS)
_lifecycle.at_exit(producer, say, _lifecycle.PRODUCERS)
worker = BatchWorker(lambda b: print("exported", *b, flush=True), name="t", batch_size=100,
                     interval=3600, exit_phase=_lifecycle.PRODUCERS)
worker.put(7)
"""


def test_at_exit_each_worker_is_flushed_once_producers_before_writers() -> None:
    """Interpreter exit flushes a queued worker and runs hooks once, phase by phase."""
    out = subprocess.run([sys.executable, "-c", _EXIT_ORDER], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.split("\n")[:-1] == ["producer", "exported 7", "writer", "delivery"]
