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
from typing import Any

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


# -- the remote client and span export, forked ----------------------------------------------------


def _fork_and_report(body: Any) -> str:
    """Fork; the child runs ``body()`` and writes its string result back. No atexit in the child."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        try:
            answer = str(body())
        except BaseException as exc:
            answer = f"child failed: {exc!r}"
        os.write(write_fd, answer.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_a_remote_monitor_forked_with_a_queue_sends_each_event_once(tmp_path: Path) -> None:
    """Events the parent had queued at the fork reach the server once; the child's own too."""
    pytest.importorskip("starlette")
    from redline.client import RemoteMonitor
    from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

    token = "fork-ingest-0123456789abcdef"
    monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / "server.db")}}))
    config = ServerConfig(port=0, tokens=[TokenConfig(name="i", role="ingest", token=token)],
                          rate_limit_per_minute=100_000)  # fmt: skip
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    try:
        client = RemoteMonitor(server.url, token, batch_size=10_000, flush_interval=3600)
        for i in range(50):
            client.record(AgentEvent(agent="parent", data={"i": i}))
        assert client.stats()["queued"] == 50

        def child() -> str:
            for i in range(30):
                client.record(AgentEvent(agent="child", data={"i": i}))
            ok = client.flush(30)
            stats = client.stats()
            client.close()
            return f"{ok} {stats['sent']}"

        assert _fork_and_report(child) == "True 30"
        assert client.flush(30)
        assert client.stats()["sent"] == 50
        client.close()
        assert monitor.flush(10)
        counts: dict[str, int] = {}
        for ev in monitor.get_events(limit=None):
            counts[ev["agent"]] = counts.get(ev["agent"], 0) + 1
        assert counts == {"parent": 50, "child": 30}
    finally:
        server.stop()
        monitor.close()


def test_a_span_exporter_forked_with_a_queue_exports_each_span_once() -> None:
    """The parent's queued events become spans in the parent only; the child's in the child."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from redline.export.otel import OTelSpanSink
    from redline.export.spans import BusSpanExporter

    spans_out = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans_out))
    monitor = Monitor()
    bus = BusSpanExporter(monitor, OTelSpanSink(provider), interval=3600)
    for i in range(5):
        monitor.record(AgentEvent(agent="a", event_type="tool_call", tool=f"parent{i}"))
    assert bus.queued == 5

    def child() -> str:
        for i in range(3):
            monitor.record(AgentEvent(agent="a", event_type="tool_call", tool=f"child{i}"))
        assert bus.force_flush(10)
        return ",".join(sorted(s.name for s in spans_out.get_finished_spans()))

    assert _fork_and_report(child) == ",".join(f"execute_tool child{i}" for i in range(3))
    assert bus.force_flush(10)
    names = sorted(s.name for s in spans_out.get_finished_spans())
    assert names == [f"execute_tool parent{i}" for i in range(5)]
    bus.shutdown()
    monitor.close()
