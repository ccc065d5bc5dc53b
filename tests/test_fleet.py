"""A fleet on PostgreSQL: many processes, one store, kills everywhere within 100 ms, no loss.

These tests run real processes against a real PostgreSQL: workers are ``python -c`` children
(each a ``Monitor`` on a ``PostgresStore``), kill latency is measured in the workers against a
timestamp the parent takes just before the kill (one machine, one clock), and the restart test
runs a throw-away cluster of its own (``initdb`` + ``pg_ctl``), never the shared server.

Each test uses a schema of its own in database ``test`` and drops it afterwards; they are skipped,
saying why, only when PostgreSQL (or, for the restart test, its server binaries) is unavailable.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import PG_DSN
from redline import AgentEvent, Monitor, parse_config
from redline.store.base import EventQuery

WORKERS = 4
# Kill/revive rounds: 4 workers x 60 = 240 delays, so the p99 is a percentile (the 238th of
# 240) rather than the single slowest sample on a shared 2-core machine.
ROUNDS = 60
MINUTE = 60.0


def open_store(schema: str, **kw: Any) -> Any:
    from redline.store.postgres import PostgresStore

    return PostgresStore(PG_DSN, schema=schema, **kw)


def terminate(pid: int) -> None:
    """``pg_terminate_backend(pid)`` from a separate admin connection."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


# --- kill propagation across processes -------------------------------------------------------

_WORKER = """
import sys, time
from redline import AgentKilledError, Monitor, parse_config
from redline.store.postgres import PostgresStore

store = PostgresStore(sys.argv[1], schema=sys.argv[2], auto_upgrade=False)
monitor = Monitor(parse_config({"kill_switch": {"poll_interval_seconds": 0.02}}), store=store)
deadline = time.monotonic() + 20
while store.listener_pid is None and time.monotonic() < deadline:
    time.sleep(0.01)
print("READY", store.listener_pid, flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "pid":
        print("PID", store.listener_pid, flush=True)
        continue
    want, started, limit = cmd[0] == "1", float(cmd[1]), float(cmd[2])
    end = time.monotonic() + limit
    while monitor.is_killed("x") != want and time.monotonic() < end:
        try:
            monitor.check("x")
        except AgentKilledError:
            pass
        time.sleep(0.0005)  # an agent between two tool calls, not a CPU hog
    seen = monitor.is_killed("x") == want
    print("SEEN" if seen else "MISSED", time.time() - started, flush=True)
monitor.close()
"""


def _round(children: list[Any], monitor: Monitor, kill: bool, limit: float) -> list[float]:
    """Kill (or revive) ``x`` once; every worker reports how long until it saw the change."""
    started = time.time()
    if kill:
        monitor.kill_agent("x", reason="test")
    else:
        assert monitor.revive(agent="x")
    for child in children:
        child.send(f"{int(kill)} {started!r} {limit}")
    delays = []
    for n, child in enumerate(children):
        word, delay = child.readline(timeout=limit + 30).split()
        assert word == "SEEN", f"worker {n} never saw the change ({delay} s)"
        delays.append(float(delay))
    return delays


@pytest.mark.slow
def test_a_kill_reaches_four_worker_processes_within_100ms_p99(
    pg_schema: str, spawn: Callable[..., Any]
) -> None:
    """Kill/revive alternately; four worker processes each see every change < 100 ms (p99).

    Then one worker's LISTEN connection is terminated server-side: it still sees the next kill
    within the re-read bound (2 s), because a lost listener reconnects and re-reads the table.
    """
    store = open_store(pg_schema)
    monitor = Monitor(parse_config({"kill_switch": {"poll_interval_seconds": 0.02}}), store=store)
    children = [spawn(_WORKER, PG_DSN, pg_schema) for _ in range(WORKERS)]
    pids = [int(child.expect("READY", timeout=60).split()[1]) for child in children]
    assert len(set(pids)) == WORKERS
    delays: list[float] = []
    for trial in range(ROUNDS):
        delays += _round(children, monitor, kill=trial % 2 == 0, limit=5.0)
    summary = (
        f"{len(delays)} samples: p50 {statistics.median(delays) * 1e3:.1f} ms, "
        f"p99 {p99(delays) * 1e3:.1f} ms, max {max(delays) * 1e3:.1f} ms"
    )
    assert p99(delays) < 0.100, summary

    # A worker whose listener dies misses the NOTIFY, and must still converge.
    terminate(pids[0])
    late = _round(children, monitor, kill=True, limit=5.0)
    assert late[0] < store.reread_interval + 0.5, f"the worker took {late[0]:.3f} s"
    children[0].send("pid")
    new_pid = int(children[0].expect("PID").split()[1])
    assert new_pid != pids[0]
    monitor.close()
    for child in children:
        child.wait()


_APPENDER = """
import sys
from redline.events import AgentEvent
from redline.store.postgres import PostgresStore
store = PostgresStore(sys.argv[1], schema=sys.argv[2], checkpoint_every=500, auto_upgrade=False)
name = sys.argv[3]
print("READY", flush=True)
sys.stdin.readline()
for start in range(0, 2000, 100):
    store.append([AgentEvent(agent=name, data={"i": i}) for i in range(start, start + 100)])
store.close()
print("DONE", store.stream, flush=True)
"""


@pytest.mark.slow
def test_processes_append_concurrently_to_their_own_streams(
    pg_schema: str, spawn: Callable[..., Any]
) -> None:
    """Three processes append 2,000 events each at once: three streams that each verify."""
    open_store(pg_schema).close()
    children = [spawn(_APPENDER, PG_DSN, pg_schema, f"p{n}") for n in range(3)]
    for child in children:
        child.expect("READY")
    for child in children:
        child.send("go")
    streams = [child.expect("DONE", timeout=120).split()[1] for child in children]
    for child in children:
        child.wait()
    store = open_store(pg_schema)
    report = store.verify()
    assert report.ok, report.detail
    assert sorted(r.stream for r in report.streams) == sorted(streams)
    assert [(r.first_seq, r.last_seq) for r in report.streams] == [(1, 2000)] * 3
    assert all(r.checkpoints_checked >= 4 for r in report.streams)
    for n in range(3):
        seen = [r.event.data["i"] for r in store.query(EventQuery(agent=f"p{n}", order="asc"))]
        assert seen == list(range(2000))
    store.close()


# --- fleet metrics and leadership ------------------------------------------------------------


def test_fleet_snapshot_sums_every_writer_by_agent(pg_schema: str) -> None:
    """Two writers' batches roll up per agent and minute; the snapshot window drops old minutes."""
    now = 1_800_000_000.0
    one, two = open_store(pg_schema), open_store(pg_schema)
    one.append(
        [
            AgentEvent(timestamp=now - 30, agent="a", cost_usd=0.5, latency_ms=100.0, tokens_in=10),
            AgentEvent(timestamp=now - 20, agent="a", event_type="denial"),
            AgentEvent(timestamp=now - 20, agent="b", event_type="error"),
            AgentEvent(timestamp=now - 3600, agent="a", cost_usd=100.0),  # outside the window
        ]
    )
    two.append(
        [
            AgentEvent(timestamp=now - 10, agent="a", cost_usd=0.25, latency_ms=300.0),
            AgentEvent(timestamp=now - 70, agent="b", event_type="llm_call", tokens_out=7),
        ]
    )
    snap = two.fleet_snapshot(window_seconds=300, now=now)
    by = {row.agent: row for row in snap.agents}
    assert (by["a"].events, by["a"].actions, by["a"].denials) == (3, 2, 1)
    assert by["a"].cost == pytest.approx(0.75)
    assert by["a"].avg_latency_ms == pytest.approx(200.0)
    assert by["a"].denial_rate == pytest.approx(1 / 3)
    assert (by["b"].events, by["b"].errors, by["b"].llm_calls, by["b"].tokens_out) == (2, 1, 1, 7)
    assert (snap.totals.agent, snap.totals.events, snap.totals.tokens_in) == ("*", 5, 10)
    assert snap.totals.cost_per_minute == pytest.approx(0.75 / 5)
    assert two.fleet_snapshot(window_seconds=7200, now=now).totals.events == 6
    one.close()
    two.close()


def test_one_process_leads_and_leadership_moves_on(pg_schema: str) -> None:
    """``try_lead`` elects one holder; resigning or losing the connection frees it for another."""
    one, two = open_store(pg_schema), open_store(pg_schema)
    assert one.try_lead("budget")
    assert not two.try_lead("budget")
    assert one.try_lead("budget")  # still the leader (asking again takes nothing more)
    assert two.try_lead("other")  # names are independent
    one.resign("budget")
    assert two.try_lead("budget")
    assert not one.try_lead("budget")
    assert two._lead_conn is not None
    terminate(two._lead_conn.info.backend_pid)  # the leader's session dies: the lock goes too
    deadline = time.monotonic() + 5.0
    while not one.try_lead("budget") and time.monotonic() < deadline:
        time.sleep(0.01)  # the backend exits (and unlocks) asynchronously
    assert one.try_lead("budget")
    assert not two.try_lead("budget")
    one.close()
    two.close()


# --- surviving a PostgreSQL restart ----------------------------------------------------------


class ThrowAwayCluster:
    """A private PostgreSQL cluster in a temp dir (initdb, pg_ctl), as root via ``runuser``."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = bins[-1] if bins else shutil.which("initdb")
        if initdb is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(initdb).parent
        self.prefix: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="redline-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root and runuser is missing: initdb refuses to run as root")
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run initdb as")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.prefix = [runuser, "-u", "postgres", "--"]
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dsn = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self.prefix, *args], check=False, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[ThrowAwayCluster]:
    """A running throw-away cluster on a free port; stopped and deleted afterwards."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (redline[postgres])")
    made = ThrowAwayCluster()
    try:
        made.start()
        yield made
    finally:
        made.destroy()


@pytest.mark.slow
def test_the_writer_survives_a_postgres_restart_without_losing_events(
    cluster: ThrowAwayCluster,
) -> None:
    """Record throughout a stop/start of PostgreSQL: every event is stored once; verify passes."""
    from redline.store.postgres import PostgresStore

    store = PostgresStore(cluster.dsn, checkpoint_every=500, connect_timeout=2)
    config = parse_config({"storage": {"flush_interval_seconds": 0.05, "batch_size": 200}})
    monitor = Monitor(config, store=store)
    stop = threading.Event()
    recorded = [0]

    def record() -> None:
        while not stop.is_set():
            monitor.record(AgentEvent(agent="w", data={"i": recorded[0]}))
            recorded[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=record)
    thread.start()
    try:
        time.sleep(1.0)
        cluster.stop()
        down_from = recorded[0]
        time.sleep(1.5)
        down_to = recorded[0]
        cluster.start()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    assert down_to - down_from > 100, "too few events were recorded during the outage"
    assert monitor.flush(timeout=60), "the writer did not catch up after the restart"
    total = recorded[0]
    seen = [r.event.data["i"] for r in store.query(EventQuery(agent="w", order="asc"))]
    assert sorted(seen) == list(range(total))  # none lost, none twice
    assert store.info()["reconnects"] >= 1
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == total
    monitor.close()
