"""``status``: the truth at a glance, from the store (a CLI process has no live windows).

Window metrics are rebuilt by replaying the last window's events (see
:mod:`redline.metrics.rebuild`); kill state is the store's kill table, the one every monitor obeys.
"""

from __future__ import annotations

import heapq
import time
from datetime import datetime, timezone
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from redline.cli._common import (
    State,
    active_kills,
    ago,
    count_of,
    covering,
    emit_json,
    iso,
    kill_dict,
    money,
    out_console,
    parse_duration,
    parse_when,
    reading_store,
    text,
)
from redline.metrics.rebuild import rebuild_snapshots
from redline.metrics.snapshot import MetricSnapshot
from redline.store.base import Describable, EventQuery, KillRecord, Store, StoredEvent

__all__ = ["status"]

_RECENT = 10


def _relevant_kills(store: Store, kills: list[KillRecord], agent: str | None) -> list[KillRecord]:
    """All kills, or with ``--agent`` those that stop it (its sessions found in the store)."""
    if agent is None:
        return kills
    return [
        k
        for k in kills
        if k.scope == "global"
        or (k.scope == "agent" and k.target == agent)
        or (k.scope == "session" and store.count(EventQuery(agent=agent, session_id=k.target)))
    ]


def _recent(store: Store, agent: str | None) -> list[StoredEvent]:
    """The newest anomalies and alerts, newest first."""
    streams = [
        store.query(EventQuery(event_type=t, agent=agent, limit=_RECENT, order="desc"))
        for t in ("anomaly", "alert")
    ]
    merged = heapq.merge(*streams, key=lambda s: (s.event.timestamp, s.seq), reverse=True)
    return [s for _, s in zip(range(_RECENT), merged, strict=False)]


def _recent_dict(s: StoredEvent) -> dict[str, Any]:
    e = s.event
    data = e.data
    return {
        "seq": s.seq,
        "timestamp": e.timestamp,
        "time": iso(e.timestamp),
        "type": e.event_type,
        "agent": e.agent,
        "session_id": e.session_id,
        "severity": data.get("severity") or e.level,
        "kind": data.get("kind"),
        "rule": data.get("rule"),
        "message": (data.get("title") or data.get("message") or "")
        + (
            f" ({data['state']})"
            if e.event_type == "alert" and data.get("state") not in (None, "firing")
            else ""
        ),
        "detail": data.get("message") if data.get("title") else None,
    }


def _short_time(ts: float, now: float) -> str:
    """``HH:MM:SS`` today, ``MM-DD HH:MM`` otherwise (the full time is in ``--json``)."""
    when = datetime.fromtimestamp(ts, timezone.utc)
    today = datetime.fromtimestamp(now, timezone.utc).date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%m-%d %H:%M")


def status(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", "-w", help="Window length: seconds or 90s, 5m, 1h (default: the config's)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="As of this time (ISO, epoch or an age such as 2h): a past incident."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything as one JSON object.")] = False,
) -> None:
    """Agents' state and window metrics, active kills, the store, recent anomalies and alerts."""
    state = State.of(ctx)
    config = state.config()
    seconds = parse_duration(window, "--window")
    win = int(seconds) if seconds is not None else config.metrics.default_window_seconds
    win = max(win, 1)
    now = parse_when(at, "--at", time.time()) or time.time()
    with reading_store(state) as store:
        snaps = rebuild_snapshots(store, window=win, now=now, agent=agent)
        kills = _relevant_kills(store, active_kills(store, now), agent)
        if at is not None:  # a kill made after the moment asked about was not in force then
            kills = [k for k in kills if k.created_at <= now]
        info: dict[str, Any] = (
            dict(store.info()) if isinstance(store, Describable) else {"path": config.storage.path}
        )
        info.setdefault("backend", store.backend)
        recent = _recent(store, agent)

    by_agent = {s.agent: s for s in snaps}
    # Killed agents with no activity in the window still get a row: their state matters most.
    for k in kills:
        if k.scope == "agent" and k.target not in by_agent and agent in (None, k.target):
            by_agent[k.target] = MetricSnapshot(agent=k.target, window_seconds=win, timestamp=now)
    if agent is not None and agent not in by_agent:
        by_agent[agent] = MetricSnapshot(agent=agent, window_seconds=win, timestamp=now)
    rows = [(name, by_agent[name], covering(kills, name, None)) for name in sorted(by_agent)]

    if state.wants_json(as_json):
        emit_json(
            {
                "time": iso(now),
                "now": now,
                "config": state.file,
                "window_seconds": win,
                "agents": [
                    {
                        **snap.to_dict(),
                        "state": "killed" if kill else "running",
                        "kill": kill_dict(kill) if kill else None,
                    }
                    for _, snap, kill in rows
                ],
                "kills": [kill_dict(k) for k in kills],
                "store": info,
                "recent": [_recent_dict(s) for s in recent],
            }
        )
        return

    console = out_console()
    console.print(
        text(f"Redline status at {iso(now)} (window {win} s, config {state.label})", "bold"),
        soft_wrap=False,
    )
    # Laid out for an 80-column terminal: short headers and values, names that fold, and the
    # kill's reason and actor under "Active kills" (a sentence never fits a table cell).
    if rows:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("agent", overflow="fold", max_width=18)
        table.add_column("state", no_wrap=True)
        for name in ("events", "ev/min", "$/min", "deny", "err", "p95"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("last", no_wrap=True)
        for name, snap, kill in rows:
            table.add_row(
                text(name),
                text("KILLED", "bold red") if kill is not None else text("running", "green"),
                text(snap.event_count),
                text(f"{snap.events_per_minute:.1f}"),
                text(money(snap.cost_per_minute)),
                text(f"{snap.denial_rate:.1%}"),
                text(f"{snap.error_rate:.1%}"),
                text(f"{snap.p95_latency_ms:.0f}ms" if snap.p95_latency_ms else "-"),
                text(ago(snap.last_event_at, now)),
            )
        console.print(table)
    else:
        console.print(text(f"no agent activity in the last {win} s"))

    console.print(text("Active kills", "bold"))
    for k in kills:
        expires = iso(k.expires_at) if k.expires_at is not None else "never"
        console.print(
            text(
                f"  {k.scope} {k.target}: KILLED since {iso(k.created_at)} "
                f"({ago(k.created_at, now)}), expires {expires}",
                "red",
            ),
            soft_wrap=False,
        )
        console.print(
            text(f"    by {k.actor or '?'}: {k.reason or 'no reason given'}"), soft_wrap=False
        )
    if not kills:
        console.print(text("  none"))

    console.print(text("Store", "bold"))
    line = f"  {info.get('backend')} {info.get('path') or ''}".rstrip()
    if "events" in info:
        line += f": {info['events']} events"
        if info.get("erased"):
            line += f" ({info['erased']} erased by retention)"
        line += f", head seq {info.get('head_seq')}, {count_of(int(info.get('checkpoints') or 0), 'checkpoint')}"
    console.print(text(line), soft_wrap=False)

    console.print(text("Recent anomalies and alerts", "bold"))
    if recent:
        rt = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        rt.add_column("time (UTC)", no_wrap=True)
        for name in ("type", "agent", "severity"):
            rt.add_column(name, overflow="fold", max_width=16)
        rt.add_column("message", overflow="fold", ratio=1)
        for s in recent:
            d = _recent_dict(s)
            rt.add_row(
                text(_short_time(d["timestamp"], now)),
                text(d["type"]),
                text(d["agent"]),
                text(d["severity"] or "-"),
                text(d["message"]),
            )
        console.print(rt)
    else:
        console.print(text("  none"))
