"""A writer signs only heads it can vouch for, so a checkpoint never launders a forged chain."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from redline.events import AgentEvent
from redline.store.base import EventQuery
from redline.store.chain import chain_hash
from redline.store.sqlite import SQLiteStore


def _events(n: int, start: int = 0) -> list[AgentEvent]:
    return [AgentEvent(timestamp=1_700_000_000.0 + i, agent="a", data={"i": i})
            for i in range(start, start + n)]


def _rewrite_from(path: Path, first: int) -> None:
    """Edit row ``first`` and recompute every hash after it, as a careful forger would."""
    con = sqlite3.connect(path)
    rows = con.execute(
        "SELECT seq, payload FROM events WHERE seq >= ? ORDER BY seq", (first,)
    ).fetchall()
    prev = con.execute("SELECT hash FROM events WHERE seq = ?", (first - 1,)).fetchone()[0]
    for seq, original in rows:
        payload = original.replace(b'"i":', b'"i":9') if seq == first else original
        digest = hashlib.sha256(payload).hexdigest()
        h = chain_hash(seq, prev, digest)
        con.execute(
            "UPDATE events SET payload = ?, payload_sha256 = ?, prev_hash = ?, hash = ? "
            "WHERE seq = ?",
            (payload, digest, prev, h, seq),
        )
        prev = h
    con.commit()
    con.close()


def test_a_writer_refuses_to_sign_over_a_rewritten_chain(tmp_path: Path) -> None:
    """After rows since the last checkpoint are forged, the next checkpoint is refused."""
    path = tmp_path / "e.db"
    store = SQLiteStore(path, checkpoint_every=10)
    store.append(_events(10))
    store.append(_events(5, 10))
    store.close()
    _rewrite_from(path, 12)

    second = SQLiteStore(path, checkpoint_every=10)
    second.append(_events(10, 15))
    assert second.integrity_alarms == 1
    assert [c.seq for c in second.checkpoints()] == [10, 15]
    second.close()
    report = SQLiteStore(path).verify()
    assert not report.ok
    assert report.first_bad_seq == 15


def test_a_store_that_only_reads_signs_nothing(tmp_path: Path) -> None:
    """Opening and closing a store without appending adds no checkpoint."""
    path = tmp_path / "e.db"
    store = SQLiteStore(path, checkpoint_every=1000)
    store.append(_events(3))
    store.close()
    before = SQLiteStore(path).checkpoints()
    reader = SQLiteStore(path)
    list(reader.query(EventQuery()))
    reader.close()
    assert SQLiteStore(path).checkpoints() == before
