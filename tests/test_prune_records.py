"""Signed prune records: verify accepts a shortened chain or a tombstone only where one accounts
for it (issue 13, "verify must not say OK on tampered data").

Attacks edit a real SQLite file behind the store's back with a plain ``sqlite3`` connection, as in
``tests/test_store_sqlite.py``, and leave the off-box anchor file untouched unless a test says so.
Honest prunes go through :meth:`SQLiteStore.prune` and must still verify, with the auditor's key
pinned, and report what was erased and why.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline import AgentEvent
from redline.store.chain import GENESIS, Signer, load_anchors
from redline.store.prune_records import PruneRecord, ranges_of, record_digest, sign_record
from redline.store.sqlite import SQLiteStore

OLD = 1_000.0  # "long ago": every cutoff below is later
FRESH = 1_900_000_000.0  # after every cutoff below
CUTOFF = 5_000.0


def event(i: int, *, ts: float = OLD, kind: str = "action") -> AgentEvent:
    return AgentEvent(
        timestamp=ts + i, agent=f"a{i % 3}", event_type=kind, user=f"u{i % 2}", data={"i": i}
    )


def open_store(path: Path, **kw: Any) -> SQLiteStore:
    kw.setdefault("anchor_path", f"{path}.anchor")
    kw.setdefault("checkpoint_every", 10)
    kw.setdefault("retention_days", {"action": 30, "decision": 90})
    return SQLiteStore(path, **kw)


def write(path: Path, events: list[AgentEvent], **kw: Any) -> str:
    """Append ``events`` one per batch (a checkpoint every 10 rows) and close; the signer's key."""
    store = open_store(path, **kw)
    for e in events:
        store.append([e])
    key = store.signer.public_key
    store.close()
    return key


def verify(path: Path, **kw: Any) -> Any:
    store = open_store(path)
    try:
        return store.verify(**kw)
    finally:
        store.close()


def prune(path: Path, cutoffs: dict[str, float], **kw: Any) -> Any:
    store = open_store(path)
    try:
        return store.prune(cutoffs, **kw)
    finally:
        store.close()


def sql(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for statement, params in statements:
            conn.execute(statement, params)
    conn.close()


def one(path: Path, query: str, params: tuple[Any, ...] = ()) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchone()
    finally:
        conn.close()


def nulled(seq: int) -> tuple[str, tuple[Any, ...]]:
    """The exact shape retention leaves: content and indexed values gone, ts and category kept."""
    return (
        "UPDATE events SET payload = NULL, agent = '', event_type = '', session_id = NULL, "
        "user = NULL WHERE seq = ?",
        (seq,),
    )


def head_truncate(path: Path, n: int) -> None:
    """Delete the oldest ``n`` rows and point the stored anchor at row ``n``, as issue 13 did."""
    (h,) = one(path, "SELECT hash FROM events WHERE seq = ?", (n,))
    sql(
        path,
        ("DELETE FROM events WHERE seq <= ?", (n,)),
        ("UPDATE meta SET value = ? WHERE key = 'anchor_seq'", (str(n),)),
        ("UPDATE meta SET value = ? WHERE key = 'anchor_hash'", (h,)),
    )


@pytest.fixture
def hundred_and_two(db_path: Path) -> str:
    """102 fresh events (a denial at seq 40), checkpoints at 10..100 and 102; the real key."""
    events = [event(i, ts=FRESH, kind="denial" if i == 39 else "action") for i in range(102)]
    return write(db_path, events)


# --- head truncation ------------------------------------------------------------------------


def test_deleting_the_oldest_rows_and_moving_the_anchor_is_truncated(
    db_path: Path, hundred_and_two: str
) -> None:
    """Issue 13's attack: 95 of 102 rows deleted, a denial among them, the anchor rewritten to
    row 95: with the key pinned and the anchor file untouched it is ``truncated`` at seq 1."""
    head_truncate(db_path, 95)
    for kw in ({}, {"public_key": hundred_and_two}):
        report = verify(db_path, **kw)
        assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 1)
        assert "1..95" in report.detail


def test_head_truncation_after_an_honest_prune_is_truncated_past_its_record(
    db_path: Path,
) -> None:
    """An honest prune dropped rows 1..10; cutting on to row 25 is caught at seq 11."""
    key = write(db_path, [event(i, ts=OLD if i < 10 else FRESH) for i in range(40)])
    assert prune(db_path, {"action": CUTOFF}).anchor_seq == 10
    head_truncate(db_path, 25)
    report = verify(db_path, public_key=key)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 11)


def test_checkpoints_below_the_start_must_match_the_prune_that_rests_on_them(
    db_path: Path,
) -> None:
    """A checkpoint a prune rested the new start on, re-pointed at another head, is caught."""
    write(db_path, [event(i, ts=OLD if i < 10 else FRESH) for i in range(20)])
    prune(db_path, {"action": CUTOFF})
    sql(db_path, ("UPDATE checkpoints SET head_hash = ? WHERE seq = 10", ("ab" * 32,)))
    report = verify(db_path)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 10)


# --- forged tombstones ----------------------------------------------------------------------


def test_nulling_a_fresh_denial_is_a_forged_tombstone(db_path: Path) -> None:
    """A fresh denial's payload set to NULL (the shape of a tombstone) fails at its seq."""
    write(db_path, [event(i, ts=FRESH, kind="denial" if i == 6 else "action") for i in range(20)])
    sql(db_path, nulled(7))
    report = verify(db_path)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "forged_tombstone", 7)


def test_a_backdated_forged_tombstone_beside_honest_ones_is_caught(db_path: Path) -> None:
    """After an honest prune, a denial NULLed and backdated past the cutoff is still caught:
    no signed record names its seq."""
    events = [event(i, ts=OLD if i < 5 else FRESH) for i in range(20)]
    events[12] = event(12, ts=FRESH, kind="denial")
    write(db_path, events, checkpoint_every=1000)  # no checkpoint inside the prefix: no drop
    assert prune(db_path, {"action": CUTOFF, "security": CUTOFF}).dropped_rows == 0
    sql(
        db_path,
        nulled(13),
        ("UPDATE events SET ts = ?, category = 'action' WHERE seq = 13", (1.0,)),
    )
    report = verify(db_path)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "forged_tombstone", 13)


def test_a_prune_does_not_launder_a_forged_tombstone_by_dropping_it(db_path: Path) -> None:
    """An old row NULLed behind the store's back stops the next prune's cut before it, so the
    forgery stays visible instead of vanishing under a signed record."""
    write(db_path, [event(i, ts=OLD if i < 25 else FRESH) for i in range(30)])
    sql(db_path, nulled(14))
    report = prune(db_path, {"action": CUTOFF})
    assert report.anchor_seq == 10  # the checkpoint below the forgery, not 20
    check = verify(db_path)
    assert (check.ok, check.damage, check.first_bad_seq) == (False, "forged_tombstone", 14)


# --- the records themselves -----------------------------------------------------------------


def _two_prunes(path: Path) -> str:
    """Rows 1..10 dropped by record 1, rows 11..20 by record 2; rows 21..30 live."""
    key = write(path, [event(i, ts=OLD if i < 20 else FRESH) for i in range(30)])
    assert prune(path, {"action": OLD + 10}).record == 1
    assert prune(path, {"action": CUTOFF}).record == 2
    return key


def test_deleting_a_prune_record_between_others_is_missing(db_path: Path) -> None:
    """Record 1 deleted, record 2 kept: the record chain shows the gap."""
    key = _two_prunes(db_path)
    sql(db_path, ("DELETE FROM prune_records WHERE id = 1", ()))
    report = verify(db_path, public_key=key)
    assert (report.ok, report.damage) == (False, "prune_record_missing")


def test_deleting_the_newest_dropping_record_is_truncated(db_path: Path) -> None:
    """Record 2 deleted: rows 11..20 are gone and nothing signed says why."""
    key = _two_prunes(db_path)
    sql(db_path, ("DELETE FROM prune_records WHERE id = 2", ()))
    report = verify(db_path, public_key=key)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 11)


def test_deleting_a_tombstoning_record_exposes_its_tombstones(db_path: Path) -> None:
    """A prune that only tombstoned, its record deleted: its first tombstone is forged."""
    write(db_path, [event(i, ts=OLD if i % 2 else FRESH) for i in range(10)], checkpoint_every=100)
    report = prune(db_path, {"action": CUTOFF})
    assert (report.dropped_rows, report.erased) == (0, {"action": 5})
    sql(db_path, ("DELETE FROM prune_records", ()))
    check = verify(db_path)
    assert (check.ok, check.damage, check.first_bad_seq) == (False, "forged_tombstone", 2)


def test_widening_a_prune_records_range_breaks_its_signature(db_path: Path) -> None:
    """A fresh denial NULLed and the record's range stretched over it: the record is invalid."""
    events = [event(i, ts=OLD if i < 5 else FRESH) for i in range(10)]
    events[5] = event(5, ts=FRESH, kind="denial")
    write(db_path, events, checkpoint_every=100)
    prune(db_path, {"action": CUTOFF})
    (body,) = one(db_path, "SELECT body FROM prune_records WHERE id = 1")
    record = json.loads(body)
    assert record["tombstoned"] == [[1, 5]]
    record["tombstoned"] = [[1, 6]]
    sql(
        db_path,
        nulled(6),
        ("UPDATE prune_records SET body = ? WHERE id = 1", (json.dumps(record).encode(),)),
    )
    report = verify(db_path)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "prune_record_invalid", 1)


def test_a_prune_record_signed_by_another_key_fails_when_the_key_is_pinned(
    db_path: Path, hundred_and_two: str
) -> None:
    """The forger truncates, writes a well-formed record for it with their own key and records
    that key in meta: only the pinned key tells the record is not the store's."""
    (h,) = one(db_path, "SELECT hash FROM events WHERE seq = 100")
    forger = Signer(Ed25519PrivateKey.generate())
    forged = sign_record(
        forger,
        PruneRecord(
            id=1,
            prev=record_digest(None),
            created_at=FRESH,
            actor="root@box",
            rules={},
            tombstoned=[],
            tombstoned_count=0,
            dropped=100,
            dropped_by_category={"action": 100},
            prior_seq=0,
            prior_hash=GENESIS,
            anchor_seq=100,
            anchor_hash=h,
            head_seq=102,
            head_hash=h,
        ),
    )
    head_truncate(db_path, 100)
    sql(
        db_path,
        ("INSERT INTO prune_records (id, body) VALUES (1, ?)", (forged.encode(),)),
        ("UPDATE meta SET value = ? WHERE key = 'public_key'", (forger.public_key,)),
    )
    report = verify(db_path, public_key=hundred_and_two)
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "prune_record_invalid", 1)


# --- honest prunes ---------------------------------------------------------------------------


def test_an_honest_dropping_prune_verifies_and_reports_what_it_erased(db_path: Path) -> None:
    """Rows 1..20 old, dropped to the checkpoint at 20: OK with the key pinned and the anchor
    file (whose lines at 10 and 20 are now below the start) intact; the report says how many,
    by which record, under which rule."""
    key = write(db_path, [event(i, ts=OLD if i < 20 else FRESH) for i in range(30)])
    report = prune(db_path, {"action": CUTOFF, "decision": CUTOFF}, actor="ops@example")
    assert (report.dropped_rows, report.anchor_seq, report.record) == (20, 20, 1)
    check = verify(db_path, public_key=key)
    assert check.ok, check.detail
    assert (check.first_seq, check.checked, check.erased, check.dropped) == (21, 10, 0, 20)
    assert check.prune_records_checked == 1
    assert [msgspec.to_builtins(e) for e in check.erasures] == [
        {
            "record": 1,
            "at": check.erasures[0].at,
            "actor": "ops@example",
            "reason": "retention",
            "category": "action",
            "cutoff": CUTOFF,
            "retention_days": 30.0,
            "erased": 20,
            "dropped": 20,
        }
    ]
    assert [c.seq for c in load_anchors(f"{db_path}.anchor")][:2] == [10, 20]


def test_a_tombstoning_prune_records_compact_ranges_and_verifies(db_path: Path) -> None:
    """Old actions interleaved with fresh ones: nothing is dropped, the record lists the erased
    seqs as runs, and verify counts every tombstone."""
    events = [event(i, ts=OLD if (i // 3) % 2 == 0 else FRESH) for i in range(12)]
    key = write(db_path, events, checkpoint_every=100)
    report = prune(db_path, {"action": CUTOFF})
    assert (report.erased, report.dropped_rows) == ({"action": 6}, 0)
    (body,) = one(db_path, "SELECT body FROM prune_records WHERE id = 1")
    assert json.loads(body)["tombstoned"] == [[1, 3], [7, 9]]
    check = verify(db_path, public_key=key)
    assert check.ok, check.detail
    assert (check.erased, check.dropped, check.erasures[0].erased) == (6, 0, 6)


def test_prunes_between_more_writes_and_checkpoints_keep_verifying(db_path: Path) -> None:
    """Prune, write and checkpoint more, prune again: OK each time, records chained 1, 2."""
    key = write(db_path, [event(i) for i in range(20)])
    assert prune(db_path, {"action": CUTOFF}).anchor_seq == 20
    store = open_store(db_path)
    for i in range(20, 45):
        store.append([event(i, ts=FRESH if i >= 35 else OLD)])
    store.close()
    assert verify(db_path, public_key=key).ok
    second = prune(db_path, {"action": CUTOFF})
    assert (second.anchor_seq, second.record) == (30, 2)  # 21..35 erased; no checkpoint in 31..35
    check = verify(db_path, public_key=key)
    assert check.ok, check.detail
    assert (check.first_seq, check.dropped, check.erased, check.prune_records_checked) == (
        31,
        30,
        5,
        2,
    )
    assert [(e.record, e.erased, e.dropped) for e in check.erasures] == [(1, 20, 20), (2, 15, 10)]


def test_a_prune_that_changes_nothing_writes_no_record(db_path: Path) -> None:
    """Nothing expired: no record, and a dry run never writes one."""
    write(db_path, [event(i, ts=FRESH) for i in range(5)])
    assert prune(db_path, {"action": CUTOFF}).record is None
    assert prune(db_path, {"action": FRESH + 100}, dry_run=True).record is None
    assert one(db_path, "SELECT count(*) FROM prune_records") == (0,)


def test_ranges_of_folds_consecutive_seqs() -> None:
    """Ascending seqs become ``(first, last)`` runs."""
    assert list(ranges_of([1, 2, 3, 5, 7, 8])) == [(1, 3), (5, 5), (7, 8)]
    assert list(ranges_of([])) == []


def test_redline_verify_prints_the_erasures(tmp_path: Path) -> None:
    """``redline verify`` says how many events were erased and by which signed record and rule;
    ``--json`` carries the same counts."""
    db = tmp_path / "events.db"
    write(db, [event(i, ts=OLD if i < 10 else FRESH) for i in range(15)], anchor_path=None)
    store = SQLiteStore(db, checkpoint_every=10, retention_days={"action": 30})
    store.prune({"action": CUTOFF}, actor="ops@example")
    store.close()
    config = tmp_path / "monitor.yaml"
    config.write_text(f'version: "1.0"\nstorage:\n  path: {db}\n', encoding="utf-8")
    cmd = [sys.executable, "-m", "redline.cli", "-c", str(config), "verify"]
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("REDLINE_CONFIG", None)
    human = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, env=env)
    assert human.returncode == 0, human.stdout + human.stderr
    assert "0 erased, 10 dropped before seq 11" in human.stdout
    assert "prune record 1" in human.stdout
    assert "ops@example" in human.stdout
    assert "action (kept 30 d" in human.stdout
    data = json.loads(
        subprocess.run(
            [*cmd, "--json"], capture_output=True, text=True, check=False, timeout=60, env=env
        ).stdout
    )
    assert (data["ok"], data["dropped"], data["prune_records_checked"]) == (True, 10, 1)
    assert data["erasures"][0]["actor"] == "ops@example"
