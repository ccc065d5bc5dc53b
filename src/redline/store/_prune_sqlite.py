"""Retention in the SQLite store: what a prune erases, where it may cut, and its signed record.

Kept apart from :mod:`redline.store.sqlite` so the store reads in one sitting; every function runs
inside the prune's ``BEGIN IMMEDIATE`` transaction on the writer connection.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from collections.abc import Iterator
from typing import Any

from redline.store.chain import Signer
from redline.store.prune_records import (
    CategoryRule,
    PruneLedger,
    PruneRecord,
    ranges_of,
    record_digest,
    sign_record,
)
from redline.store.sql import checkpoint_from_row

__all__ = ["count_by_category", "drop_point", "plan", "stored_records", "write_record"]

log = logging.getLogger("redline")


def plan(
    conn: sqlite3.Connection, cutoffs: dict[str, float], retention_days: dict[str, Any]
) -> tuple[dict[str, CategoryRule], list[tuple[int, int]]]:
    """Per category what the cutoffs erase (count, first and last seq, the rule), and every seq
    to erase as ``(first, last)`` runs, in one pass in seq order (no list of every seq)."""
    stats: dict[str, list[int | None]] = {category: [0, None, None] for category in cutoffs}
    spans: list[tuple[int, int]] = []
    if cutoffs:
        where = " OR ".join("(category = ? AND ts < ?)" for _ in cutoffs)
        params = [value for item in cutoffs.items() for value in item]
        cursor = conn.execute(
            f"SELECT seq, category FROM events WHERE payload IS NOT NULL AND ({where}) "
            "ORDER BY seq",
            params,
        )

        def seqs() -> Iterator[int]:
            for seq, category in cursor:
                entry = stats[category]
                entry[0] = int(entry[0] or 0) + 1
                entry[1] = seq if entry[1] is None else entry[1]
                entry[2] = seq
                yield int(seq)

        spans = list(ranges_of(seqs()))
    return {
        category: CategoryRule(
            cutoff=cutoff,
            retention_days=retention_days.get(category),
            tombstoned=int(stats[category][0] or 0),
            first_seq=stats[category][1],
            last_seq=stats[category][2],
        )
        for category, cutoff in cutoffs.items()
    }, spans


def drop_point(
    conn: sqlite3.Connection,
    prior: tuple[int, str],
    public_key: str,
    new_spans: list[tuple[int, int]],
    path: object,
) -> tuple[int, str] | None:
    """Where the new start may rest: the newest checkpoint signed by ``public_key`` whose row
    still carries its hash, with only accounted-for tombstones at or below it.

    Dropping rows is what a prune record vouches for, so this refuses anything that would
    launder tampering: a checkpoint by another key or not matching its row is passed over, and
    the cut stops before the first tombstone that neither a verified earlier record nor this
    prune (``new_spans``) erased. With damaged records nothing is dropped (``verify`` says why).
    """
    ledger = PruneLedger(stored_records(conn), public_key=public_key, pinned=True)
    if ledger.start_problem(*prior) is not None:
        log.warning("redline: %s: prune records do not verify; dropping no rows", path)
        return None
    spans = sorted(ledger.spans() + new_spans)
    starts = [lo for lo, _ in spans]
    first_live = conn.execute("SELECT min(seq) FROM events WHERE payload IS NOT NULL").fetchone()[0]
    limit = int(first_live) if first_live is not None else None
    unaccounted = conn.execute(
        "SELECT seq FROM events WHERE seq > ? AND payload IS NULL"
        + (" AND seq < ?" if limit is not None else "")
        + " ORDER BY seq",
        (prior[0], limit) if limit is not None else (prior[0],),
    )
    for (seq,) in unaccounted:
        i = bisect.bisect_right(starts, seq) - 1
        if i < 0 or spans[i][1] < seq:
            log.warning(
                "redline: %s: row %d is an unaccounted tombstone; not pruning past it", path, seq
            )
            limit = int(seq)
            break
    sql = (
        "SELECT stream, seq, head_hash, created_at, signature, public_key FROM checkpoints "
        "WHERE seq > ?" + (" AND seq < ?" if limit is not None else "") + " ORDER BY seq DESC"
    )
    params = (prior[0], limit) if limit is not None else (prior[0],)
    for row in conn.execute(sql, params).fetchall():
        cp = checkpoint_from_row(row)
        stored = conn.execute("SELECT hash FROM events WHERE seq = ?", (cp.seq,)).fetchone()
        if stored is not None and str(stored[0]) == cp.head_hash and cp.valid_signature(public_key):
            return cp.seq, cp.head_hash
        log.warning(
            "redline: %s: checkpoint at %d does not verify; not pruning to it", path, cp.seq
        )
    return None


def write_record(
    conn: sqlite3.Connection,
    signer: Signer,
    *,
    now: float,
    actor: str,
    rules: dict[str, CategoryRule],
    spans: list[tuple[int, int]],
    by_category: dict[str, int],
    prior: tuple[int, str],
    anchor: tuple[int, str],
) -> int:
    """Sign and insert the record of this prune (after its rows changed); returns its id.

    ``by_category`` counts the dropped rows (:func:`count_by_category`, taken before the drop).
    """
    last = conn.execute("SELECT id, body FROM prune_records ORDER BY id DESC LIMIT 1").fetchone()
    head = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    head_seq, head_hash = (int(head[0]), str(head[1])) if head is not None else anchor
    record = sign_record(
        signer,
        PruneRecord(
            id=int(last[0]) + 1 if last is not None else 1,
            prev=record_digest(_blob(last[1]) if last is not None else None),
            created_at=now,
            actor=actor,
            rules=rules,
            tombstoned=spans,
            tombstoned_count=sum(rule.tombstoned for rule in rules.values()),
            dropped=anchor[0] - prior[0],
            dropped_by_category=by_category,
            prior_seq=prior[0],
            prior_hash=prior[1],
            anchor_seq=anchor[0],
            anchor_hash=anchor[1],
            head_seq=head_seq,
            head_hash=head_hash,
        ),
    )
    conn.execute("INSERT INTO prune_records (id, body) VALUES (?, ?)", (record.id, record.encode()))
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('public_key', ?)", (record.public_key,)
    )
    return record.id


def count_by_category(conn: sqlite3.Connection, lo: int, hi: int) -> dict[str, int]:
    """Rows per category in ``lo < seq <= hi`` (taken before they are dropped)."""
    return {
        str(c): int(n)
        for c, n in conn.execute(
            "SELECT category, count(*) FROM events WHERE seq > ? AND seq <= ? GROUP BY category",
            (lo, hi),
        ).fetchall()
    }


def stored_records(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
    """The stored prune records, oldest first (none in a read-only file from before them)."""
    try:
        rows = conn.execute("SELECT id, body FROM prune_records ORDER BY id").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return []
    return [(int(i), _blob(body)) for i, body in rows]


def _blob(value: Any) -> bytes:
    """A stored body as bytes (text written over a blob is taken as its UTF-8)."""
    return value.encode() if isinstance(value, str) else bytes(value)
