"""The JSONL store: the peer's file format, hash-chained, with kill state in a file beside it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.store.base import EventQuery, KillRecord
from redline.store.jsonl import JsonlStore

#: The published peer's ``AgentEvent`` fields, each written on every line by its ``EventStore``.
PEER_FIELDS = {
    "timestamp": (int, float),
    "agent": str,
    "event_type": str,
    "data": dict,
    "session_id": (str, type(None)),
    "user": (str, type(None)),
    "cost_usd": (int, float, type(None)),
    "latency_ms": (int, float, type(None)),
    "tags": list,
}


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "events.jsonl"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_lines_carry_every_peer_field(log_path: Path) -> None:
    """Every line is a JSON object with all nine peer fields, typed as the peer's, defaults too."""
    store = JsonlStore(log_path)
    store.append(
        [
            AgentEvent(timestamp=1.0, agent="a"),
            AgentEvent(
                timestamp=2.5,
                agent="b",
                event_type="denial",
                session_id="s",
                user="u",
                cost_usd=0.5,
                latency_ms=12.0,
                tags=["t"],
                data={"k": "v"},
                model="gpt-4",
            ),
        ]
    )
    first, second = lines(log_path)
    for obj in (first, second):
        for name, kind in PEER_FIELDS.items():
            assert name in obj, f"{name} missing from {obj}"
            assert isinstance(obj[name], kind), (name, obj[name])
    assert first["event_type"] == "action"
    assert first["data"] == {}
    assert first["tags"] == []
    assert second["model"] == "gpt-4"  # Redline's extra fields ride along
    assert (first["seq"], second["seq"]) == (1, 2)
    assert second["prev_hash"] == first["hash"]


def test_peer_style_filter_finds_default_action_events(log_path: Path) -> None:
    """The peer's reader filters with ``entry.get("event_type") == wanted``: actions are found."""
    store = JsonlStore(log_path)
    store.append([AgentEvent(timestamp=float(i), agent="a") for i in range(3)])
    found = [e for e in lines(log_path) if e.get("event_type") == "action"]
    assert len(found) == 3


def test_chain_verifies_and_queries_round_trip(log_path: Path) -> None:
    """Appended batches verify, and queries give back the events as they went in."""
    store = JsonlStore(log_path)
    sent = [AgentEvent(timestamp=float(i), agent=f"a{i % 2}", data={"i": i}) for i in range(10)]
    store.append(sent[:4])
    store.append(sent[4:])
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == 10
    got = [s.event for s in store.query(EventQuery(order="asc"))]
    assert got == sent
    assert [s.event.data["i"] for s in store.query(EventQuery(agent="a1", limit=2))] == [9, 7]
    assert store.count(EventQuery(agent="a0")) == 5


def test_edited_line_is_detected(log_path: Path) -> None:
    """Changing a value inside line 3 is reported as ``edited`` at seq 3."""
    store = JsonlStore(log_path)
    store.append([AgentEvent(timestamp=float(i), agent="a", data={"i": i}) for i in range(5)])
    text = log_path.read_text(encoding="utf-8").splitlines()
    obj = json.loads(text[2])
    obj["data"]["i"] = 999
    text[2] = json.dumps(obj)
    log_path.write_text("\n".join(text) + "\n", encoding="utf-8")
    report = store.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "edited", 3)


def test_deleted_line_is_detected(log_path: Path) -> None:
    """Removing line 2 is reported as ``deleted`` at seq 2."""
    store = JsonlStore(log_path)
    store.append([AgentEvent(timestamp=float(i), agent="a") for i in range(4)])
    text = log_path.read_text(encoding="utf-8").splitlines()
    del text[1]
    log_path.write_text("\n".join(text) + "\n", encoding="utf-8")
    report = store.verify()
    assert (report.ok, report.damage, report.first_bad_seq) == (False, "deleted", 2)


def test_kills_persist_to_the_state_file_and_reach_another_store(
    log_path: Path, tmp_path: Path
) -> None:
    """put_kill writes the state file; a second JsonlStore on it sees the change in poll_kills."""
    state = tmp_path / "kills.json"
    one = JsonlStore(log_path, kill_state_path=state)
    two = JsonlStore(log_path, kill_state_path=state)
    assert two.poll_kills() is None
    rec = KillRecord(scope="agent", target="x", reason="why", actor="t", created_at=5.0)
    one.put_kill(rec)
    assert json.loads(state.read_text())["records"][0]["target"] == "x"
    assert two.poll_kills() == [rec]
    assert two.poll_kills() is None
    one.delete_kill("agent", "x")
    assert two.poll_kills() == []
    assert JsonlStore(log_path, kill_state_path=state).load_kills() == []


def test_monitor_on_a_jsonl_path_keeps_kills_across_restarts(tmp_path: Path) -> None:
    """``storage.path: x.jsonl`` picks this store; a kill survives a new Monitor on the file."""
    config = parse_config({"storage": {"path": str(tmp_path / "m.jsonl")}})
    with Monitor(config) as first:
        assert first.store.backend == "jsonl"
        first.kill_agent("x", reason="test")
    with Monitor(config) as second:
        assert second.is_killed("x")
        assert second.verify().ok


_APPEND_CHILD = """
import sys
from redline.events import AgentEvent
from redline.store.jsonl import JsonlStore
store = JsonlStore(sys.argv[1])
name = sys.argv[2]
print("READY", flush=True)
sys.stdin.readline()
for start in range(0, 2000, 20):
    store.append([AgentEvent(timestamp=1.0, agent=name, data={"i": i}) for i in range(start, start + 20)])
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_two_processes_append_to_one_chain(log_path: Path, spawn: Callable[..., Any]) -> None:
    """Two processes appending 2,000 events each keep one chain: 4,000 lines that verify."""
    children = [spawn(_APPEND_CHILD, str(log_path), name) for name in ("p1", "p2")]
    for child in children:
        child.expect("READY")
    for child in children:
        child.send("go")
    for child in children:
        child.expect("DONE", timeout=120)
        child.wait()
    store = JsonlStore(log_path)
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == 4000
    assert [o["seq"] for o in lines(log_path)] == list(range(1, 4001))
    for name in ("p1", "p2"):
        seen = [s.event.data["i"] for s in store.query(EventQuery(agent=name, order="asc"))]
        assert seen == list(range(2000))


_KILL_CHILD = """
import sys
from redline.store.base import KillRecord
from redline.store.jsonl import JsonlStore
store = JsonlStore(sys.argv[1])
name = sys.argv[2]
print("READY", flush=True)
sys.stdin.readline()
for i in range(200):
    store.put_kill(KillRecord(scope="agent", target=f"{name}-{i}", created_at=1.0))
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_kill_writers_in_two_processes_lose_no_update(
    log_path: Path, spawn: Callable[..., Any]
) -> None:
    """Two processes each killing 200 agents at once: all 400 kills are in the state file."""
    children = [spawn(_KILL_CHILD, str(log_path), name) for name in ("p1", "p2")]
    for child in children:
        child.expect("READY")
    for child in children:
        child.send("go")
    for child in children:
        child.expect("DONE", timeout=120)
        child.wait()
    assert len(JsonlStore(log_path).load_kills()) == 400


def test_torn_last_line_does_not_swallow_the_next_append(log_path: Path) -> None:
    """After a torn last line (a crash mid-write), the next batch stays readable and verifies."""
    store = JsonlStore(log_path)
    store.append([AgentEvent(timestamp=float(i), agent="a", data={"i": i}) for i in range(3)])
    with log_path.open("ab") as fh:
        fh.write(b'{"hash":"0123","prev_hash":"4567","seq":4,"agent":"a","tim')
    store.append([AgentEvent(timestamp=float(i), agent="a", data={"i": i}) for i in range(3, 5)])
    got = [s.event.data["i"] for s in store.query(EventQuery(order="asc"))]
    assert got == [0, 1, 2, 3, 4]
    report = store.verify()
    assert report.ok, report.detail
    assert report.checked == 5
