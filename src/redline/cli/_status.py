"""``status``: the truth at a glance, from the store (a CLI process has no live windows).

Window metrics are rebuilt by replaying the last window's events (see
:mod:`redline.metrics.rebuild`); kill state is the store's kill table, the one every monitor obeys.
"""

from __future__ import annotations

import heapq
import time
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
    out_console,
    parse_duration,
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
        "message": data.get("title") or data.get("message") or "",
        "detail": data.get("message") if data.get("title") else None,
    }


def status(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", "-w", help="Window length: seconds or 90s, 5m, 1h (default: the config's)."
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
    now = time.time()
    with reading_store(state) as store:
        snaps = rebuild_snapshots(store, window=win, now=now, agent=agent)
        kills = _relevant_kills(store, active_kills(store, now), agent)
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
        text(f"Redline status at {iso(now)} (window {win} s, config {state.label})", "bold")
    )
    if rows:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("agent", no_wrap=True)
        table.add_column("state", overflow="fold", min_width=24)
        for name in ("events", "ev/min", "cost/min", "denials", "errors", "p95"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("last event", no_wrap=True)
        for name, snap, kill in rows:
            if kill is not None:
                st = text(
                    f"KILLED ({kill.scope} kill) · {kill.reason or 'no reason'} · by "
                    f"{kill.actor or '?'} · since {ago(kill.created_at, now)}",
                    "bold red",
                )
            else:
                st = text("running", "green")
            table.add_row(
                text(name),
                st,
                text(snap.event_count),
                text(f"{snap.events_per_minute:.2f}"),
                text(f"${snap.cost_per_minute:.4f}"),
                text(f"{snap.denial_rate:.1%}"),
                text(f"{snap.error_rate:.1%}"),
                text(f"{snap.p95_latency_ms:.0f} ms" if snap.p95_latency_ms else "-"),
                text(ago(snap.last_event_at, now)),
            )
        console.print(table)
    else:
        console.print(text(f"no agent activity in the last {win} s"))

    console.print(text("Active kills", "bold"))
    if kills:
        kt = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("scope", "target", "reason", "actor", "since", "expires"):
            kt.add_column(name)
        for k in kills:
            kt.add_row(
                text(k.scope, "red"),
                text(k.target),
                text(k.reason or "-"),
                text(k.actor or "-"),
                text(f"{iso(k.created_at)} ({ago(k.created_at, now)})"),
                text(iso(k.expires_at) if k.expires_at is not None else "never"),
            )
        console.print(kt)
    else:
        console.print(text("  none"))

    console.print(text("Store", "bold"))
    line = f"  {info.get('backend')} {info.get('path') or ''}".rstrip()
    if "events" in info:
        line += f": {info['events']} events"
        if info.get("erased"):
            line += f" ({info['erased']} erased by retention)"
        line += f", head seq {info.get('head_seq')}, {count_of(int(info.get('checkpoints') or 0), 'checkpoint')}"
    console.print(text(line))

    console.print(text("Recent anomalies and alerts", "bold"))
    if recent:
        rt = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("time (UTC)", "type", "agent", "severity"):
            rt.add_column(name, no_wrap=True)
        rt.add_column("message", overflow="fold")
        for s in recent:
            d = _recent_dict(s)
            rt.add_row(
                text(d["time"]),
                text(d["type"]),
                text(d["agent"]),
                text(d["severity"] or "-"),
                text(d["message"]),
            )
        console.print(rt)
    else:
        console.print(text("  none"))
