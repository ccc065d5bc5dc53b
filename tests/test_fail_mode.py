"""``kill_switch.fail_mode``, kills during a store outage, and ``redline db upgrade``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from redline import AgentKilledError, Monitor, parse_config
from redline.exceptions import StoreError
from redline.store.base import KillRecord
from redline.store.memory import MemoryStore


class AgingStore(MemoryStore):
    """A memory store that reports how old its kill state is, as a shared store does."""

    def __init__(self) -> None:
        super().__init__()
        self.age = 0.0

    def kill_state_age(self) -> float:
        return self.age


class DownStore(MemoryStore):
    """A memory store whose kill table is unreachable until ``up`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False

    def put_kill(self, record: KillRecord) -> None:
        if not self.up:
            raise StoreError("connection refused")
        super().put_kill(record)


def test_fail_closed_stops_agents_once_the_kill_state_is_stale() -> None:
    """With ``fail_mode: closed``, a kill state older than the bound makes ``check()`` raise."""
    store = AgingStore()
    config = parse_config({"kill_switch": {"fail_mode": "closed", "stale_after_seconds": 10}})
    with Monitor(config, store=store) as m:
        m.check("a")
        store.age = 11.0
        with pytest.raises(AgentKilledError) as info:
            m.check("a")
        assert info.value.scope == "global"
        assert "fail_mode: closed" in info.value.reason
        assert m.is_killed("a")


def test_fail_open_keeps_agents_running_on_a_stale_state() -> None:
    """The default ``fail_mode: open`` lets agents run when the kill state cannot refresh."""
    store = AgingStore()
    store.age = 3600.0
    with Monitor(store=store) as m:
        m.check("a")
        assert not m.is_killed("a")


def test_a_kill_during_a_store_outage_applies_locally_and_persists_later() -> None:
    """A kill is never lost to an outage: it stops the agent now and reaches the store later."""
    store = DownStore()
    with Monitor(store=store) as m:
        m.kill_agent("a", reason="spike")
        assert m.is_killed("a")
        assert store.load_kills() == []
        store.up = True
        m._kills.retry_persist()
        assert [k.target for k in store.load_kills()] == ["a"]


def test_bad_fail_mode_is_a_config_error() -> None:
    """Only ``open`` and ``closed`` are fail modes."""
    from redline import ConfigError

    with pytest.raises(ConfigError, match=r"kill_switch.fail_mode"):
        parse_config({"kill_switch": {"fail_mode": "sometimes"}})


def test_fail_closed_works_on_sqlite(tmp_path: pytest.TempPathFactory) -> None:
    """On SQLite the kill state has an age too: fresh after a read, and once older than the
    bound (the file unreadable, the poller stuck) ``check()`` fails closed."""
    from pathlib import Path

    db = Path(str(tmp_path)) / "events.db"
    config = parse_config({
        "storage": {"path": str(db)},
        "kill_switch": {"fail_mode": "closed", "stale_after_seconds": 60,
                        "poll_interval_seconds": 30.0},
    })
    with Monitor(config) as m:
        m.check("a")  # read at start: fresh
        age = m.store.kill_state_age()  # type: ignore[attr-defined]
        assert 0 <= age < 60
        m.store._last_read_mono -= 120  # type: ignore[attr-defined]  # no read for 2 minutes
        with pytest.raises(AgentKilledError, match="fail_mode: closed"):
            m.check("a")
        m.run_duties()  # a successful poll makes it fresh again
        m.check("a")


@pytest.mark.parametrize(
    ("section", "key"),
    [({"storage": {"path": "x.jsonl"}, "kill_switch": {"fail_mode": "closed"}},
      "kill_switch.fail_mode"),
     ({"storage": {"backend": "memory"}, "kill_switch": {"fail_mode": "closed"}},
      "kill_switch.fail_mode"),
     ({"kill_switch": {"fail_mode": "closed", "stale_after_seconds": 2,
                       "reread_interval_seconds": 2}}, "kill_switch.stale_after_seconds")],
)
def test_fail_closed_settings_that_cannot_work_are_config_errors(
    section: dict[str, object], key: str
) -> None:
    """``closed`` without shared kill state, or a staleness bound at or below the re-read
    interval (which fails closed on a healthy store), is refused at load."""
    from redline import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(section)


@pytest.fixture
def pg_dsn() -> str:
    psycopg = pytest.importorskip("psycopg")
    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL is not reachable at {dsn}: {exc}")
    return dsn


def test_db_upgrade_creates_then_finds_the_schema_up_to_date(pg_dsn: str) -> None:
    """``redline db upgrade`` applies the migrations once; a second run applies none."""
    import psycopg

    schema = f"rl_test_{uuid.uuid4().hex[:10]}"
    cmd = [
        sys.executable,
        "-m",
        "redline.cli",
        "db",
        "upgrade",
        "--dsn",
        pg_dsn,
        "--schema",
        schema,
        "--json",
    ]
    try:
        first = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["applied"]
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert json.loads(second.stdout)["applied"] == []
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
