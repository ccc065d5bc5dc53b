"""The SQLite store: queries, kill state, one chain across processes, tamper evidence, retention.

Tamper tests edit the file behind the store's back with a plain ``sqlite3`` connection, the way
an attacker (or a careless operator) would, and assert what ``verify()`` reports: ``ok``, the
``damage`` kind and the exact ``first_bad_seq``. The fixture store has 20 events appended one per
batch with ``checkpoint_every=5``, so signed checkpoints (stored and anchored off-box) sit at
5, 10, 15 and 20.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline import AgentEvent, Monitor, parse_config
from redline.store.base import EventQuery, KillRecord
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


def test_append_assigns_consecutive_seqs_and_links(db_path: Path) -> None:
    """Batches get seq 1..n, each row's prev_hash is the previous row's hash."""
    store = SQLiteStore(db_path)
    store.append([event(i) for i in range(3)])
    store.append([event(i) for i in range(3, 5)])
    rows = list(store.query(EventQuery(order="asc")))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert [r.event.data["i"] for r in rows] == [0, 1, 2, 3, 4]
    store.close()


def test_query_filters_orders_and_limits(db_path: Path) -> None:
    """Filters by agent/session/type/time use the columns; newest first unless order=asc."""
    store = SQLiteStore(db_path)
    store.append([event(i, event_type="denial" if i % 5 == 0 else "action") for i in range(30)])
    newest = [r.event.data["i"] for r in store.query(EventQuery(agent="a0", limit=3))]
    assert newest == [27, 24, 21]
    oldest = [r.event.data["i"] for r in store.query(EventQuery(agent="a0", limit=3, order="asc"))]
    assert oldest == [0, 3, 6]
    assert store.count(EventQuery(session_id="s1")) == 15
    assert store.count(EventQuery(event_type="denial")) == 6
    window = EventQuery(since=1010.0, until=1019.0, order="asc")
    assert [r.event.data["i"] for r in store.query(window)] == list(range(10, 20))
    assert store.counts_by("agent", EventQuery()) == {"a0": 10, "a1": 10, "a2": 10}
    assert [r.seq for r in store.query(EventQuery(after_seq=27, order="asc"))] == [28, 29, 30]
    store.close()


def test_kill_state_is_seen_by_another_connection(db_path: Path) -> None:
    """put_kill/delete_kill commit at once; a second store on the file sees them via poll_kills."""
    one = SQLiteStore(db_path)
    two = SQLiteStore(db_path)
    assert two.poll_kills() is None
    rec = KillRecord(scope="agent", target="x", reason="r", actor="t", created_at=1.0)
    one.put_kill(rec)
    assert two.poll_kills() == [rec]
    assert two.poll_kills() is None  # nothing changed since
    one.append([event(1)])
    assert two.poll_kills() is None  # data changed, kill state did not
    one.delete_kill("agent", "x")
    assert two.poll_kills() == []
    assert one.load_kills() == []
    one.close()
    two.close()


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


def test_untouched_store_verifies(chained: Path) -> None:
    """The fixture store verifies: 20 rows, 4 stored checkpoints and 4 anchored ones."""
    report = verify(chained)
    assert report.ok
    assert (report.checked, report.checkpoints_checked, report.anchors_checked) == (20, 4, 4)
    assert (report.first_seq, report.last_seq) == (1, 20)


def test_edited_payload_is_detected(chained: Path) -> None:
    """Rewriting one row's payload is reported as ``edited`` at that row."""
    forged = canonical_payload(event(4, data={"i": 999}))
    tamper(chained, ("UPDATE events SET payload = ? WHERE seq = 5", (forged,)))
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_edited_indexed_column_is_detected(chained: Path) -> None:
    """Changing only the indexed ``agent`` column (payload intact) is ``edited`` at that row."""
    tamper(chained, ("UPDATE events SET agent = 'someone-else' WHERE seq = 5", ()))
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_edited_payload_with_recomputed_hashes_is_detected(chained: Path) -> None:
    """An edit with payload_sha256 and hash recomputed breaks the next row's link: edited at 5."""
    conn = sqlite3.connect(chained)
    prev = conn.execute("SELECT prev_hash FROM events WHERE seq = 5").fetchone()[0]
    forged = canonical_payload(event(4, data={"i": 999}))
    digest = hashlib.sha256(forged).hexdigest()
    with conn:
        conn.execute(
            "UPDATE events SET payload = ?, payload_sha256 = ?, hash = ? WHERE seq = 5",
            (forged, digest, chain_hash(5, prev, digest)),
        )
    conn.close()
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_deleted_row_is_detected(chained: Path) -> None:
    """Deleting row 7 is ``deleted`` at 7."""
    tamper(chained, ("DELETE FROM events WHERE seq = 7", ()))
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 7)


def test_deleted_row_with_renumbering_is_detected(chained: Path) -> None:
    """Deleting row 7 and renumbering the later rows down to close the gap is ``deleted`` at 7."""
    statements = [("DELETE FROM events WHERE seq = 7", ())]
    statements += [("UPDATE events SET seq = seq - 1 WHERE seq = ?", (s,)) for s in range(8, N + 1)]
    tamper(chained, *statements)
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 7)


def test_swapped_rows_are_reordered(chained: Path) -> None:
    """Swapping the whole contents of rows 6 and 7 is ``reordered`` at 6."""
    conn = sqlite3.connect(chained)
    r6 = conn.execute(f"SELECT {_COLS} FROM events WHERE seq = 6").fetchone()
    r7 = conn.execute(f"SELECT {_COLS} FROM events WHERE seq = 7").fetchone()
    conn.close()
    sets = ", ".join(f"{c.strip()} = ?" for c in _COLS.split(","))
    tamper(
        chained,
        (f"UPDATE events SET {sets} WHERE seq = 6", tuple(r7)),
        (f"UPDATE events SET {sets} WHERE seq = 7", tuple(r6)),
    )
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "reordered", 6)


def test_truncated_tail_is_caught_by_the_anchor_file(chained: Path) -> None:
    """Dropping rows 18-20 and the stored checkpoint at 20: the anchor file still says 20."""
    tamper(
        chained,
        ("DELETE FROM events WHERE seq > 17", ()),
        ("DELETE FROM checkpoints WHERE seq > 17", ()),
    )
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 18)


def test_truncated_tail_without_anchor_is_caught_by_stored_checkpoint(chained: Path) -> None:
    """With no anchor file, a stored checkpoint past the end still reveals the truncation."""
    tamper(chained, ("DELETE FROM events WHERE seq > 17", ()))
    store = SQLiteStore(chained)
    report = store.verify()
    store.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 18)


def test_rewritten_chain_is_caught_by_signed_checkpoints(chained: Path) -> None:
    """Recomputing every hash from row 8 links cleanly but fails the checkpoint at 10."""
    conn = sqlite3.connect(chained)
    with conn:
        rewrite_from(conn, 8)
    conn.close()
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 10)


def test_rewritten_chain_with_checkpoints_dropped_is_caught_by_anchors(chained: Path) -> None:
    """Rewriting from row 8 and deleting the stored checkpoints after it: the anchors catch it."""
    conn = sqlite3.connect(chained)
    with conn:
        rewrite_from(conn, 8)
        conn.execute("DELETE FROM checkpoints WHERE seq >= 8")
    conn.close()
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 10)
    assert "anchor" in report.detail


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


def test_one_forged_checkpoint_fails_against_the_stored_key(chained: Path) -> None:
    """One checkpoint signed by another key fails against the key in meta: ``rewritten`` at 15."""
    forger = Signer(Ed25519PrivateKey.generate())
    conn = sqlite3.connect(chained)
    stream, head, created = conn.execute(
        "SELECT stream, head_hash, created_at FROM checkpoints WHERE seq = 15"
    ).fetchone()
    conn.close()
    cp = forger.sign(stream, 15, head, created)
    tamper(
        chained,
        (
            "UPDATE checkpoints SET signature = ?, public_key = ? WHERE seq = 15",
            (cp.signature, cp.public_key),
        ),
    )
    report = verify(chained)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 15)


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


def test_prune_in_the_middle_leaves_tombstones_that_verify(db_path: Path) -> None:
    """Erasing rows 11-15 (security) leaves tombstones: hidden from queries, chain intact."""
    _retention_store(db_path)
    store = open_store(db_path)
    report = store.prune({"security": 5000.0})
    assert (report.erased, report.dropped_rows) == ({"security": 5}, 0)
    assert store.count(EventQuery(event_type="security")) == 0
    assert store.info()["erased"] == 5
    check = store.verify()
    assert check.ok, check.detail
    assert check.checked == 20
    store.close()


def test_prune_dry_run_changes_nothing(db_path: Path) -> None:
    """``dry_run`` reports what would be erased and leaves every table byte-for-byte as it was."""
    _retention_store(db_path)
    before = _snapshot(db_path)
    store = open_store(db_path)
    report = store.prune({"action": 5000.0, "security": 5000.0}, dry_run=True)
    store.close()
    assert report.dry_run
    assert report.erased == {"action": 10, "security": 5}
    assert report.dropped_rows == 0
    assert _snapshot(db_path) == before


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
    ["UPDATE events SET ts = ts + 1500 WHERE seq = 7",
     "UPDATE events SET ts = ts - 1500 WHERE seq = 7",
     "UPDATE events SET category = 'denial' WHERE seq = 7"],
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
