"""The PostgreSQL store: the same contract as SQLite, plus streams, partitions and reconnects.

The first half is one suite run against both engines (``backend`` is parametrised): the same
events, the same tampering (done behind the store's back with a plain connection, as an attacker
would) and the same assertions. With one writer, a PostgreSQL chain (one *stream*) numbers its
rows 1..n like SQLite's, so even ``first_bad_seq`` is compared exactly.

The second half is what only the fleet store does: per-stream chains and verification,
partitions created ahead and dropped by retention, versioned migrations, reconnecting.

Every PostgreSQL test works in a schema of its own (``redline_test_<random>``) in database
``test`` and drops it afterwards; they are skipped, saying why, only when PostgreSQL cannot be
reached (``REDLINE_TEST_PG_DSN`` overrides the default DSN).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import PG_DSN
from redline import AgentEvent, Monitor, parse_config
from redline.store.base import EventQuery, KillRecord
from redline.store.chain import Signer, canonical_payload, chain_hash, load_anchors
from redline.store.sqlite import SQLiteStore
from redline.testing import ManualClock

N = 20
_COLS = (
    "ts, agent, event_type, category, session_id, user, payload, payload_sha256, prev_hash, hash"
)
DAY = 86_400.0


def event(i: int, **fields: Any) -> AgentEvent:
    base: dict[str, Any] = {
        "timestamp": 1000.0 + i,
        "agent": f"a{i % 3}",
        "session_id": f"s{i % 2}",
        "data": {"i": i},
    }
    base.update(fields)
    return AgentEvent(**base)


# --- fixtures ------------------------------------------------------------------------------


class Backend:
    """One engine under the shared suite: open a store, and tamper with it behind its back."""

    name: str
    anchor: str
    key: str

    def open(self, **kw: Any) -> Any:
        raise NotImplementedError

    def execute(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run ``?``-style statements in one transaction on a plain connection."""
        raise NotImplementedError

    def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def verify(self, **kw: Any) -> Any:
        store = self.open()
        try:
            return store.verify(**kw)
        finally:
            store.close()


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "events.db"
        self.anchor = f"{self.path}.anchor"
        self.key = f"{self.path}.key"

    def open(self, **kw: Any) -> SQLiteStore:
        kw.setdefault("anchor_path", self.anchor)
        kw.setdefault("checkpoint_every", 5)
        return SQLiteStore(self.path, **kw)

    def execute(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        conn = sqlite3.connect(self.path)
        with conn:
            for sql, params in statements:
                conn.execute(sql, params)
        conn.close()

    def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, schema: str, tmp: Path) -> None:
        self.schema = schema
        self.anchor = str(tmp / "pg.anchor")
        self.key = str(tmp / "pg.key")

    def open(self, **kw: Any) -> Any:
        from redline.store.postgres import PostgresStore

        kw.setdefault("anchor_path", self.anchor)
        kw.setdefault("checkpoint_every", 5)
        kw.setdefault("signing_key_path", self.key)
        return PostgresStore(PG_DSN, schema=self.schema, **kw)

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s").replace(" user,", ' "user",').replace("user =", '"user" =')

    def execute(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        import psycopg

        with psycopg.connect(PG_DSN) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            for sql, params in statements:
                conn.execute(self._sql(sql), params)  # type: ignore[arg-type]

    def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            rows = conn.execute(self._sql(sql), params).fetchall()  # type: ignore[arg-type]
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The engine under test: the shared suite runs once with each."""
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path)
    return PostgresBackend(request.getfixturevalue("pg_schema"), tmp_path)


@pytest.fixture
def pg(pg_schema: str, tmp_path: Path) -> PostgresBackend:
    """The PostgreSQL engine alone (for what only the fleet store does)."""
    return PostgresBackend(pg_schema, tmp_path)


@pytest.fixture
def chained(backend: Backend) -> Backend:
    """A closed store of 20 events, checkpoints (stored and anchored) at 5, 10, 15, 20."""
    store = backend.open()
    for i in range(N):
        store.append([event(i)])
    store.close()
    assert [c.seq for c in load_anchors(backend.anchor)] == [5, 10, 15, 20]
    return backend


def rewrite_from(backend: Backend, k: int) -> list[tuple[str, tuple[Any, ...]]]:
    """Statements changing row ``k``'s content and recomputing every hash from ``k`` on."""
    prev = backend.fetch("SELECT prev_hash FROM events WHERE seq = ?", (k,))[0][0]
    out = []
    for seq, stored in backend.fetch(
        "SELECT seq, payload FROM events WHERE seq >= ? ORDER BY seq", (k,)
    ):
        payload = canonical_payload(event(seq - 1, data={"i": -1})) if seq == k else bytes(stored)
        digest = hashlib.sha256(payload).hexdigest()
        h = chain_hash(seq, prev, digest)
        out.append(
            (
                "UPDATE events SET payload = ?, payload_sha256 = ?, prev_hash = ?, hash = ? "
                "WHERE seq = ?",
                (payload, digest, prev, h, seq),
            )
        )
        prev = h
    return out


def poll_until_changed(store: Any, timeout: float = 2.0) -> Any:
    """``poll_kills()`` until it reports a change (PostgreSQL delivers NOTIFY asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = store.poll_kills()
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.002)


# --- the shared suite: basics ----------------------------------------------------------------


def test_query_by_user_and_unlimited_streams(backend: Backend) -> None:
    """``user`` filters and groups; a query with no limit streams every row in order."""
    store = backend.open()
    store.append([event(i, user=f"u{i % 4}") for i in range(6_000)])
    assert store.count(EventQuery(user="u1")) == 1_500
    assert store.counts_by("user", EventQuery(agent="a0")) == {
        "u0": 500,
        "u1": 500,
        "u2": 500,
        "u3": 500,
    }
    seen = [r.event.data["i"] for r in store.query(EventQuery(order="asc"))]
    assert seen == list(range(6_000))
    store.close()


# --- the shared suite: tamper evidence -------------------------------------------------------


def test_untouched_store_verifies(chained: Backend) -> None:
    """The fixture store verifies: 20 rows, 4 stored checkpoints and 4 anchored ones."""
    report = chained.verify()
    assert report.ok, report.detail
    assert (report.checked, report.checkpoints_checked, report.anchors_checked) == (20, 4, 4)
    assert (report.first_seq, report.last_seq) == (1, 20)


def test_edited_payload_is_detected(chained: Backend) -> None:
    """Rewriting one row's payload is reported as ``edited`` at that row."""
    forged = canonical_payload(event(4, data={"i": 999}))
    chained.execute(("UPDATE events SET payload = ? WHERE seq = 5", (forged,)))
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_edited_indexed_column_is_detected(chained: Backend) -> None:
    """Changing only the indexed ``agent`` column (payload intact) is ``edited`` at that row."""
    chained.execute(("UPDATE events SET agent = 'someone-else' WHERE seq = 5", ()))
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_edited_payload_with_recomputed_hashes_is_detected(chained: Backend) -> None:
    """An edit with payload_sha256 and hash recomputed breaks the next row's link: edited at 5."""
    prev = chained.fetch("SELECT prev_hash FROM events WHERE seq = 5")[0][0]
    forged = canonical_payload(event(4, data={"i": 999}))
    digest = hashlib.sha256(forged).hexdigest()
    chained.execute(
        (
            "UPDATE events SET payload = ?, payload_sha256 = ?, hash = ? WHERE seq = 5",
            (forged, digest, chain_hash(5, prev, digest)),
        )
    )
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 5)


def test_deleted_row_is_detected(chained: Backend) -> None:
    """Deleting row 7 is ``deleted`` at 7."""
    chained.execute(("DELETE FROM events WHERE seq = 7", ()))
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 7)


def test_deleted_row_with_renumbering_is_detected(chained: Backend) -> None:
    """Deleting row 7 and renumbering the later rows down to close the gap is ``deleted`` at 7."""
    statements = [("DELETE FROM events WHERE seq = 7", ())]
    statements += [("UPDATE events SET seq = seq - 1 WHERE seq = ?", (s,)) for s in range(8, N + 1)]
    chained.execute(*statements)
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 7)


def test_swapped_rows_are_reordered(chained: Backend) -> None:
    """Swapping the whole contents of rows 6 and 7 is ``reordered`` at 6."""
    r6 = chained.fetch(f"SELECT {_COLS} FROM events WHERE seq = 6")[0]
    r7 = chained.fetch(f"SELECT {_COLS} FROM events WHERE seq = 7")[0]
    sets = ", ".join(f"{c.strip()} = ?" for c in _COLS.split(","))
    chained.execute(
        (f"UPDATE events SET {sets} WHERE seq = 6", tuple(r7)),
        (f"UPDATE events SET {sets} WHERE seq = 7", tuple(r6)),
    )
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "reordered", 6)


def test_truncated_tail_is_caught_by_the_anchor_file(chained: Backend) -> None:
    """Dropping rows 18-20 and the stored checkpoint at 20: the anchor file still says 20."""
    chained.execute(
        ("DELETE FROM events WHERE seq > 17", ()),
        ("DELETE FROM checkpoints WHERE seq > 17", ()),
    )
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 18)


def test_truncated_tail_without_anchor_is_caught_by_stored_checkpoint(chained: Backend) -> None:
    """With no anchor file, a stored checkpoint past the end still reveals the truncation."""
    chained.execute(("DELETE FROM events WHERE seq > 17", ()))
    store = chained.open(anchor_path=None)
    report = store.verify()
    store.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "truncated", 18)


def test_rewritten_chain_is_caught_by_signed_checkpoints(chained: Backend) -> None:
    """Recomputing every hash from row 8 links cleanly but fails the checkpoint at 10."""
    chained.execute(*rewrite_from(chained, 8))
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 10)


def test_rewritten_chain_with_checkpoints_dropped_is_caught_by_anchors(chained: Backend) -> None:
    """Rewriting from row 8 and deleting the stored checkpoints after it: the anchors catch it."""
    chained.execute(*rewrite_from(chained, 8), ("DELETE FROM checkpoints WHERE seq >= 8", ()))
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 10)
    assert "anchor" in report.detail


def test_one_forged_checkpoint_fails_against_the_stored_key(chained: Backend) -> None:
    """One checkpoint signed by another key fails: ``rewritten`` at 15."""
    forger = Signer(Ed25519PrivateKey.generate())
    stream, head, created = chained.fetch(
        "SELECT stream, head_hash, created_at FROM checkpoints WHERE seq = 15"
    )[0]
    cp = forger.sign(stream, 15, head, created)
    chained.execute(
        (
            "UPDATE checkpoints SET signature = ?, public_key = ? WHERE seq = 15",
            (cp.signature, cp.public_key),
        )
    )
    report = chained.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 15)


def test_a_pinned_key_catches_checkpoints_resigned_by_a_forger(chained: Backend) -> None:
    """Rewritten from row 8 and every checkpoint re-signed by another key: pinning catches it."""
    real_key = Signer.from_file(chained.key).public_key
    forger = Signer(Ed25519PrivateKey.generate())
    statements = rewrite_from(chained, 8)
    chained.execute(*statements)
    resign = []
    for seq, stream, created in chained.fetch("SELECT seq, stream, created_at FROM checkpoints"):
        head = chained.fetch("SELECT hash FROM events WHERE seq = ?", (seq,))[0][0]
        cp = forger.sign(stream, seq, head, created)
        resign.append(
            (
                "UPDATE checkpoints SET head_hash = ?, signature = ?, public_key = ? WHERE seq = ?",
                (head, cp.signature, cp.public_key, seq),
            )
        )
    chained.execute(*resign)
    store = chained.open(anchor_path=None)
    report = store.verify(public_key=real_key)
    store.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "rewritten", 5)


# --- the shared suite: retention -------------------------------------------------------------


def _retention_store(backend: Backend) -> None:
    """Rows 1-10 old actions, 11-15 old security events, 16-20 recent actions."""
    store = backend.open()
    for i in range(N):
        if i < 10:
            ev = event(i, event_type="action")
        elif i < 15:
            ev = event(i, event_type="security")
        else:
            ev = event(i, event_type="action", timestamp=1_000_000.0 + i)
        store.append([ev])
    store.close()


def _snapshot(backend: Backend) -> tuple[Any, ...]:
    return tuple(
        backend.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in ("events", "checkpoints", "kills")
    )


def test_prune_erases_old_actions_and_keeps_verification_passing(backend: Backend) -> None:
    """Prune erases the 10 old actions; queries no longer see them; the chain still verifies."""
    _retention_store(backend)
    store = backend.open()
    report = store.prune({"action": 5000.0})
    assert report.erased == {"action": 10}
    check = store.verify()
    assert check.ok, check.detail
    assert check.last_seq == 20
    assert store.count(EventQuery()) == 10
    assert store.count(EventQuery(event_type="action")) == 5
    store.append([event(99, timestamp=2_000_000.0)])
    store.close()
    again = backend.verify()
    assert again.ok, again.detail


def test_prune_in_the_middle_leaves_tombstones_that_verify(backend: Backend) -> None:
    """Erasing rows 11-15 (security) leaves tombstones: hidden from queries, chain intact."""
    _retention_store(backend)
    store = backend.open()
    report = store.prune({"security": 5000.0})
    assert (report.erased, report.dropped_rows) == ({"security": 5}, 0)
    assert store.count(EventQuery(event_type="security")) == 0
    assert store.info()["erased"] == 5
    check = store.verify()
    assert check.ok, check.detail
    assert check.checked == 20
    store.close()


def test_prune_dry_run_changes_nothing(backend: Backend) -> None:
    """``dry_run`` reports what would be erased and leaves every table exactly as it was."""
    _retention_store(backend)
    before = _snapshot(backend)
    store = backend.open()
    report = store.prune({"action": 5000.0, "security": 5000.0}, dry_run=True)
    store.close()
    assert report.dry_run
    assert report.erased == {"action": 10, "security": 5}
    assert _snapshot(backend) == before


def test_retention_per_category_through_a_monitor(backend: Backend) -> None:
    """40 days on, ``Monitor.prune()`` erases actions (30 d) and keeps security events (730 d)."""
    clock = ManualClock()
    config = parse_config({"retention": {"action": 30, "security": 730}})
    monitor = Monitor(config, clock=clock, store=backend.open(clock=clock))
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


def test_a_monitor_on_the_store_shares_kills(backend: Backend) -> None:
    """Two Monitors on one store: a kill made by one is enforced by the other."""
    config = parse_config({"kill_switch": {"poll_interval_seconds": 0.01}})
    first = Monitor(config, store=backend.open())
    second = Monitor(config, store=backend.open())
    first.kill_agent("x", reason="cost spike")
    deadline = time.monotonic() + 3.0
    while not second.is_killed("x") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert second.is_killed("x")
    first.close()
    second.close()


# --- PostgreSQL only: migrations -------------------------------------------------------------


def test_migrations_are_versioned_and_idempotent(pg_schema: str) -> None:
    """``upgrade`` applies every migration once, records it, and is a no-op the second time."""
    from redline.store.pg_migrations import LATEST, MIGRATIONS
    from redline.store.postgres import upgrade

    assert upgrade(PG_DSN, pg_schema) == [v for v, _, _ in MIGRATIONS]
    assert upgrade(PG_DSN, pg_schema) == []
    rows = PostgresBackend(pg_schema, Path()).fetch(
        "SELECT version FROM schema_migrations ORDER BY version"
    )
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))
    store = PostgresBackend(pg_schema, Path()).open(signing_key_path=None, anchor_path=None)
    assert store.upgrade() == []
    store.close()


def test_schema_names_are_checked(pg_schema: str) -> None:
    """A schema name that is not a plain identifier is refused before any SQL runs."""
    from redline.store.postgres import PostgresStore

    with pytest.raises(ValueError, match=r"storage\.schema"):
        PostgresStore(PG_DSN, schema='x"; DROP TABLE y; --')


def test_an_unreachable_server_is_a_store_error(pg_schema: str) -> None:
    """Opening against a port nobody listens on raises ``StoreError`` (not a driver error)."""
    from redline.exceptions import StoreError
    from redline.store.postgres import PostgresStore

    with pytest.raises(StoreError, match="cannot open"):
        PostgresStore("host=127.0.0.1 port=1 dbname=test user=postgres", connect_timeout=2)


def test_open_store_builds_a_postgres_store_from_config(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``storage.backend: postgres`` with ``REDLINE_PG_DSN`` (and ``REDLINE_PG_SCHEMA``) works."""
    monkeypatch.setenv("REDLINE_PG_DSN", PG_DSN)
    monkeypatch.setenv("REDLINE_PG_SCHEMA", pg_schema)
    with Monitor(parse_config({"storage": {"backend": "postgres"}})) as monitor:
        assert monitor.store.backend == "postgres"
        monitor.record(AgentEvent(agent="a"))
        monitor.flush()
        assert monitor.get_events(agent="a")[0]["agent"] == "a"
        assert getattr(monitor.store, "schema", None) == pg_schema


# --- PostgreSQL only: streams ----------------------------------------------------------------


def test_each_writer_has_its_own_stream_and_the_fleet_verifies(pg: PostgresBackend) -> None:
    """Two writers interleave; each chain counts 1..n; verify reports both streams ok."""
    one, two = pg.open(), pg.open()
    assert one.stream != two.stream
    for i in range(10):
        (one if i % 2 else two).append([event(i), event(i + 100)])
    report = one.verify()
    assert report.ok, report.detail
    assert report.checked == 20
    assert sorted(r.stream for r in report.streams) == sorted([one.stream, two.stream])
    assert all(r.ok and (r.first_seq, r.last_seq) == (1, 10) for r in report.streams)
    ids = [r.seq for r in one.query(EventQuery(order="asc", limit=None))]
    assert sorted(ids) == list(range(1, 21))
    assert [s["stream"] for s in one.streams()] == [one.stream, two.stream]
    one.close()
    two.close()


def test_an_edit_in_one_stream_fails_only_that_stream(pg: PostgresBackend) -> None:
    """Editing a row of stream A: A is ``edited`` at that seq, B still ok, the whole not ok."""
    one, two = pg.open(), pg.open()
    for i in range(6):
        one.append([event(i)])
        two.append([event(i + 50)])
    a, b = one.stream, two.stream
    one.close()
    two.close()
    forged = canonical_payload(event(3, data={"i": 999}))
    pg.execute(("UPDATE events SET payload = ? WHERE stream = ? AND seq = 4", (forged, a)))
    report = pg.verify()
    assert not report.ok
    by = {r.stream: r for r in report.streams}
    assert (by[a].ok, by[a].damage, by[a].first_bad_seq) == (False, "edited", 4)
    assert by[b].ok
    assert by[b].checked == 6
    assert (report.damage, report.first_bad_seq) == ("edited", 4)
    assert a in report.detail


def test_a_stream_erased_whole_is_caught_by_the_anchor_file(pg: PostgresBackend) -> None:
    """Deleting a stream's rows, checkpoints and registration: its anchors say it existed."""
    one, two = pg.open(), pg.open()
    for i in range(10):
        one.append([event(i)])
        two.append([event(i)])
    gone = one.stream
    one.close()
    two.close()
    pg.execute(
        ("DELETE FROM events WHERE stream = ?", (gone,)),
        ("DELETE FROM checkpoints WHERE stream = ?", (gone,)),
        ("DELETE FROM streams WHERE stream = ?", (gone,)),
    )
    report = pg.verify()
    by = {r.stream: r for r in report.streams}
    assert (by[gone].ok, by[gone].damage) == (False, "truncated")
    assert by[two.stream].ok


def test_rows_of_an_unregistered_stream_fail(pg: PostgresBackend) -> None:
    """Rows whose stream is not in ``streams`` (registration deleted) are not vouched for."""
    store = pg.open()
    store.append([event(i) for i in range(3)])
    store.close()
    pg.execute(("DELETE FROM streams WHERE stream = ?", (store.stream,)))
    report = pg.verify()
    assert (report.ok, report.damage) == (False, "rewritten")
    assert "no writer registered" in report.detail


def test_cursor_pagination_crosses_streams(pg: PostgresBackend) -> None:
    """``after_seq`` pages by the fleet-wide row id, whichever stream wrote the row."""
    one, two = pg.open(), pg.open()
    one.append([event(i) for i in range(5)])
    two.append([event(i) for i in range(5, 10)])
    page = list(one.query(EventQuery(after_seq=3, order="asc", limit=4)))
    assert [r.seq for r in page] == [4, 5, 6, 7]
    assert one.head()[0] == 10
    one.close()
    two.close()


def test_nul_characters_in_text_fields_are_stored_and_verify(pg: PostgresBackend) -> None:
    """An agent name holding NUL (PostgreSQL text cannot) is stored, queryable and verifies."""
    store = pg.open()
    store.append([event(1, agent="bad\x00name", session_id="s\x00")])
    [row] = store.query(EventQuery())
    assert row.event.agent == "bad\x00name"
    assert store.verify().ok
    store.close()


# --- PostgreSQL only: partitions -------------------------------------------------------------


def _clock_at(day: int) -> ManualClock:
    clock = ManualClock()
    clock.set(day * DAY + 3600.0)
    return clock


def test_daily_partitions_are_created_ahead(pg: PostgresBackend) -> None:
    """Opening the store creates today's partition and ``partitions_ahead`` more."""
    day = 20_000  # 2024-10-04
    store = pg.open(clock=_clock_at(day), partitions_ahead=3)
    names = [name for name, _lo, _hi in store.partitions()]
    assert names == ["events_p20241004", "events_p20241005", "events_p20241006", "events_p20241007"]
    store.close()


def test_monthly_partitions_are_created_ahead(pg: PostgresBackend) -> None:
    """``partition="monthly"`` makes calendar-month partitions (UTC)."""
    store = pg.open(clock=_clock_at(20_000), partition="monthly", partitions_ahead=2)
    parts = store.partitions()
    assert [name for name, _lo, _hi in parts] == [
        "events_p202410",
        "events_p202411",
        "events_p202412",
    ]
    assert parts[0][1:] == (1727740800.0, 1730419200.0)  # 2024-10-01 .. 2024-11-01
    store.append([event(1, timestamp=1729000000.0)])
    assert next(n for n, _, _ in store.partitions()) == "events_p202410"
    store.close()


def test_events_outside_every_partition_get_one_on_demand(pg: PostgresBackend) -> None:
    """An event from long ago gets its own day's partition; nothing lands in a catch-all."""
    store = pg.open(clock=_clock_at(20_000), partitions_ahead=0)
    store.append([event(1, timestamp=5 * DAY + 1), event(2, timestamp=20_000 * DAY + 5)])
    names = [name for name, _lo, _hi in store.partitions()]
    assert names == ["events_p19700106", "events_p20241004"]
    assert store.count(EventQuery()) == 2
    store.close()


def test_retention_drops_a_whole_partition_and_moves_the_anchor(pg: PostgresBackend) -> None:
    """Day 0 (all expired) is dropped whole; day 1 keeps its security rows; the chain verifies."""
    store = pg.open(clock=_clock_at(100), partitions_ahead=0)
    store.append([event(i, timestamp=10.0 + i) for i in range(10)])  # day 0: actions
    store.append(
        [event(i, timestamp=DAY + 10 + i, event_type="security") for i in range(3)]
        + [event(i, timestamp=DAY + 20 + i) for i in range(3)]
    )  # day 1: security + actions
    store.append([event(i, timestamp=100 * DAY + i) for i in range(4)])  # recent
    cutoffs = {"action": 50 * DAY, "security": 0.0}
    dry = store.prune(cutoffs, dry_run=True)
    assert dry.dropped_partitions == ["events_p19700101"]
    assert "events_p19700101" in [n for n, _, _ in store.partitions()]
    report = store.prune(cutoffs)
    assert report.dropped_partitions == ["events_p19700101"]
    assert report.dropped_rows == 10
    assert report.erased == {"action": 13, "security": 0}
    assert report.anchors == {store.stream: 10}
    assert [n for n, _, _ in store.partitions()] == ["events_p19700102", "events_p19700411"]
    assert store.count(EventQuery()) == 7
    check = store.verify()
    assert check.ok, check.detail
    assert (check.first_seq, check.last_seq, check.checked) == (11, 20, 10)
    store.append([event(1, timestamp=100 * DAY + 50)])
    assert store.verify().ok
    store.close()


def test_a_partition_that_is_not_a_chain_prefix_is_tombstoned_instead(pg: PostgresBackend) -> None:
    """A late event (old timestamp, new seq) pins its partition: rows are tombstoned, not dropped."""
    store = pg.open(clock=_clock_at(100), partitions_ahead=0)
    store.append([event(i, timestamp=10.0 + i) for i in range(5)])  # day 0, seq 1-5
    store.append([event(i, timestamp=5 * DAY + i) for i in range(5)])  # day 5, seq 6-10
    store.append([event(99, timestamp=20.0)])  # late: day 0, seq 11
    report = store.prune({"action": 2 * DAY})
    assert report.dropped_partitions == []
    assert report.erased == {"action": 6}
    check = store.verify()
    assert check.ok, check.detail
    assert check.checked == 11
    store.close()


# --- PostgreSQL only: connections ------------------------------------------------------------


def _terminate(pid: int) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_the_writer_reconnects_after_its_connection_is_killed(pg: PostgresBackend) -> None:
    """A killed writer connection fails one append (StoreError); the retry stores it once."""
    from redline.exceptions import StoreError

    store = pg.open()
    store.append([event(i) for i in range(5)])
    assert store._wconn is not None
    _terminate(store._wconn.info.backend_pid)
    batch = [event(i) for i in range(5, 10)]
    with pytest.raises(StoreError):
        store.append(batch)
    store.append(batch)
    assert store.count(EventQuery()) == 10
    info = store.info()
    assert info["reconnects"] == 1
    assert info["last_error"]
    assert store.verify().ok
    store.close()


def test_a_batch_whose_commit_landed_is_not_stored_twice(pg: PostgresBackend) -> None:
    """If the connection broke after COMMIT reached the server, the retried batch is skipped."""
    from redline.store.postgres._core import _Inflight

    store = pg.open()
    batch = [event(i) for i in range(5)]
    store.append(batch)
    head = store._head
    assert head is not None
    # What append() leaves behind when the connection dies during COMMIT.
    store._inflight = _Inflight(batch[0], batch[-1], len(batch), head[0], head[1])
    store._head = None
    store.append([*batch, event(5)])
    assert [r.event.data["i"] for r in store.query(EventQuery(order="asc"))] == list(range(6))
    assert store.verify().ok
    store.close()


def test_a_killed_listener_reconnects_and_rereads(pg: PostgresBackend) -> None:
    """After its LISTEN connection dies, ``poll_kills`` reconnects and re-reads the table."""
    store, other = pg.open(reread_interval=60.0), pg.open()
    assert store.poll_kills() is None
    first_pid = store.listener_pid
    assert first_pid is not None
    _terminate(first_pid)
    rec = KillRecord(scope="agent", target="x", created_at=1.0)
    other.put_kill(rec)  # its NOTIFY cannot reach the dead connection
    assert poll_until_changed(store, timeout=5.0) == [rec]
    assert store.listener_pid not in (None, first_pid)
    assert store.info()["reconnects"] == 1
    store.close()
    other.close()


def test_kill_state_age_tracks_the_last_read(pg: PostgresBackend) -> None:
    """``kill_state_age()`` is infinite before any read and small right after one."""
    store = pg.open(reread_interval=0.0)
    assert store.kill_state_age() == float("inf")
    store.poll_kills()
    assert store.kill_state_age() < 1.0
    store.close()


def test_a_partition_dropped_by_another_process_is_recreated(pg: PostgresBackend) -> None:
    """A writer whose cached partition was dropped elsewhere fails once, then re-creates it."""
    from redline.exceptions import StoreError

    writer = pg.open(clock=_clock_at(100), partitions_ahead=0)
    writer.append([event(1, timestamp=10.0)])
    pruner = pg.open(clock=_clock_at(100), partitions_ahead=0)
    assert pruner.prune({"action": 50 * DAY}).dropped_partitions == ["events_p19700101"]
    late = [event(2, timestamp=20.0)]
    with pytest.raises(StoreError):
        writer.append(late)  # the background writer keeps the batch and retries
    writer.append(late)
    assert writer.count(EventQuery()) == 1
    assert writer.verify().ok
    writer.close()
    pruner.close()


def test_a_store_without_auto_upgrade_needs_a_migrated_schema(pg: PostgresBackend) -> None:
    """``auto_upgrade=False`` on an unmigrated schema says to run ``redline db upgrade``."""
    from redline.exceptions import StoreError

    with pytest.raises(StoreError, match="redline db upgrade"):
        pg.open(auto_upgrade=False)
    pg.open().close()
    pg.open(auto_upgrade=False).close()


def test_a_schema_newer_than_this_build_is_refused(pg: PostgresBackend) -> None:
    """A schema migrated by a newer Redline is not written by an older one."""
    from redline.exceptions import StoreError

    pg.open().close()
    pg.execute(("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')", ()))
    with pytest.raises(StoreError, match="newer"):
        pg.open()
    with pytest.raises(StoreError, match="newer"):
        pg.open(auto_upgrade=False)


def test_a_store_inherited_across_fork_refuses_to_append(pg: PostgresBackend) -> None:
    """A child process must open its own store: appending to the parent's stream would fork it."""
    from redline.exceptions import StoreError

    store = pg.open()
    store.pid = -1  # what a forked child sees: os.getpid() differs from the opener's pid
    with pytest.raises(StoreError, match="fork"):
        store.append([event(1)])
    store.pid = os.getpid()
    store.close()
