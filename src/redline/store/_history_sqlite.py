"""SQLite's per-minute rollups (see :mod:`redline.store._history`): table, upsert, backfill.

The table lives in the store's file. :func:`add` runs inside ``append()``'s transaction, so a
cell is committed with the events it counts (one ``executemany`` upsert per batch; histograms
are merged in SQL by ``redline_hist_merge``, registered on the writer's connection by
:func:`prepare`). A file written before rollups existed is backfilled by :func:`backfill`, a
bounded step that remembers how far it got (``meta.rollup_backfilled_to``), so the first history
request over an old file never stalls the writer or the reader for minutes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

import msgspec

from redline.events import AgentEvent
from redline.store._history import COLUMNS, HistoryPoint, Rollup, merge_text, points, rollups_of

__all__ = ["add", "backfill", "ensure", "history", "prepare"]

_DDL: Final = """
CREATE TABLE IF NOT EXISTS rollup_minute (
    minute        INTEGER NOT NULL,
    agent         TEXT    NOT NULL,
    events        INTEGER NOT NULL DEFAULT 0,
    actions       INTEGER NOT NULL DEFAULT 0,
    denials       INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    llm_calls     INTEGER NOT NULL DEFAULT 0,
    tool_calls    INTEGER NOT NULL DEFAULT 0,
    cost          REAL    NOT NULL DEFAULT 0,
    latency_sum   REAL    NOT NULL DEFAULT 0,
    latency_n     INTEGER NOT NULL DEFAULT 0,
    tokens_in     INTEGER NOT NULL DEFAULT 0,
    tokens_out    INTEGER NOT NULL DEFAULT 0,
    tokens_cached INTEGER NOT NULL DEFAULT 0,
    latency_hist  TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (minute, agent)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_rollup_agent_minute ON rollup_minute(agent, minute);
"""
_MERGED: Final = ", ".join(
    f"{c} = redline_hist_merge({c}, excluded.{c})"
    if c == "latency_hist"
    else f"{c} = {c} + excluded.{c}"
    for c in COLUMNS
)
_UPSERT: Final = (
    f"INSERT INTO rollup_minute (minute, agent, {', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))}) "
    f"ON CONFLICT(minute, agent) DO UPDATE SET {_MERGED}"
)
_SELECT: Final = f"SELECT minute, agent, {', '.join(COLUMNS)} FROM rollup_minute"
_decode = msgspec.json.Decoder(AgentEvent).decode


def prepare(conn: sqlite3.Connection) -> None:
    """Register the histogram merge on a connection that writes rollups."""
    conn.create_function("redline_hist_merge", 2, merge_text, deterministic=True)


def ensure(conn: sqlite3.Connection) -> None:
    """Create the table; on a file that already holds events, note where backfill must reach."""
    conn.executescript(_DDL)
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) "
        "SELECT 'rollup_from_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM events"
    )
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('rollup_backfilled_to', '0')")


def add(conn: sqlite3.Connection, events: Sequence[AgentEvent]) -> None:
    """Fold ``events`` into their cells, in the caller's transaction."""
    cells = rollups_of(events)
    if cells:
        conn.executemany(_UPSERT, [(m, a, *c.row()) for (m, a), c in cells.items()])


def pending_backfill(conn: sqlite3.Connection) -> tuple[int, int]:
    """``(backfilled_to, from_seq)``: rows in between are not in the rollups yet."""
    meta = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('rollup_from_seq', 'rollup_backfilled_to')"
        ).fetchall()
    )
    return int(meta.get("rollup_backfilled_to", 0)), int(meta.get("rollup_from_seq", 0))


def backfill(conn: sqlite3.Connection, max_rows: int = 50_000) -> bool:
    """Roll up at most ``max_rows`` events written before rollups existed; True when done.

    Runs in its own ``BEGIN IMMEDIATE`` (the writer's lock), so it interleaves with appends.
    An erased event (its payload a tombstone) still counts by its indexed columns.
    """
    done_to, target = pending_backfill(conn)
    if done_to >= target:
        return True
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            "SELECT seq, ts, agent, event_type, payload FROM events "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (done_to, target, max_rows),
        ).fetchall()
        events: list[AgentEvent] = []
        last = done_to
        for seq, ts, agent, event_type, payload in rows:
            last = int(seq)
            event = None
            if payload is not None:
                try:
                    event = _decode(payload)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    event = None
            events.append(event or AgentEvent(timestamp=ts, agent=agent, event_type=event_type))
        add(conn, events)
        finished = not rows or last >= target
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'rollup_backfilled_to'",
            (str(target if finished else last),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return finished


def history(
    conn: sqlite3.Connection,
    agent: str | None,
    since: float,
    until: float,
    step: int,
) -> list[HistoryPoint]:
    """Chart points from the cells in ``[since, until)``, for one agent or the fleet."""
    lo = int(since // step) * step  # the first point's start: its whole step is counted
    if agent is None:
        rows = conn.execute(f"{_SELECT} WHERE minute >= ? AND minute < ?", (lo, until)).fetchall()
    else:
        rows = conn.execute(
            f"{_SELECT} WHERE agent = ? AND minute >= ? AND minute < ?", (agent, lo, until)
        ).fetchall()
    cells = [(int(r[0]), Rollup.from_row(r[2:])) for r in rows]
    return points(cells, since, until, step)
