"""``Monitor.batch()``: one commit for the synchronous types of many events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from redline import AgentEvent, Monitor, parse_config


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
