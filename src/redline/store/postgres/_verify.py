"""Verification: every stream's chain, checkpoints and anchors, in one consistent snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg

from redline.exceptions import StoreError
from redline.store.chain import (
    GENESIS,
    ChainRow,
    Checkpoint,
    VerifyReport,
    read_anchor_file,
    verify_rows,
)
from redline.store.postgres._core import PgCore, query_ids
from redline.store.postgres._writes import _nul
from redline.store.sql import checkpoint_from_row

__all__ = ["Verification"]


class Verification(PgCore):
    """``verify`` across streams."""

    def verify(
        self, *, public_key: str | None = None, anchors: Iterable[Checkpoint] | None = None
    ) -> VerifyReport:
        """Verify every stream's chain, checkpoints and anchors; one report per stream.

        ``anchors`` are checkpoints an auditor collected off-box (every host's anchor file); by
        default this store's ``anchor_path`` is read. A stream with rows but no registration, or
        known only from an anchor, fails. Top-level ``ok`` is every stream's ``ok``.
        """
        anchor_problem = None
        if anchors is None:
            anchors, anchor_problem = read_anchor_file(
                self.anchor_path, expected=self._has_checkpoints()
            )
        by_stream_anchor: dict[str, list[Checkpoint]] = {}
        for cp in anchors:
            by_stream_anchor.setdefault(cp.stream, []).append(cp)
        q = self._q
        reports: list[VerifyReport] = []
        with self._reading() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            registered = {
                str(r[0]): (int(r[1]), str(r[2]), r[3])
                for r in conn.execute(
                    f"SELECT stream, anchor_seq, anchor_hash, public_key FROM {q}.streams"
                ).fetchall()
            }
            present = {
                str(r[0])
                for r in conn.execute(
                    f"SELECT DISTINCT stream FROM {q}.checkpoints UNION "
                    f"SELECT stream FROM {q}.streams"
                ).fetchall()
            }
            with_rows = {
                str(r[0])
                for r in conn.execute(f"SELECT DISTINCT stream FROM {q}.events").fetchall()
            }
            cps: dict[str, list[Checkpoint]] = {}
            for r in conn.execute(
                "SELECT stream, seq, head_hash, created_at, signature, public_key "
                f"FROM {q}.checkpoints ORDER BY stream, seq"
            ).fetchall():
                cps.setdefault(str(r[0]), []).append(checkpoint_from_row(r))
            names = sorted(present | with_rows | set(by_stream_anchor))
            for name in names:
                anchor_seq, anchor_hash, key = registered.get(name, (0, GENESIS, None))
                report = verify_rows(
                    self._chain_rows(conn, name),
                    anchor_seq=anchor_seq,
                    anchor_hash=anchor_hash,
                    checkpoints=cps.get(name, ()),
                    anchors=by_stream_anchor.get(name, ()),
                    public_key=public_key or key,
                    stream=name,
                    pinned=public_key is not None,
                )
                if name not in registered and report.ok:
                    report = VerifyReport(
                        ok=False,
                        checked=report.checked,
                        first_bad_seq=report.first_seq or 1,
                        damage="rewritten",
                        detail=f"stream {name} has rows but no writer registered it",
                        first_seq=report.first_seq,
                        last_seq=report.last_seq,
                        stream=name,
                    )
                reports.append(report)
        if anchor_problem is not None:
            reports.append(
                VerifyReport(
                    ok=False,
                    checked=0,
                    first_bad_seq=1,
                    damage=anchor_problem[0],
                    detail=anchor_problem[1],
                    stream=str(self.anchor_path),
                )
            )
        return _combine(reports, f"postgres:{self.schema}")

    def _has_checkpoints(self) -> bool:
        try:
            with self._pool.connection() as conn:
                return (
                    conn.execute(f"SELECT 1 FROM {self._q}.checkpoints LIMIT 1").fetchone()
                    is not None
                )
        except psycopg.Error as exc:
            raise StoreError(f"postgres ({self.schema}): cannot read checkpoints: {exc}") from exc

    def _chain_rows(self, conn: psycopg.Connection[Any], stream: str) -> Iterator[ChainRow]:
        with conn.cursor(name=f"redline_v{next(query_ids)}") as cur:
            cur.itersize = 5_000
            cur.execute(
                "SELECT seq, prev_hash, hash, payload_sha256, payload, agent, event_type, ts, "
                f'session_id, "user", category FROM {self._sql_events} WHERE stream = %s '
                "ORDER BY seq",
                (stream,),
            )
            for r in cur:
                payload = r[4]
                columns = None
                if payload is not None:
                    payload = bytes(payload)
                    columns = _columns(payload, r[5], r[6], r[7], r[8], r[9])
                    columns["category"] = r[10]
                yield ChainRow(int(r[0]), r[1], r[2], r[3], payload, columns)


def _columns(
    payload: bytes,
    agent: str,
    event_type: str,
    ts: float,
    session_id: str | None,
    user: str | None,
) -> dict[str, Any]:
    """The indexed columns as verification compares them with the payload.

    A NUL in a text field is stored as U+FFFD in its column (PostgreSQL text cannot hold it); such
    a column is compared as the payload's value when that is the only difference.
    """
    columns: dict[str, Any] = {
        "agent": agent,
        "event_type": event_type,
        "timestamp": ts,
        "session_id": session_id,
        "user": user,
    }
    if any(isinstance(v, str) and "\ufffd" in v for v in columns.values()):
        try:
            decoded = json.loads(payload)
        except ValueError:
            return columns
        for key, value in columns.items():
            original = decoded.get(key)
            if isinstance(value, str) and isinstance(original, str) and _nul(original) == value:
                columns[key] = original
    return columns


def _combine(reports: list[VerifyReport], name: str) -> VerifyReport:
    """One report over many streams: ``ok`` only if every stream is."""
    bad = next((r for r in reports if not r.ok), None)
    one = reports[0] if len(reports) == 1 else None
    checked = sum(r.checked for r in reports)
    if bad is not None:
        detail = f"stream {bad.stream}: {bad.detail}"
    else:
        detail = f"{len(reports)} stream(s), {checked} rows verified"
    return VerifyReport(
        ok=bad is None,
        checked=checked,
        first_bad_seq=bad.first_bad_seq if bad else None,
        damage=bad.damage if bad else None,
        detail=detail,
        checkpoints_checked=sum(r.checkpoints_checked for r in reports),
        anchors_checked=sum(r.anchors_checked for r in reports),
        first_seq=one.first_seq if one else None,
        last_seq=one.last_seq if one else None,
        head_hash=one.head_hash if one else None,
        stream=name,
        streams=reports,
    )
