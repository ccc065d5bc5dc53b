"""Reading: streamed queries, counts, the fleet's head, streams and checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from redline.store.base import EventQuery, StoredEvent
from redline.store.chain import GENESIS, Checkpoint
from redline.store.postgres._core import PgCore, decode_event, pg_select, query_ids
from redline.store.sql import GROUPABLE_COLUMNS, checkpoint_from_row

__all__ = ["Queries"]


class Queries(PgCore):
    """``query``, ``count``, ``counts_by``, ``head``, ``streams`` and ``checkpoints``."""

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Stream matching events (time then id order); tombstones are skipped."""
        sql, params = pg_select(self._sql_events, query, "id, payload, hash, prev_hash")
        small = query.limit is not None and query.limit <= 5_000
        return self._iter_rows(sql, params, server_side=not small)

    def _iter_rows(
        self, sql: str, params: list[Any], *, server_side: bool
    ) -> Iterator[StoredEvent]:
        with self._reading() as conn:
            if not server_side:
                rows = conn.execute(sql, params).fetchall()
                for id_, payload, h, prev in rows:
                    yield StoredEvent(seq=id_, event=decode_event(payload), hash=h, prev_hash=prev)
                return
            with conn.transaction(), conn.cursor(name=f"redline_q{next(query_ids)}") as cur:
                cur.itersize = 2_000
                cur.execute(sql, params)
                for id_, payload, h, prev in cur:
                    yield StoredEvent(seq=id_, event=decode_event(payload), hash=h, prev_hash=prev)

    def count(self, query: EventQuery) -> int:
        """How many (non-erased) events match."""
        sql, params = pg_select(
            self._sql_events, msgspec.structs.replace(query, limit=None), "count(*)"
        )
        with self._reading() as conn:
            row = conn.execute(sql.split(" ORDER BY ")[0], params).fetchone()
        return int(row[0]) if row else 0

    def counts_by(self, column: str, query: EventQuery) -> dict[str, int]:
        """Event counts grouped by ``agent``, ``event_type``, ``category``, ``user``, ``session_id``."""
        if column not in GROUPABLE_COLUMNS:
            raise ValueError(f"cannot group by {column!r}")
        col = '"user"' if column == "user" else column
        sql, params = pg_select(
            self._sql_events, msgspec.structs.replace(query, limit=None), f"{col}, count(*)"
        )
        sql = sql.split(" ORDER BY ")[0] + f" GROUP BY {col}"
        with self._reading() as conn:
            return {str(k): int(v) for k, v in conn.execute(sql, params).fetchall()}

    def head(self) -> tuple[int, str]:
        """``(id, hash)`` of the newest committed row in the fleet (``(0, GENESIS)`` when empty).

        ``id`` has a BRIN index (cheap to maintain at COPY speed), which cannot answer
        ``ORDER BY id DESC LIMIT 1``: the id sequence gives an upper bound, and the newest row is
        looked for below it in windows growing tenfold (ids of in-flight batches lie between).
        """
        q = self._q
        with self._reading() as conn:
            top = conn.execute(f"SELECT last_value, is_called FROM {q}.event_id_seq").fetchone()
            if top is None or not top[1]:
                return 0, GENESIS
            last = int(top[0])
            window = 10_000
            while True:
                row = conn.execute(
                    f"SELECT id, hash FROM {self._sql_events} WHERE id > %s AND id <= %s "
                    "ORDER BY id DESC LIMIT 1",
                    (last - window, last),
                ).fetchone()
                if row is not None:
                    return int(row[0]), str(row[1])
                if window > last:
                    return 0, GENESIS
                window *= 10

    def streams(self) -> list[dict[str, Any]]:
        """Every registered stream: id, host, pid, started_at, public key, anchor, closed_at."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT stream, host, pid, started_at, public_key, anchor_seq, anchor_hash, "
                f"closed_at FROM {self._q}.streams ORDER BY started_at, stream"
            ).fetchall()
        keys = ("stream", "host", "pid", "started_at", "public_key", "anchor_seq", "anchor_hash")
        return [{**dict(zip(keys, r[:7], strict=True)), "closed_at": r[7]} for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint of every stream, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT stream, seq, head_hash, created_at, signature, public_key "
                f"FROM {self._q}.checkpoints ORDER BY created_at, stream, seq"
            ).fetchall()
        return [checkpoint_from_row(r) for r in rows]
