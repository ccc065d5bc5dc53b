"""The SQLite store: queries, kill state, one chain across processes, tamper evidence, retention.

Tamper tests edit the file behind the store's back with a plain ``sqlite3`` connection, the way
an attacker (or a careless operator) would, and assert what ``verify()`` reports: ``ok``, the
``damage`` kind and the exact ``first_bad_seq``. The fixture store has 20 events appended one per
batch with ``checkpoint_every=5``, so signed checkpoints (stored and anchored off-box) sit at
5, 10, 15 and 20.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline import AgentEvent, Monitor, parse_config
from redline.store.base import EventQuery
from redline.store.chain import Signer, canonical_payload, chain_hash, load_anchors
from redline.store.sqlite import SQLiteStore
from redline.testing import ManualClock

N = 20
_COLS = (
    "ts, agent, event_type, category, session_id, user, payload, payload_sha256, prev_hash, hash"
)


def event(i: int, **fields: Any) -> AgentEvent:
    base: dict[str, Any] = {
        "timestamp": 1000.0 + i,
        "agent": f"a{i % 3}",
        "session_id": f"s{i % 2}",
        "data": {"i": i},
    }
    base.update(fields)
    return AgentEvent(**base)


def open_store(path: Path, **kw: Any) -> SQLiteStore:
    kw.setdefault("anchor_path", f"{path}.anchor")
    kw.setdefault("checkpoint_every", 5)
    return SQLiteStore(path, **kw)


@pytest.fixture
def chained(db_path: Path) -> Path:
    """A closed store of 20 events, checkpoints (stored and anchored) at 5, 10, 15, 20."""
    store = open_store(db_path)
    for i in range(N):
        store.append([event(i)])
    store.close()
    assert [c.seq for c in load_anchors(f"{db_path}.anchor")] == [5, 10, 15, 20]
    return db_path


def tamper(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def verify(path: Path, **kw: Any) -> Any:
    store = open_store(path)
    try:
        return store.verify(**kw)
    finally:
        store.close()


def rewrite_from(conn: sqlite3.Connection, k: int) -> None:
    """Change row ``k``'s content and recompute every hash from ``k`` on (a consistent forgery)."""
    prev = conn.execute("SELECT prev_hash FROM events WHERE seq = ?", (k,)).fetchone()[0]
    rows = conn.execute("SELECT seq, payload FROM events WHERE seq >= ? ORDER BY seq", (k,))
    for seq, stored in rows.fetchall():
        payload = canonical_payload(event(seq - 1, data={"i": -1})) if seq == k else stored
        digest = hashlib.sha256(payload).hexdigest()
        h = chain_hash(seq, prev, digest)
        conn.execute(
            "UPDATE events SET payload = ?, payload_sha256 = ?, prev_hash = ?, hash = ? "
            "WHERE seq = ?",
            (payload, digest, prev, h, seq),
        )
        prev = h


# --- basics -------------------------------------------------------------------------------


_APPEND_CHILD = """
import sys
from redline.events import AgentEvent
from redline.store.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1], checkpoint_every=500)
name = sys.argv[2]
print("READY", flush=True)
sys.stdin.readline()
for start in range(0, 2000, 50):
    store.append([AgentEvent(timestamp=1.0, agent=name, data={"i": i}) for i in range(start, start + 50)])
store.close()
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_two_processes_append_to_one_chain(db_path: Path, spawn: Callable[..., Any]) -> None:
    """Two processes appending 2,000 events each to one file leave one valid chain of 4,000."""
    SQLiteStore(db_path).close()
    children = [spawn(_APPEND_CHILD, str(db_path), name) for name in ("p1", "p2")]
    for child in children:
        child.expect("READY")
    for child in children:
        child.send("go")
    for child in children:
        child.expect("DONE", timeout=120)
        child.wait()
    store = SQLiteStore(db_path)
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == 4000
    assert store.counts_by("agent", EventQuery()) == {"p1": 2000, "p2": 2000}
    for name in ("p1", "p2"):
        seen = [r.event.data["i"] for r in store.query(EventQuery(agent=name, order="asc"))]
        assert seen == list(range(2000))
    store.close()


# --- tamper evidence ----------------------------------------------------------------------


def test_checkpoints_resigned_by_another_key_fail_when_the_key_is_pinned(chained: Path) -> None:
    """Rewritten from row 8 and re-signed with a forger's key: fails ``verify(public_key=real)``."""
    # The forger also records their key in meta, so only pinning the real key catches it.
    real_key = SQLiteStore(chained).signer.public_key
    forger = Signer(Ed25519PrivateKey.generate())
    conn = sqlite3.connect(chained)
    with conn:
        rewrite_from(conn, 8)
        for seq, stream, created in conn.execute(
            "SELECT seq, stream, created_at FROM checkpoints"
        ).fetchall():
            head = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()[0]
            cp = forger.sign(stream, seq, head, created)
            conn.execute(
                "UPDATE checkpoints SET head_hash = ?, signature = ?, public_key = ? WHERE seq = ?",
                (head, cp.signature, cp.public_key, seq),
            )
        conn.execute("UPDATE meta SET value = ? WHERE key = 'public_key'", (forger.public_key,))
    conn.close()
    store = SQLiteStore(chained)  # no anchor file: the forger controls everything on the box
    assert store.verify().ok  # why an auditor pins the key
    report = store.verify(public_key=real_key)
    store.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 5)


# --- retention ----------------------------------------------------------------------------


def _retention_store(path: Path) -> None:
    """Rows 1-10 old actions, 11-15 old security events, 16-20 recent actions."""
    store = open_store(path)
    for i in range(N):
        if i < 10:
            ev = event(i, event_type="action")
        elif i < 15:
            ev = event(i, event_type="security")
        else:
            ev = event(i, event_type="action", timestamp=1_000_000.0 + i)
        store.append([ev])
    store.close()


def _snapshot(path: Path) -> tuple[Any, ...]:
    conn = sqlite3.connect(path)
    try:
        return tuple(
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("events", "checkpoints", "meta")
        )
    finally:
        conn.close()


def test_prune_keeps_verification_passing(db_path: Path) -> None:
    """Prune tombstones old actions, folds rows 1-10 into the anchor, and the chain still verifies."""
    _retention_store(db_path)
    store = open_store(db_path)
    report = store.prune({"action": 5000.0})
    assert report.erased == {"action": 10}
    assert (report.dropped_rows, report.anchor_seq) == (10, 10)
    check = store.verify()
    assert check.ok, check.detail
    assert (check.first_seq, check.last_seq, check.checked) == (11, 20, 10)
    assert store.count(EventQuery()) == 10
    store.append([event(99)])
    store.close()
    again = verify(db_path)
    assert again.ok, again.detail
    assert again.last_seq == 21


def test_retention_per_category_with_a_manual_clock(db_path: Path) -> None:
    """40 days on, ``Monitor.prune()`` erases actions (30 d) and keeps security events (730 d)."""
    clock = ManualClock()
    config = parse_config(
        {
            "storage": {
                "path": str(db_path),
                "anchor_path": f"{db_path}.anchor",
                "checkpoint_every": 5,
            },
            "retention": {"action": 30, "security": 730},
        }
    )
    monitor = Monitor(config, clock=clock)
    start = clock.time()
    for i in range(5):
        monitor.record(AgentEvent(timestamp=start, agent="a", event_type="action", data={"i": i}))
        monitor.record(AgentEvent(timestamp=start, agent="a", event_type="security", data={"i": i}))
    monitor.flush()
    clock.advance(40 * 86_400)
    monitor.record(
        AgentEvent(timestamp=clock.time(), agent="a", event_type="action", data={"new": 1})
    )
    report = monitor.prune()
    assert report.erased["action"] == 5
    assert report.erased["security"] == 0
    actions = monitor.get_events(event_type="action", limit=None)
    assert [e["data"] for e in actions] == [{"new": 1}]
    assert len(monitor.get_events(event_type="security", limit=None)) == 5
    assert monitor.verify().ok
    monitor.close()


def test_dry_run_through_a_monitor_signs_nothing(db_path: Path) -> None:
    """A Monitor opened only to dry-run a prune (as the CLI does) leaves the file unchanged."""
    writer = SQLiteStore(db_path, checkpoint_every=1_000_000)
    writer.append([event(i) for i in range(10)])  # a live writer: its head is not signed yet
    before = _snapshot(db_path)
    monitor = Monitor(parse_config({"storage": {"path": str(db_path)}}))
    report = monitor.prune(dry_run=True, now=1_000_000_000.0)
    monitor.close()
    assert report.erased["action"] == 10
    assert _snapshot(db_path) == before
    writer.close()


# --- protection that is configured and absent, and indexed columns -------------------------


def test_a_deleted_anchor_file_is_a_failure(chained: Path) -> None:
    """The anchor file was configured and is gone while checkpoints exist: not OK."""
    Path(f"{chained}.anchor").unlink()
    report = verify(chained)
    assert (report.ok, report.damage) == (False, "anchor_missing")


def test_unreadable_anchor_lines_are_a_failure(chained: Path) -> None:
    """A garbled anchor line (the one that would convict a forger) fails verification."""
    anchor = Path(f"{chained}.anchor")
    lines = anchor.read_bytes().splitlines()
    lines[-1] = b'{"seq": 20, "head_hash": garbled'
    anchor.write_bytes(b"\n".join(lines) + b"\n")
    report = verify(chained)
    assert (report.ok, report.damage) == (False, "anchor_unreadable")
    assert "line(s) 4" in report.detail


def test_every_checkpoint_deleted_after_a_rewrite_fails_with_a_pinned_key(chained: Path) -> None:
    """A consistent rewrite with every checkpoint and the anchor file gone: with the auditor's
    key pinned, nothing vouches for the rows, so it is ``unprotected``, not OK."""
    real_key = SQLiteStore(chained).signer.public_key
    conn = sqlite3.connect(chained)
    with conn:
        rewrite_from(conn, 1)
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    Path(f"{chained}.anchor").unlink()
    store = SQLiteStore(chained)
    try:
        report = store.verify(public_key=real_key)
    finally:
        store.close()
    assert (report.ok, report.damage) == (False, "unprotected")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET ts = ts + 1500 WHERE seq = 7",
        "UPDATE events SET ts = ts - 1500 WHERE seq = 7",
        "UPDATE events SET category = 'denial' WHERE seq = 7",
    ],
    ids=["ts+1500", "ts-1500", "category"],
)
def test_indexed_columns_a_reader_trusts_are_covered(db_path: Path, statement: str) -> None:
    """Shifting ``ts`` of a real (epoch) time (queries, export windows and retention read it)
    or relabelling ``category`` is caught as an edit of that row."""
    store = open_store(db_path)
    for i in range(10):
        store.append([event(i, timestamp=1_764_000_000.0 + i)])
    store.close()
    tamper(db_path, (statement, ()))
    report = verify(db_path)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 7)
