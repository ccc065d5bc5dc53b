"""Specification of compliance exports: SOC 2, GDPR, JSON, CSV, JSONL, manifests and archives.

Every test runs a real monitor on a real SQLite file in ``tmp_path`` with a manual clock; what is
recorded is flushed by the export itself (``monitor.export`` flushes first), never waited for.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, EventQuery, Monitor, parse_config
from redline.compliance import (
    CSV_COLUMNS,
    FORMATS,
    archive_name,
    archive_session,
    export,
    read_archive,
    replay_session,
)
from redline.exceptions import IntegrityError
from redline.store.chain import Checkpoint
from redline.store.memory import MemoryStore
from redline.store.sqlite import SQLiteStore
from redline.testing import ManualClock

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def make_monitor(tmp_path: Path, clock: ManualClock, **extra: Any) -> Monitor:
    """A monitor on ``tmp_path/e.db`` with seed-000-style metadata."""
    raw: dict[str, Any] = {
        "metadata": {"name": "acme-agents", "description": "prod fleet", "author": "sec@acme"},
        "storage": {"path": str(tmp_path / "e.db")},
        **extra,
    }
    return Monitor(parse_config(raw), clock=clock)


@pytest.fixture
def monitor(tmp_path: Path, clock: ManualClock) -> Iterator[Monitor]:
    m = make_monitor(tmp_path, clock)
    yield m
    m.close()


def record(monitor: Monitor, clock: ManualClock, n: int = 1, **fields: Any) -> None:
    """Record ``n`` events one second apart at the clock's time."""
    fields.setdefault("agent", "sales")
    fields.setdefault("event_type", "tool_call")
    for _ in range(n):
        monitor.record(AgentEvent(timestamp=clock.time(), **fields))
        clock.advance(1)


def fleet(monitor: Monitor, clock: ManualClock) -> None:
    """10 sales tool calls (u1), 5 support llm calls (u2), 2 denials, a kill and a revive."""
    record(
        monitor, clock, 10, agent="sales", tool="search", status="ok", user="u1", session_id="s1"
    )
    record(monitor, clock, 5, agent="support", event_type="llm_call", cost_usd=0.01, user="u2")
    record(monitor, clock, 2, agent="sales", event_type="denial", data={"reason": "pii"})
    monitor.kill_agent("sales", reason="cost spike", actor="alice")
    clock.advance(45)
    monitor.revive(agent="sales", actor="bob")


def content_and_manifest(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Split an export into the bytes before its last line and the manifest on that line."""
    body, _, last = data.rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    line = json.loads(last if last.startswith(b"{") else b"{" + last)
    return body, line["manifest"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- JSON ----------------------------------------------------------------------------------


def test_json_export_is_one_document_with_every_event_and_a_manifest(
    monitor: Monitor, clock: ManualClock
) -> None:
    """``json`` is a document: format, generated_at, filters, events (with seq and hashes), manifest."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("json"))
    assert doc["format"] == "redline-events/v1"
    assert doc["generated_at"] == "2023-11-14T22:14:22.000000Z"
    assert doc["filters"]["agent"] is None
    events = doc["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(len(e["hash"]) == 64 and len(e["prev_hash"]) == 64 for e in events)
    assert events[0]["prev_hash"] == "0" * 64
    assert events[1]["prev_hash"] == events[0]["hash"]
    assert doc["manifest"]["count"] == len(events)
    assert (doc["manifest"]["first_seq"], doc["manifest"]["last_seq"]) == (1, len(events))


def test_json_event_matches_stored_event_to_dict(monitor: Monitor, clock: ManualClock) -> None:
    """Each exported event is ``StoredEvent.to_dict()`` with the unset fields spelled out."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("json"))
    stored = [s.to_dict() for s in monitor.events(order="asc")]
    assert len(doc["events"]) == len(stored)
    for exported, original in zip(doc["events"], stored, strict=True):
        assert {k: v for k, v in exported.items() if k in original} == original
        assert all(v in (None, [], {}, "action") for k, v in exported.items() if k not in original)


def test_json_manifest_sha256_covers_every_byte_before_the_manifest_line(
    monitor: Monitor, clock: ManualClock
) -> None:
    """The manifest's sha256 is the SHA-256 of all bytes before the manifest line."""
    fleet(monitor, clock)
    data = monitor.export("json").encode()
    body, manifest = content_and_manifest(data)
    assert manifest["sha256"] == sha256(body)
    assert manifest["bytes"] == len(body)


def test_empty_json_export_is_valid(monitor: Monitor) -> None:
    """An export with no matching events is still a valid document with a zero count."""
    doc = json.loads(monitor.export("json", agent="nobody"))
    assert doc["events"] == []
    assert doc["manifest"]["count"] == 0
    assert doc["manifest"]["first_seq"] is None


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_is_one_event_per_line_then_the_manifest(
    monitor: Monitor, clock: ManualClock
) -> None:
    """``jsonl``: one event per line, then ``{"manifest": ...}`` whose sha256 covers the lines before."""
    fleet(monitor, clock)
    data = monitor.export("jsonl").encode()
    lines = data.splitlines(keepends=True)
    manifest = json.loads(lines[-1])["manifest"]
    events = [json.loads(line) for line in lines[:-1]]
    assert len(events) == manifest["count"] == monitor.store.count(EventQuery())
    assert manifest["sha256"] == sha256(b"".join(lines[:-1]))
    assert manifest["format"] == "jsonl"
    assert manifest["verification"]["ok"] is True


# --- CSV -----------------------------------------------------------------------------------


def test_csv_has_fixed_columns_and_one_row_per_event(monitor: Monitor, clock: ManualClock) -> None:
    """``csv``: the fixed header, then one row per event with ISO UTC times and JSON data."""
    fleet(monitor, clock)
    rows = list(csv.DictReader(io.StringIO(monitor.export("csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    first = rows[0]
    assert first["seq"] == "1"
    assert first["timestamp"] == "2023-11-14T22:13:20.000000Z"
    assert (first["agent"], first["event_type"], first["category"]) == (
        "sales",
        "tool_call",
        "action",
    )
    assert (first["tool"], first["status"], first["user"]) == ("search", "ok", "u1")
    llm = next(r for r in rows if r["event_type"] == "llm_call")
    assert (llm["cost_usd"], llm["category"]) == ("0.01", "performance")
    denial = next(r for r in rows if r["event_type"] == "denial")
    assert json.loads(denial["data"]) == {"reason": "pii"}
    assert len(rows) == len(list(monitor.events()))


def test_csv_cells_that_start_a_formula_are_neutralised(
    monitor: Monitor, clock: ManualClock
) -> None:
    """Cells starting with = + - @ get a leading quote (OWASP CSV injection)."""
    record(
        monitor,
        clock,
        agent="=HYPERLINK(1)",
        tool="+SUM(A1)",
        user="@evil",
        session_id="-2+3",
        model="gpt=4",
    )
    row = next(csv.DictReader(io.StringIO(monitor.export("csv"))))
    assert row["agent"] == "'=HYPERLINK(1)"
    assert row["tool"] == "'+SUM(A1)"
    assert row["user"] == "'@evil"
    assert row["session_id"] == "'-2+3"
    assert row["model"] == "gpt=4"


def test_csv_to_a_path_writes_the_manifest_beside_it(
    monitor: Monitor, clock: ManualClock, tmp_path: Path
) -> None:
    """A CSV to a path returns the manifest and writes ``<path>.manifest.json``; sha256 is the file's."""
    fleet(monitor, clock)
    out = tmp_path / "events.csv"
    manifest = monitor.export("csv", output=out)
    assert manifest["sha256"] == sha256(out.read_bytes())
    assert json.loads((tmp_path / "events.csv.manifest.json").read_text()) == manifest


# --- streaming targets ---------------------------------------------------------------------


def test_export_streams_into_a_binary_file_object(monitor: Monitor, clock: ManualClock) -> None:
    """With a binary file object as ``output`` the report goes there and the manifest is returned."""
    fleet(monitor, clock)
    buf = io.BytesIO()
    manifest = monitor.export("jsonl", output=buf)
    body, written = content_and_manifest(buf.getvalue())
    assert written == json.loads(json.dumps(manifest))
    assert manifest["sha256"] == sha256(body)


def test_export_to_a_path_leaves_only_the_finished_file(
    monitor: Monitor, clock: ManualClock, tmp_path: Path
) -> None:
    """With a path as ``output`` the file is complete and no ``.partial`` is left behind."""
    fleet(monitor, clock)
    out = tmp_path / "report.json"
    manifest = monitor.export("soc2", output=str(out))
    assert json.loads(out.read_bytes())["manifest"] == json.loads(json.dumps(manifest))
    assert not (tmp_path / "report.json.partial").exists()


def test_progress_is_called_every_ten_thousand_events(monitor: Monitor, tmp_path: Path) -> None:
    """``progress(n)`` gets the running count every 10,000 events and once at the end."""
    monitor.store.append([AgentEvent(timestamp=T0 + i, agent="a") for i in range(25_000)])
    seen: list[int] = []
    manifest = monitor.export(
        "jsonl", output=tmp_path / "x.jsonl", progress=seen.append, total=25_000, verify=False
    )
    assert seen == [10_000, 20_000, 25_000]
    assert (manifest["count"], manifest["expected_count"]) == (25_000, 25_000)


# --- filters -------------------------------------------------------------------------------


def test_agent_filter_keeps_only_that_agent(monitor: Monitor, clock: ManualClock) -> None:
    """``agent=`` exports that agent's events only and records the filter."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("json", agent="support"))
    assert {e["agent"] for e in doc["events"]} == {"support"}
    assert len(doc["events"]) == 5
    assert doc["filters"]["agent"] == doc["manifest"]["filters"]["agent"] == "support"


def test_event_type_filter_keeps_only_that_type(monitor: Monitor, clock: ManualClock) -> None:
    """``event_type=`` exports that type only."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("json", event_type="denial"))
    assert [e["event_type"] for e in doc["events"]] == ["denial", "denial"]


def test_since_until_honour_iso_offsets(monitor: Monitor, clock: ManualClock) -> None:
    """``since``/``until`` in ISO 8601 with an offset select the same instants as UTC."""
    record(monitor, clock, 10)  # T0 .. T0+9 = 22:13:20Z .. 22:13:29Z
    doc = json.loads(
        monitor.export("json", since="2023-11-14T23:13:23+01:00", until="2023-11-14T17:13:25-05:00")
    )
    assert [e["timestamp"] for e in doc["events"]] == [T0 + 3, T0 + 4, T0 + 5]
    assert doc["filters"]["since"] == "2023-11-14T22:13:23.000000Z"


def test_since_accepts_an_age_relative_to_the_monitor_clock(
    monitor: Monitor, clock: ManualClock
) -> None:
    """``since="5s"`` means five seconds before the monitor clock's now."""
    record(monitor, clock, 10)  # clock ends at T0+10
    doc = json.loads(monitor.export("json", since="5s"))
    assert [e["timestamp"] for e in doc["events"]] == [T0 + 5 + i for i in range(5)]


def test_since_after_until_is_rejected(monitor: Monitor) -> None:
    """A period whose start is after its end raises ValueError instead of exporting nothing."""
    with pytest.raises(ValueError, match="after"):
        monitor.export("json", since="2023-11-15T00:00:00Z", until="2023-11-14T00:00:00Z")


def test_unknown_format_names_the_accepted_ones(monitor: Monitor) -> None:
    """An unknown format raises ValueError listing soc2, gdpr, json, csv, jsonl."""
    with pytest.raises(ValueError, match="soc2, gdpr, json, csv, jsonl") as info:
        monitor.export("xml")
    assert all(f in str(info.value) for f in FORMATS)


# --- SOC 2 ---------------------------------------------------------------------------------


def soc2(monitor: Monitor, **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(monitor.export("soc2", **kw))
    return doc


def test_soc2_counts_events_by_type_agent_category_and_outcome(
    monitor: Monitor, clock: ManualClock
) -> None:
    """SOC 2 totals count every event by type, agent, category and outcome."""
    fleet(monitor, clock)
    totals = soc2(monitor)["totals"]
    assert totals["by_type"] == {
        "alert": 3,  # the kill's, the revive notice, the kill's resolution
        "denial": 2,
        "kill": 1,
        "llm_call": 5,
        "revive": 1,
        "tool_call": 10,
    }
    assert totals["by_agent"] == {"sales": 17, "support": 5}
    assert totals["by_category"] == {"action": 10, "performance": 5, "security": 7}
    assert totals["by_outcome"] == {"ok": 10, "error": 0, "denied": 2, "none": 10}
    assert totals["events"] == 22
    assert totals["cost_usd"] == pytest.approx(0.05)


def test_soc2_lists_kills_and_revives_with_actor_reason_and_time_to_recover(
    monitor: Monitor, clock: ManualClock
) -> None:
    """CC6.1 lists each kill and revive with actor, reason, scope and target; CC7.3 gives MTTR."""
    fleet(monitor, clock)
    doc = soc2(monitor)
    kill, revive = doc["cc6_1_logical_access"]["kill_switch_events"]
    assert (kill["action"], kill["scope"], kill["target"]) == ("kill", "agent", "sales")
    assert (kill["actor"], kill["reason"]) == ("alice", "cost spike")
    assert kill["time"] == "2023-11-14T22:13:37.000000Z"
    assert (revive["action"], revive["actor"], revive["reason"]) == ("revive", "bob", "cost spike")
    assert revive["kill_seq"] == kill["seq"]
    assert revive["time_to_recover_seconds"] == 45.0
    incidents = doc["cc7_3_incident_response"]
    assert (incidents["incidents"], incidents["recovered"], incidents["mttr_seconds"]) == (
        1,
        1,
        45.0,
    )
    assert incidents["open_at_period_end"] == []


def test_soc2_reports_a_kill_still_open_at_period_end(monitor: Monitor, clock: ManualClock) -> None:
    """A kill with no revive is an open incident, with how long it has been open."""
    monitor.kill_session("s-9", reason="loop", actor="policy:loop")
    clock.advance(100)
    doc = soc2(monitor)
    (open_kill,) = doc["cc7_3_incident_response"]["open_at_period_end"]
    assert (open_kill["scope"], open_kill["target"], open_kill["reason"]) == (
        "session",
        "s-9",
        "loop",
    )
    assert open_kill["open_for_seconds"] == 100.0
    assert doc["cc6_1_logical_access"]["active_kills_at_export"][0]["target"] == "s-9"


def test_soc2_lists_denials(monitor: Monitor, clock: ManualClock) -> None:
    """Every denial is listed with its agent, time and reason."""
    fleet(monitor, clock)
    access = soc2(monitor)["cc6_1_logical_access"]
    assert access["denial_count"] == 2
    assert [d["reason"] for d in access["denials"]] == ["pii", "pii"]
    assert {d["agent"] for d in access["denials"]} == {"sales"}


def test_soc2_lists_anomalies_and_alerts(monitor: Monitor, clock: ManualClock) -> None:
    """CC7.2 lists each anomaly (rule, severity, agent, message) and each alert."""
    record(monitor, clock, agent="ops", tool="delete_records")
    monitoring = soc2(monitor)["cc7_2_monitoring"]
    (anomaly,) = monitoring["anomalies"]
    assert (anomaly["kind"], anomaly["agent"], anomaly["severity"]) == (
        "suspicious",
        "ops",
        "medium",
    )
    assert anomaly["rule"]
    assert "delete" in anomaly["message"]
    (alert,) = monitoring["alerts"]
    assert (alert["kind"], alert["agent"]) == ("suspicious", "ops")
    assert monitoring["anomaly_count"] == monitoring["alert_count"] == 1
    assert monitoring["anomalies_by_severity"] == {"medium": 1}


def test_soc2_carries_verification_and_a_checkpoint_that_verifies_offline(
    monitor: Monitor, clock: ManualClock
) -> None:
    """The chain verifies and the covering checkpoint's Ed25519 signature checks out."""
    fleet(monitor, clock)
    doc = soc2(monitor)
    integrity = doc["integrity"]
    assert integrity["verification"]["ok"] is True
    assert integrity["verification"]["checked"] == 22
    cp_fields = integrity["checkpoint"]
    cp = Checkpoint(**{k: cp_fields[k] for k in Checkpoint.__struct_fields__})
    assert cp.valid_signature()
    assert cp.seq >= doc["totals"]["last_seq"]
    assert cp_fields["signed_message"] == cp.message().decode()
    assert doc["manifest"]["checkpoint"] == cp_fields


def test_soc2_includes_config_metadata_retention_and_criteria(monitor: Monitor) -> None:
    """The report names the system (config metadata), its retention policy and the SOC 2 criteria."""
    doc = soc2(monitor)
    assert doc["system"]["name"] == "acme-agents"
    assert doc["system"]["author"] == "sec@acme"
    assert doc["retention_policy"]["security"] == 730
    assert set(doc["criteria"]) == {"CC6.1", "CC7.2", "CC7.3", "CC8.1"}
    change = doc["cc8_1_change_management"]["configuration"]
    assert change["metadata"]["description"] == "prod fleet"
    assert len(change["fingerprint_sha256"]) == 64


def test_soc2_manifest_sha256_covers_the_report(monitor: Monitor, clock: ManualClock) -> None:
    """The SOC 2 manifest's sha256 covers every byte of the report before the manifest line."""
    fleet(monitor, clock)
    body, manifest = content_and_manifest(monitor.export("soc2").encode())
    assert manifest["sha256"] == sha256(body)
    assert manifest["count"] == 22


def test_soc2_period_filter_narrows_every_section(monitor: Monitor, clock: ManualClock) -> None:
    """With ``until`` before the kill, the kill, the revive and their alerts are out of the report."""
    fleet(monitor, clock)
    doc = soc2(monitor, until=T0 + 14)
    assert doc["totals"]["events"] == 15
    assert doc["cc6_1_logical_access"]["kill_switch_events"] == []
    assert doc["period"]["last_event_at"] == "2023-11-14T22:13:34.000000Z"


def test_export_after_tampering_reports_verification_not_ok(
    monitor: Monitor, clock: ManualClock, tmp_path: Path
) -> None:
    """Editing a stored row makes the manifest's verification fail and say where."""
    fleet(monitor, clock)
    monitor.flush()
    with sqlite3.connect(tmp_path / "e.db") as db:
        payload = db.execute("SELECT payload FROM events WHERE seq = 3").fetchone()[0]
        db.execute(
            "UPDATE events SET payload = ? WHERE seq = 3",
            (bytes(payload).replace(b'"search"', b'"delete"'),),
        )
    db.close()
    manifest = json.loads(monitor.export("jsonl").splitlines()[-1])["manifest"]
    verification = manifest["verification"]
    assert verification["ok"] is False
    assert (verification["first_bad_seq"], verification["damage"]) == (3, "edited")


def test_an_auditor_can_recompute_the_chain_from_a_full_jsonl_export(
    monitor: Monitor, clock: ManualClock
) -> None:
    """Every exported hash recomputes with the standard library alone (sorted, compact JSON of
    the fields that differ from the schema's defaults, as docs/audit.md shows)."""
    fleet(monitor, clock)
    lines = monitor.export("jsonl").splitlines()[:-1]
    prev = "0" * 64
    defaults = {"event_type": "action", "data": {}, "tags": []}
    for line in lines:
        event = json.loads(line)
        seq, digest, link = event.pop("seq"), event.pop("hash"), event.pop("prev_hash")
        event = {k: v for k, v in event.items() if v is not None and defaults.get(k, ...) != v}
        payload = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        inner = sha256(payload.encode())
        assert link == prev
        assert sha256(f"redline:v1:{seq}:{link}:{inner}".encode()) == digest
        prev = digest


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_every_export_record_carries_every_schema_field(
    monitor: Monitor, clock: ManualClock, fmt: str
) -> None:
    """Exports are evidence: an ``action`` event says so, and unset fields are null, in all of
    JSON, JSONL and CSV (``select(.event_type == "action")`` over an export finds it)."""
    import csv as csv_module
    import io

    import msgspec

    from redline.compliance import CSV_COLUMNS

    monitor.record(AgentEvent(timestamp=clock.time(), agent="plain"))
    monitor.flush()
    schema = [f.name for f in msgspec.structs.fields(AgentEvent)]
    text = monitor.export(fmt)
    if fmt == "csv":
        rows = list(csv_module.DictReader(io.StringIO(text)))
        assert set(schema) <= set(CSV_COLUMNS)
        row = next(r for r in rows if r["agent"] == "plain")
        assert row["event_type"] == "action"
        return
    if fmt == "json":
        records = json.loads(text)["events"]
    else:
        records = [json.loads(line) for line in text.splitlines()[:-1]]
    record = next(r for r in records if r["agent"] == "plain")
    assert record["event_type"] == "action"
    assert set(schema) <= set(record)
    assert record["session_id"] is None
    assert record["tags"] == []


def test_soc2_event_type_filter_applies_to_every_section(
    monitor: Monitor, clock: ManualClock
) -> None:
    """Filtered to denials, the SOC 2 report lists no kills or alerts, only the denials."""
    fleet(monitor, clock)
    doc = soc2(monitor, event_type="denial")
    assert doc["cc6_1_logical_access"]["kill_switch_events"] == []
    assert doc["cc7_2_monitoring"]["alerts"] == []
    assert doc["cc6_1_logical_access"]["denial_count"] == 2
    assert doc["totals"]["by_type"] == {"denial": 2}


# --- GDPR ----------------------------------------------------------------------------------


def test_gdpr_requires_a_user(monitor: Monitor) -> None:
    """The GDPR export is about one data subject: without ``user`` it raises ValueError."""
    with pytest.raises(ValueError, match="user"):
        monitor.export("gdpr")


def test_gdpr_contains_only_the_subjects_events(monitor: Monitor, clock: ManualClock) -> None:
    """Art. 15 lists every event of that user and none of anyone else's."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("gdpr", user="u2"))
    events = doc["article_15"]["events"]
    assert len(events) == 5
    assert {e["user"] for e in events} == {"u2"}
    assert doc["data_subject"] == {"user": "u2"}
    assert doc["manifest"]["count"] == 5


def test_gdpr_states_categories_purposes_retention_and_controller(
    monitor: Monitor, clock: ManualClock
) -> None:
    """Art. 15/30: categories present, their purposes and retention, and the controller."""
    fleet(monitor, clock)
    doc = json.loads(monitor.export("gdpr", user="u1", purposes={"action": "order handling"}))
    art15 = doc["article_15"]
    assert list(art15["categories_of_personal_data"]) == ["action"]
    assert art15["purposes"] == {"action": "order handling"}
    assert art15["retention_days"] == {"action": 30}
    art30 = doc["article_30"]
    assert art30["controller"] == {
        "name": "acme-agents",
        "contact": "sec@acme",
        "system": "prod fleet",
    }
    assert art30["purposes"]["security"] == "security monitoring and fraud prevention"
    assert art30["retention_days"]["security"] == 730


def test_gdpr_recipients_name_channel_types_never_their_secrets(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Recipients are alert channel types and names; URLs and secrets never appear."""
    channels = [
        {"type": "webhook", "name": "siem", "url": "https://hooks.example/abc", "secret": "s3cr3t"},
        {"type": "jsonl", "path": str(tmp_path / "alerts.jsonl")},
    ]
    m = make_monitor(tmp_path, clock, alerts={"channels": channels})
    try:
        record(m, clock, user="u1")
        text = m.export("gdpr", user="u1")
    finally:
        m.close()
    doc = json.loads(text)
    assert [(r["type"], r["name"]) for r in doc["article_15"]["recipients"]] == [
        ("webhook", "siem"),
        ("jsonl", "jsonl"),
    ]
    assert "hooks.example" not in text
    assert "s3cr3t" not in text


# --- other stores --------------------------------------------------------------------------


def test_store_without_a_chain_has_null_verification(clock: ManualClock) -> None:
    """Exporting from a memory store works; its manifest's verification and checkpoint are null."""
    store = MemoryStore()
    store.append([AgentEvent(timestamp=T0, agent="a"), AgentEvent(timestamp=T0 + 1, agent="b")])
    text = export(store, "jsonl", now=T0 + 10)
    manifest = json.loads(text.splitlines()[-1])["manifest"]
    assert (manifest["count"], manifest["verification"], manifest["checkpoint"]) == (2, None, None)


def test_read_only_store_exports_without_signing(tmp_path: Path) -> None:
    """From a read-only store the export works and signs nothing (no key file is created)."""
    writer = SQLiteStore(tmp_path / "ro.db")
    writer.append([AgentEvent(timestamp=T0 + i, agent="a") for i in range(3)])
    try:
        reader = SQLiteStore(tmp_path / "ro.db", readonly=True)
        manifest = json.loads(export(reader, "jsonl", now=T0).splitlines()[-1])["manifest"]
        reader.close()
        assert manifest["count"] == 3
        assert manifest["verification"]["ok"] is True
        assert manifest["checkpoint"] is None
        assert not (tmp_path / "ro.db.key").exists()
    finally:
        writer.close()


# --- archives ------------------------------------------------------------------------------


def test_archive_session_writes_the_session_in_order_with_a_manifest(
    monitor: Monitor, clock: ManualClock, tmp_path: Path
) -> None:
    """``archive_session`` writes ``<dir>/<session>.jsonl``: the session's events, then a manifest."""
    fleet(monitor, clock)
    record(monitor, clock, 2, session_id="s2")
    path = archive_session(monitor, "s1", tmp_path / "archive")
    assert path == tmp_path / "archive" / "s1.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    events = [json.loads(line) for line in lines[:-1]]
    assert len(events) == 10
    assert {e["session_id"] for e in events} == {"s1"}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    manifest = json.loads(lines[-1])["manifest"]
    assert manifest["sha256"] == sha256(b"".join(lines[:-1]))
    assert manifest["filters"]["session_id"] == "s1"


def test_archive_names_are_safe_file_names() -> None:
    """Session ids become file names without path separators, leading dots or collisions."""
    assert archive_name("sess-123") == "sess-123.jsonl"
    odd = archive_name("../../etc/passwd")
    assert "/" not in odd
    assert not odd.startswith(".")
    assert archive_name("a/b") != archive_name("a_b")


def test_read_archive_replays_and_detects_edits(
    monitor: Monitor, clock: ManualClock, tmp_path: Path
) -> None:
    """``read_archive`` replays an archive; an edited line raises IntegrityError."""
    record(monitor, clock, 3, session_id="s1", tool="search")
    path = archive_session(monitor, "s1", tmp_path)
    assert [s.event.tool for s in read_archive(path)] == ["search"] * 3
    path.write_bytes(path.read_bytes().replace(b'"search"', b'"delete"', 1))
    with pytest.raises(IntegrityError):
        list(read_archive(path))


def test_replay_session_streams_the_session_oldest_first(
    monitor: Monitor, clock: ManualClock
) -> None:
    """``replay_session`` yields the session's stored events in ascending order."""
    record(monitor, clock, 3, session_id="s1")
    record(monitor, clock, 2, session_id="s2")
    replayed = list(replay_session(monitor, "s1"))
    assert [s.event.timestamp for s in replayed] == [T0, T0 + 1, T0 + 2]


# --- scale ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_of_200k_events_uses_bounded_memory(monitor: Monitor, tmp_path: Path) -> None:
    """200,000 events export to a file with a tracemalloc peak far below the data's size."""
    store = monitor.store
    for start in range(0, 200_000, 10_000):
        store.append(
            [
                AgentEvent(
                    timestamp=T0 + i,
                    agent=f"agent-{i % 7}",
                    event_type="tool_call",
                    tool="search",
                    session_id=f"s-{i // 100}",
                    data={"query": "x" * 200, "n": i},
                )
                for i in range(start, start + 10_000)
            ]
        )
    out = tmp_path / "all.json"
    tracemalloc.start()
    try:
        manifest = monitor.export("json", output=out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest["count"] == 200_000
    assert manifest["verification"]["ok"] is True
    size = out.stat().st_size
    assert size > 60_000_000
    assert peak < 30_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB export"
