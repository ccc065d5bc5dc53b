"""What every store promises, run on memory, JSONL, SQLite and PostgreSQL alike.

The first part holds for every backend (the ``Store`` protocol). The second is gated on the
capability protocols of :mod:`redline.store.base`: a test skips on a backend without the
capability, and :func:`test_capability_matrix` pins which backends have which, so a backend that
loses one fails here instead of a feature going quiet.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import msgspec
import pytest

from redline import AgentEvent, parse_config
from redline.store import open_store, store_class
from redline.store.base import (
    Checkpointed,
    Describable,
    EventQuery,
    FleetRollups,
    ForkAware,
    GroupedCounts,
    KillRecord,
    Leadership,
    Prunable,
    SharedKillState,
    Verifiable,
    capabilities_of,
)
from redline.store.registry import STORE_BACKENDS

from .conftest import Backend

#: Which capability each backend has (the matrix in redline.store.base's docstring).
MATRIX: dict[str, set[str]] = {
    "memory": {"ForkAware", "MetricHistory"},
    "jsonl": {"ForkAware", "Verifiable", "MetricHistory"},
    "sqlite": {
        "ForkAware",
        "Verifiable",
        "Checkpointed",
        "Prunable",
        "GroupedCounts",
        "Describable",
        "SharedKillState",
        "MetricHistory",
        "BudgetLedgers",
    },
    "postgres": {
        "ForkAware",
        "Verifiable",
        "Checkpointed",
        "Prunable",
        "GroupedCounts",
        "Describable",
        "SharedKillState",
        "FleetRollups",
        "Leadership",
        "MetricHistory",
        "BudgetLedgers",
    },
}


def event(i: int, **fields: Any) -> AgentEvent:
    base: dict[str, Any] = {
        "timestamp": 1000.0 + i,
        "agent": f"a{i % 3}",
        "session_id": f"s{i % 2}",
        "user": f"u{i % 4}",
        "event_type": "denial" if i % 5 == 0 else "action",
        "data": {"i": i},
    }
    base.update(fields)
    return AgentEvent(**base)


def ids(rows: Any) -> list[int]:
    return [r.event.data["i"] for r in rows]


def needs(store: Any, capability: type) -> None:
    if not isinstance(store, capability):
        pytest.skip(f"the {store.backend} store is not {capability.__name__}")


def poll_until_changed(store: Any, timeout: float = 2.0) -> Any:
    """``poll_kills()`` until it reports a change (PostgreSQL delivers NOTIFY asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = store.poll_kills()
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.002)


# --- what every store promises -------------------------------------------------------------


def test_capability_matrix(store: Any) -> None:
    """Each backend has exactly the capabilities documented for it, as instance and as class."""
    assert capabilities_of(store) == MATRIX[store.backend]
    assert capabilities_of(type(store)) == MATRIX[store.backend]


def test_persistent_is_false_only_for_memory(store: Any) -> None:
    """``persistent`` is what "not the memory store" means: events outlive the process."""
    assert store.persistent is (store.backend != "memory")


def test_every_field_round_trips(store: Any) -> None:
    """Every AgentEvent field comes back exactly as appended."""
    full = AgentEvent(
        timestamp=1234.5,
        agent="sales",
        event_type="llm_call",
        data={"nested": {"k": [1, 2.5, "x", None, True]}},
        session_id="s-1",
        user="alice",
        cost_usd=0.0125,
        latency_ms=350.25,
        tags=["a", "b"],
        tenant="acme",
        tokens_in=100,
        tokens_out=20,
        tokens_cached=5,
        model="gpt-4",
        tool="search",
        status="ok",
        trace_id="t" * 32,
        span_id="s" * 16,
        parent_span_id="p" * 16,
        level="info",
        killed_scope="agent",
    )
    store.append([full])
    [got] = list(store.query(EventQuery()))
    assert msgspec.to_builtins(got.event) == msgspec.to_builtins(full)
    assert got.seq >= 1


def test_filters_select_by_every_column(store: Any) -> None:
    """agent, session, type, user, since and until each filter; they combine."""
    store.append([event(i) for i in range(30)])
    asc = "asc"
    assert ids(store.query(EventQuery(agent="a1", order=asc))) == list(range(1, 30, 3))
    assert ids(store.query(EventQuery(session_id="s0", order=asc))) == list(range(0, 30, 2))
    assert ids(store.query(EventQuery(event_type="denial", order=asc))) == list(range(0, 30, 5))
    assert ids(store.query(EventQuery(user="u3", order=asc))) == list(range(3, 30, 4))
    window = EventQuery(since=1010.0, until=1019.0, order=asc)
    assert ids(store.query(window)) == list(range(10, 20))
    both = EventQuery(agent="a0", session_id="s1", order=asc)
    assert ids(store.query(both)) == [3, 9, 15, 21, 27]


def test_order_limit_and_count(store: Any) -> None:
    """Newest first by default, ``order="asc"`` oldest first; limit cuts; count ignores limit."""
    store.append([event(i) for i in range(10)])
    store.append([event(i) for i in range(10, 20)])
    assert ids(store.query(EventQuery(limit=3))) == [19, 18, 17]
    assert ids(store.query(EventQuery(limit=3, order="asc"))) == [0, 1, 2]
    assert ids(store.query(EventQuery())) == list(range(19, -1, -1))
    assert store.count(EventQuery(limit=1)) == 20
    assert store.count(EventQuery(agent="a2")) == 6
    assert store.count(EventQuery(agent="nobody")) == 0


def test_seq_cursors_page_both_ways(store: Any) -> None:
    """``after_seq``/``before_seq`` page through the rows by sequence number."""
    store.append([event(i) for i in range(10)])
    seqs = [r.seq for r in store.query(EventQuery(order="asc"))]
    assert seqs == sorted(set(seqs))
    assert len(seqs) == 10
    after = [r.seq for r in store.query(EventQuery(after_seq=seqs[6], order="asc"))]
    assert after == seqs[7:]
    before = [r.seq for r in store.query(EventQuery(before_seq=seqs[2], order="asc"))]
    assert before == seqs[:2]


def test_kill_records_put_replace_load_delete(store: Any) -> None:
    """A kill record keeps every field; a second put on its key replaces it; delete removes it."""
    store.put_kill(KillRecord(scope="global", target="*", created_at=5.0))
    rec = KillRecord(
        scope="global",
        target="*",
        reason="cost",
        actor="policy",
        created_at=10.25,
        expires_at=70.5,
        policy="cost-cap",
    )
    store.put_kill(rec)
    agent = KillRecord(scope="agent", target="x", created_at=11.0)
    store.put_kill(agent)
    assert sorted(store.load_kills(), key=lambda r: r.key) == [agent, rec]
    store.delete_kill("global", "*")
    store.delete_kill("session", "never-killed")
    assert store.load_kills() == [agent]


def test_poll_reports_kill_changes_once(backend: Backend) -> None:
    """A change made through one handle is reported by another handle's poll_kills(), once."""
    one = backend.open()
    two = backend.open()
    assert two.poll_kills() is None  # an empty kill table is no change
    rec = KillRecord(scope="agent", target="x", reason="r", actor="t", created_at=1.0)
    one.put_kill(rec)
    assert poll_until_changed(two) == [rec]
    assert two.poll_kills() is None  # nothing changed since
    one.append([event(1)])
    assert two.poll_kills() is None  # events changed, kill state did not
    one.delete_kill("agent", "x")
    assert poll_until_changed(two) == []
    one.close()
    two.close()


def test_close_is_idempotent(backend: Backend) -> None:
    """close() twice is harmless."""
    store = backend.open()
    store.append([event(1)])
    store.close()
    store.close()


def test_a_forked_child_renews_the_store_and_writes_once(store: Any) -> None:
    """In a child, after_fork() makes the inherited store usable; a persistent store then holds
    the parent's and the child's rows, each once."""
    assert isinstance(store, ForkAware)
    store.append([event(1)])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            store.after_fork()
            store.append([event(2)])
            store.put_kill(KillRecord(scope="agent", target="x", created_at=1.0))
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.append([event(3)])
    expected = [1, 2, 3] if store.persistent else [1, 3]
    assert sorted(ids(store.query(EventQuery()))) == expected
    assert [k.target for k in store.load_kills()] == (["x"] if store.persistent else [])


def test_the_registry_builds_every_backend_from_config(backend: Backend, tmp_path: Any) -> None:
    """store_class() finds each backend by name; its class says whether it is persistent."""
    name = backend.name
    assert name in STORE_BACKENDS
    config = parse_config({})
    cls = store_class(config, name)
    assert cls.backend == name
    assert cls.persistent is (name != "memory")
    if name in ("memory", "jsonl", "sqlite"):
        path = {"jsonl": "events.jsonl", "sqlite": "events.db"}.get(name)
        storage: dict[str, Any] = {"backend": name}
        if path is not None:
            storage["path"] = str(tmp_path / path)
        opened = open_store(parse_config({"storage": storage}), name)
        assert type(opened) is cls
        opened.close()


# --- capabilities ---------------------------------------------------------------------------


def test_chained_rows_number_from_one_and_link(store: Any) -> None:
    """Batches get seq 1..n; each row's prev_hash is the previous row's hash."""
    needs(store, Verifiable)
    store.append([event(i) for i in range(3)])
    store.append([event(i) for i in range(3, 5)])
    rows = list(store.query(EventQuery(order="asc")))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash
    assert ids(rows) == [0, 1, 2, 3, 4]


def test_verify_passes_on_an_untouched_chain(store: Any) -> None:
    """A chain nobody touched verifies, every row checked."""
    needs(store, Verifiable)
    store.append([event(i) for i in range(10)])
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == 10


def test_verify_detects_an_edited_row(backend: Backend) -> None:
    """Changing one stored row's content is reported as ``edited`` at that row."""
    store = backend.open()
    needs(store, Verifiable)
    for i in range(10):
        store.append([event(i)])
    store.close()
    backend.edit(4)
    check = backend.open()
    report = check.verify()
    check.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 4)


def test_verify_detects_a_deleted_row(backend: Backend) -> None:
    """Removing one stored row is reported as ``deleted`` at that row."""
    store = backend.open()
    needs(store, Verifiable)
    for i in range(10):
        store.append([event(i)])
    store.close()
    backend.delete(4)
    check = backend.open()
    report = check.verify()
    check.close()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 4)


def test_head_and_checkpoints_cover_the_chain(store: Any) -> None:
    """head() is the newest row; checkpoint() signs it and checkpoints() lists it."""
    needs(store, Checkpointed)
    store.append([event(i) for i in range(3)])
    newest = next(iter(store.query(EventQuery(limit=1))))
    assert store.head() == (newest.seq, newest.hash)
    cp = store.checkpoint()
    assert cp is not None
    assert cp.head_hash == newest.hash
    assert cp in store.checkpoints()


def test_prune_erases_by_category_cutoff(store: Any) -> None:
    """Old actions go, security events (no cutoff) and recent actions stay; the chain verifies."""
    needs(store, Prunable)
    old = [event(i, event_type="action") for i in range(5)]
    sec = [event(i, event_type="security") for i in range(5, 8)]
    new = [event(i, event_type="action", timestamp=1_000_000.0 + i) for i in range(8, 10)]
    store.append(old + sec + new)
    dry = store.prune({"action": 5000.0}, dry_run=True)
    assert (dry.dry_run, dry.erased) == (True, {"action": 5})
    assert store.count(EventQuery()) == 10
    report = store.prune({"action": 5000.0})
    assert report.erased == {"action": 5}
    assert ids(store.query(EventQuery(order="asc"))) == [5, 6, 7, 8, 9]
    assert store.verify().ok


def test_counts_by_groups_in_the_engine(store: Any) -> None:
    """counts_by() groups matching events by an indexed column, and refuses any other."""
    needs(store, GroupedCounts)
    store.append([event(i) for i in range(12)])
    assert store.counts_by("agent", EventQuery()) == {"a0": 4, "a1": 4, "a2": 4}
    assert store.counts_by("user", EventQuery(agent="a0")) == {"u0": 1, "u1": 1, "u2": 1, "u3": 1}
    with pytest.raises(ValueError, match="cannot group by"):
        store.counts_by("payload", EventQuery())


def test_info_describes_the_store(store: Any) -> None:
    """info() names the store and counts its rows."""
    needs(store, Describable)
    store.append([event(i) for i in range(4)])
    info = store.info()
    assert info["path"]
    assert (info["events"], info["erased"]) == (4, 0)


def test_kill_state_age_tracks_the_last_read(store: Any) -> None:
    """kill_state_age() is infinite before the first read and small right after one."""
    needs(store, SharedKillState)
    assert store.kill_state_age() == float("inf")
    store.load_kills()
    assert store.kill_state_age() < 5.0


def test_fleet_rollups_total_every_writer(backend: Backend) -> None:
    """fleet_snapshot() sums every writer's events per agent over the window."""
    one = backend.open()
    needs(one, FleetRollups)
    two = backend.open()
    now = 1_000_000.0
    one.append([event(i, timestamp=now - 30, event_type="action", cost_usd=0.5) for i in range(3)])
    two.append([event(i, timestamp=now - 20, event_type="denial") for i in range(3, 6)])
    snap = one.fleet_snapshot(300.0, now)
    assert snap.totals.events == 6
    assert snap.totals.denials == 3
    assert snap.totals.cost == pytest.approx(1.5)
    assert {r.agent: r.events for r in snap.agents} == {"a0": 2, "a1": 2, "a2": 2}
    one.close()
    two.close()


def test_leadership_is_held_by_one_process(backend: Backend) -> None:
    """try_lead() is granted to one holder at a time, until it resigns."""
    one = backend.open()
    needs(one, Leadership)
    two = backend.open()
    assert one.try_lead("prune")
    assert not two.try_lead("prune")
    one.resign("prune")
    assert two.try_lead("prune")
    one.close()
    two.close()
