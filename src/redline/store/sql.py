"""The one place SQL for event queries is built, for every SQL backend.

SQLite and PostgreSQL differ only in their placeholder (``?`` / ``%s``), how they spell the
``user`` column (a reserved word in PostgreSQL), the name of the sequence column that breaks ties,
and how tombstones (events whose content retention erased) drop out of a filter. Both also store
checkpoints with the same columns, and group counts by the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redline.store.base import EventQuery
from redline.store.chain import Checkpoint

__all__ = ["CHECKPOINT_COLUMNS", "GROUPABLE_COLUMNS", "checkpoint_from_row", "select_events"]

#: The columns of a checkpoint row, in :func:`checkpoint_from_row` order.
CHECKPOINT_COLUMNS: Final = "stream, seq, head_hash, created_at, signature, public_key"
#: What ``counts_by`` may group by (the indexed columns; anything else is refused, not quoted).
GROUPABLE_COLUMNS: Final = ("agent", "event_type", "category", "user", "session_id")


def checkpoint_from_row(row: Sequence[Any]) -> Checkpoint:
    """A checkpoint from a row of :data:`CHECKPOINT_COLUMNS`."""
    return Checkpoint(
        stream=row[0],
        seq=int(row[1]),
        head_hash=row[2],
        created_at=float(row[3]),
        signature=row[4],
        public_key=row[5],
    )


def select_events(
    query: EventQuery,
    columns: str,
    *,
    table: str = "events",
    placeholder: str = "?",
    user_column: str = "user",
    id_column: str = "seq",
    live_only_without_filters: bool = True,
) -> tuple[str, list[Any]]:
    """``(sql, params)`` selecting ``columns`` for ``query``, ordered by time then id.

    Erased rows have an empty agent and type and no session or user, so an equality filter on
    any of those already excludes them (keeping the query index-only); only a query without such
    a filter adds ``payload IS NOT NULL`` (always, with ``live_only_without_filters=False``).
    """
    p = placeholder
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("agent", query.agent),
        ("session_id", query.session_id),
        ("event_type", query.event_type),
        (user_column, query.user),
    ):
        if value is not None:
            where.append(f"{column} = {p}")
            params.append(value)
    if not where or not live_only_without_filters:
        where.append("payload IS NOT NULL")
    bounds: tuple[tuple[str, float | int | None], ...] = (
        (f"ts >= {p}", query.since),
        (f"ts <= {p}", query.until),
        (f"{id_column} > {p}", query.after_seq),
        (f"{id_column} < {p}", query.before_seq),
    )
    for clause, bound in bounds:
        if bound is not None:
            where.append(clause)
            params.append(bound)
    direction = "ASC" if query.order == "asc" else "DESC"
    sql = (
        f"SELECT {columns} FROM {table} WHERE {' AND '.join(where)} "
        f"ORDER BY ts {direction}, {id_column} {direction}"
    )
    if query.limit is not None:
        sql += f" LIMIT {p}"
        params.append(int(query.limit))
    return sql, params
