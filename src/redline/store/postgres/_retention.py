"""Retention: drop whole partitions where the chains allow it, tombstone the rest."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg

from redline.store.base import PruneReport
from redline.store.postgres._core import PgCore
from redline.store.postgres.migrations import lock_key

__all__ = ["PgPruneReport", "Retention"]


class PgPruneReport(PruneReport, kw_only=True):
    """:class:`PruneReport` plus the partitions dropped whole and each stream's new anchor."""

    dropped_partitions: list[str] = msgspec.field(default_factory=list)
    anchors: dict[str, int] = msgspec.field(default_factory=dict)


class Retention(PgCore):
    """``prune``."""

    def prune(self, cutoffs: dict[str, float], *, dry_run: bool = False) -> PgPruneReport:
        """Apply retention: drop whole partitions where possible, tombstone the rest.

        A partition is dropped when its upper bound is at or before the cutoff of every category
        with live rows in it (a category with no cutoff is kept forever) and, for every stream
        with rows in it, those rows are a prefix of what is left of the stream's chain; the
        stream's anchor then moves to the last dropped row. Other expired rows become tombstones
        (content and indexed values erased, seq and hashes kept), as in SQLite.
        """
        q = self._q
        erased: dict[str, int] = {}
        dropped_rows = 0
        dropped: list[str] = []
        anchors: dict[str, int] = {}
        with self._reading() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema, "prune"),))
            for category, cutoff in cutoffs.items():
                row = conn.execute(
                    f"SELECT count(*) FROM {q}.events WHERE category = %s AND ts < %s "
                    "AND payload IS NOT NULL",
                    (category, cutoff),
                ).fetchone()
                erased[category] = int(row[0]) if row else 0
            self._load_ranges(conn)
            for lo, hi, name in list(self._ranges):
                moved = self._droppable(conn, name, hi, cutoffs, dropped)
                if moved is None:
                    continue
                count = conn.execute(f"SELECT count(*) FROM {q}.{name}").fetchone()
                dropped_rows += int(count[0]) if count else 0
                dropped.append(name)
                for stream, (seq, h) in moved.items():
                    anchors[stream] = seq
                    if not dry_run:
                        conn.execute(
                            f"UPDATE {q}.streams SET anchor_seq = %s, anchor_hash = %s "
                            "WHERE stream = %s AND anchor_seq < %s",
                            (seq, h, stream, seq),
                        )
                if not dry_run:
                    conn.execute(f"ALTER TABLE {q}.events DETACH PARTITION {q}.{name}")
                    conn.execute(f"DROP TABLE {q}.{name}")
                    self._ranges.remove((lo, hi, name))
                    self._covered_days = {d for d in self._covered_days if self._covers(d)}
            if not dry_run:
                for category, cutoff in cutoffs.items():
                    conn.execute(
                        f"UPDATE {q}.events SET payload = NULL, agent = '', session_id = NULL, "
                        '"user" = NULL WHERE category = %s AND ts < %s AND payload IS NOT NULL',
                        (category, cutoff),
                    )
                if cutoffs:
                    conn.execute(
                        f"DELETE FROM {q}.rollup_minute WHERE minute + 60 <= %s",
                        (max(cutoffs.values()),),
                    )
        return PgPruneReport(
            dry_run=dry_run,
            erased=erased,
            dropped_rows=dropped_rows,
            anchor_seq=max(anchors.values(), default=0),
            dropped_partitions=dropped,
            anchors=anchors,
        )

    def _droppable(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        hi: float,
        cutoffs: dict[str, float],
        going: list[str],
    ) -> dict[str, tuple[int, str]] | None:
        """Each stream's new anchor if partition ``name`` may be dropped whole, else ``None``.

        ``going`` are the older partitions this prune drops first (not yet, in a dry run).
        """
        q = self._q
        if not cutoffs or hi > max(cutoffs.values()):
            return None
        live = conn.execute(
            f"SELECT DISTINCT category FROM {q}.{name} WHERE payload IS NOT NULL"
        ).fetchall()
        if any(c not in cutoffs or hi > cutoffs[c] for (c,) in live):
            return None
        moved: dict[str, tuple[int, str]] = {}
        for stream, top in conn.execute(
            f"SELECT stream, max(seq) FROM {q}.{name} GROUP BY stream"
        ).fetchall():
            outside = conn.execute(
                f"SELECT 1 FROM {q}.events WHERE stream = %s AND seq < %s "
                "AND NOT tableoid = ANY(%s::regclass[]) LIMIT 1",
                (stream, top, [f"{q}.{n}" for n in (*going, name)]),
            ).fetchone()
            if outside is not None:
                return None  # a later partition holds older rows of this chain: not a prefix
            h = conn.execute(
                f"SELECT hash FROM {q}.{name} WHERE stream = %s AND seq = %s", (stream, top)
            ).fetchone()
            assert h is not None
            moved[str(stream)] = (int(top), str(h[0]))
        return moved
