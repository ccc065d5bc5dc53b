"""Fleet rollups: per-minute, per-agent counters every writer upserts with its batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redline.store._history import COLUMNS, HistoryPoint, cells_from_rows, points
from redline.store.base import FleetRow, FleetSnapshot
from redline.store.postgres._core import PgCore
from redline.store.postgres.migrations import lock_key

__all__ = ["ROLLUP_FIELDS", "Fleet"]

#: The rollup's counter columns (the shared cell layout, less the latency histogram).
ROLLUP_FIELDS: Final = tuple(c for c in COLUMNS if c != "latency_hist")


class Fleet(PgCore):
    """``fleet_snapshot`` and ``metric_history``."""

    def metric_history(
        self, agent: str | None, since: float, until: float, step: int
    ) -> list[HistoryPoint]:
        """Chart points from the rollup (see :mod:`redline.store._history`), summed per minute
        over the fleet's writers in SQL; histograms merged here."""
        lo = int(since // step) * step  # the first point's start: its whole step is counted
        fields = ", ".join(n for n in COLUMNS if n != "latency_hist")
        where = "minute >= %s AND minute < %s" + (" AND agent = %s" if agent is not None else "")
        args: tuple[Any, ...] = (lo, until) if agent is None else (lo, until, agent)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT minute, agent, {fields}, latency_hist::text "
                f"FROM {self._q}.rollup_minute WHERE {where}",
                args,
            ).fetchall()
        return points(cells_from_rows(rows), since, until, step)

    def budget_ledger(self) -> Any:
        """Budget spend and reservations in this schema, through the store's pool (advisory
        locks per budget key), shared by every process on the database."""
        ledger = getattr(self, "_ledger", None)
        if ledger is None:
            from redline.control.budgets.sql import PostgresLedger

            schema = self.schema
            ledger = self._ledger = PostgresLedger(
                self._reading, self._q, lambda purpose: lock_key(schema, purpose)
            )
        return ledger

    def fleet_snapshot(
        self, window_seconds: float = 300.0, now: float | None = None
    ) -> FleetSnapshot:
        """Fleet totals and per-agent rows over the last ``window_seconds`` from the rollup.

        Resolution is one minute: every minute overlapping ``[now - window, now]`` counts.
        """
        at = self._clock() if now is None else now
        since = at - window_seconds
        first_minute = int(since // 60) * 60
        fields = ", ".join(f"sum({n})" for n in ROLLUP_FIELDS)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT agent, {fields} FROM {self._q}.rollup_minute "
                "WHERE minute >= %s AND minute <= %s GROUP BY agent ORDER BY agent",
                (first_minute, at),
            ).fetchall()
        minutes = max(window_seconds, 1.0) / 60.0
        agents = [_fleet_row(str(r[0]), r[1:], minutes) for r in rows]
        totals = [sum(float(r[i + 1] or 0) for r in rows) for i in range(len(ROLLUP_FIELDS))]
        return FleetSnapshot(
            window_seconds=window_seconds,
            now=at,
            since=since,
            totals=_fleet_row("*", totals, minutes),
            agents=agents,
        )


def _fleet_row(agent: str, sums: Sequence[Any], minutes: float) -> FleetRow:
    v = dict(zip(ROLLUP_FIELDS, (float(x or 0) for x in sums), strict=True))
    ints = {k: int(x) for k, x in v.items() if k not in ("cost", "latency_sum")}
    events, actions, denials = v["events"], v["actions"], v["denials"]
    return FleetRow(
        agent=agent,
        cost=v["cost"],
        latency_sum=v["latency_sum"],
        **ints,
        denial_rate=denials / (actions + denials) if actions + denials else 0.0,
        error_rate=v["errors"] / events if events else 0.0,
        avg_latency_ms=v["latency_sum"] / v["latency_n"] if v["latency_n"] else 0.0,
        cost_per_minute=v["cost"] / minutes,
        events_per_minute=events / minutes,
    )
