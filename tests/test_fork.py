"""A monitor created before ``os.fork()`` works in the child (gunicorn, Celery prefork, multiprocessing).

Each side's events are stored exactly once (the parent's queue is not written twice), and a kill
made elsewhere, by the CLI, reaches the child's ``check()``.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from redline import AgentEvent, AgentKilledError, Monitor, parse_config

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: The writer sleeps unless asked: queued events stay queued across the fork.
LAZY = {"flush_interval_seconds": 30.0, "batch_size": 10_000}


#: The child's part in the double-write tests: its own 30 events, flushed, then a clean close.
_CHILD_RECORDS_30 = (
    "for i in range(30):\n"
    "    monitor.record(AgentEvent(agent='child', data={'i': i}))\n"
    "assert monitor.flush(30)\n"
    "monitor.close()\n"
)


def _rows(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT agent, count(*) FROM events GROUP BY agent").fetchall())
    finally:
        conn.close()


def _child(body: str, monitor: Monitor) -> int:
    """Fork; the child runs ``body`` (exec'd with ``monitor``), then exits without atexit."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        code = 0
        try:
            exec(body, {"monitor": monitor, "AgentEvent": AgentEvent,
                        "AgentKilledError": AgentKilledError, "time": time})
        except BaseException as exc:  # report anything to the parent through the exit code
            os.write(write_fd, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code == 0, f"child failed: {message}"
    return code


def test_events_queued_at_the_fork_are_stored_once(tmp_path: Path) -> None:
    """50 events queued in the parent when it forks are stored once; the child's own 30 too."""
    db = tmp_path / "events.db"
    monitor = Monitor(parse_config({"storage": {"path": str(db), **LAZY}}))
    for i in range(50):
        monitor.record(AgentEvent(agent="parent", data={"i": i}))
    assert monitor.stats()["queued"] == 50
    _child(_CHILD_RECORDS_30, monitor)
    assert monitor.flush(30)
    assert _rows(db) == {"parent": 50, "child": 30}
    assert monitor.verify().ok
    monitor.close()


def test_a_kill_from_the_cli_reaches_the_forked_child(tmp_path: Path) -> None:
    """The child polls kill state on its own writer thread: a CLI kill stops its ``check()``."""
    db = tmp_path / "events.db"
    config_path = tmp_path / "monitor.yaml"
    config_path.write_text(f"storage:\n  path: {db}\n", encoding="utf-8")
    monitor = Monitor(parse_config({"storage": {"path": str(db)}}))
    monitor.record(AgentEvent(agent="worker"))
    assert monitor.flush(10)
    cli = [sys.executable, "-m", "redline.cli", "-c", str(config_path), "kill", "worker",
           "--reason", "from the CLI"]
    _child(
        "import subprocess, sys\n"
        "monitor.check('worker')\n"
        f"subprocess.run({cli!r}, check=True, capture_output=True)\n"
        "deadline = time.monotonic() + 10\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        monitor.check('worker')\n"
        "    except AgentKilledError:\n"
        "        break\n"
        "    time.sleep(0.01)  # the deadline poll of a cross-process effect\n"
        "else:\n"
        "    raise AssertionError('the CLI kill never reached the child')\n"
        "monitor.close()\n",
        monitor,
    )
    monitor.close()


def test_postgres_events_queued_at_the_fork_are_stored_once(pg_schema: str) -> None:
    """On PostgreSQL the child opens its own connections and stream; each event is stored once
    and both streams verify."""
    from conftest import PG_DSN

    storage = {"backend": "postgres", "dsn": PG_DSN, "schema": pg_schema, **LAZY}
    monitor = Monitor(parse_config({"storage": storage}))
    for i in range(50):
        monitor.record(AgentEvent(agent="parent", data={"i": i}))
    _child(_CHILD_RECORDS_30, monitor)
    assert monitor.flush(30)
    counts: dict[str, int] = {}
    for ev in monitor.get_events(limit=None):
        counts[ev["agent"]] = counts.get(ev["agent"], 0) + 1
    assert counts == {"parent": 50, "child": 30}
    report = monitor.verify()
    assert report.ok
    assert len(report.streams) == 2
    monitor.close()
