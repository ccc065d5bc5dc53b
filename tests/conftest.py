"""Shared fixtures: temporary stores, a manual clock, and child Python processes to talk to."""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import redline
from redline._compiled import compiled_modules
from redline.testing import ManualClock

_SRC = Path(redline.__file__).resolve().parent


def pytest_report_header() -> str:
    """Say which build is under test: the compiled per-event path or pure Python."""
    modules = compiled_modules()
    return f"redline: {'compiled: ' + ', '.join(modules) if modules else 'pure Python'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled module older than its source (run ``make compiled``)."""
    del session
    for name in compiled_modules():
        module = sys.modules[name]
        source = _SRC.joinpath(*name.split(".")[1:]).with_suffix(".py")
        if source.is_file() and source.stat().st_mtime > Path(str(module.__file__)).stat().st_mtime:
            pytest.exit(
                f"{name} is compiled from an older {source.name}: run `make compiled` "
                "(or REDLINE_PURE_PYTHON=1 to test the source)",
                returncode=2,
            )


# End-to-end modules: real subprocesses, browsers, PostgreSQL clusters, frameworks. `make test`
# and CI run them; `make test-fast` (the inner loop, under a minute) leaves them out.
_END_TO_END = frozenset(
    {
        "test_budgets",
        "test_cli",
        "test_cli_alerts",
        "test_dashboard",
        "test_demo",
        "test_durability",
        "test_fail_mode",
        "test_fleet",
        "test_fleet_policies",
        "test_fork",
        "test_kill_propagation",
        "test_pg_outage",
        "test_server_auth",
        "test_store_postgres",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the end-to-end modules (and every framework integration test) ``e2e``."""
    for item in items:
        path = Path(str(item.fspath))
        if path.stem in _END_TO_END or path.parent.name in ("integrations", "contract"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock that moves only when the test advances it."""
    return ManualClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite store path inside the test's temp dir (not created yet)."""
    return tmp_path / "events.db"


@pytest.fixture
def sql_count(db_path: Path) -> Callable[..., int]:
    """``sql_count(where="1", params=())``: rows in ``events``, read on a separate connection."""

    def count(where: str = "1", params: tuple[Any, ...] = (), path: Path | None = None) -> int:
        target = path if path is not None else db_path
        if not target.exists():
            return 0
        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30.0)
        try:
            return int(
                conn.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()[0]
            )
        except sqlite3.OperationalError as exc:  # the table does not exist yet
            if "no such table" in str(exc):
                return 0
            raise
        finally:
            conn.close()

    return count


class Child:
    """A Python child process with line-oriented stdin/stdout and deadline-bounded reads."""

    def __init__(self, script: str, args: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""
        self.lines: list[str] = []

    def readline(self, timeout: float = 30.0) -> str:
        """The next line of stdout (without the newline); fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"no line from the child within {timeout}s")
            if not self._selector.select(left):
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                self._fail("the child closed its stdout")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return text

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Read lines until one starts with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(0.001, deadline - time.monotonic()))
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` and reap the child; returns its exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def wait(self, timeout: float = 60.0) -> int:
        """Close stdin and wait for a clean exit; fails the test with stderr on error."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        code = self.proc.wait(timeout=timeout)
        if code != 0:
            self._fail(f"the child exited with {code}")
        return code

    def stderr(self) -> str:
        """Whatever the child wrote to stderr (only once it has exited)."""
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def _fail(self, why: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        pytest.fail(f"{why}; stdout so far: {self.lines[-5:]!r}; stderr: {self.stderr()[-3000:]}")

    def close(self) -> None:
        """Kill the child if it still runs and release its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._selector.close()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """``spawn(script, *args)``: start ``python -c script args...``; killed at teardown."""
    children: list[Child] = []

    def start(script: str, *args: str, cwd: Path | None = None) -> Child:
        child = Child(script, list(args), cwd)
        children.append(child)
        return child

    yield start
    for child in children:
        child.close()


#: The PostgreSQL the fleet tests use (this machine's, database ``test``); override by env.
PG_DSN = os.environ.get("REDLINE_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema name in database ``test``; dropped (with everything in it) afterwards."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (redline[postgres])")
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable at {PG_DSN!r}: {exc}")
    name = f"redline_test_{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        admin.execute("SET lock_timeout = '20s'")
        admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        admin.close()
