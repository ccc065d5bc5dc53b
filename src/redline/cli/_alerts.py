"""``alerts`` and ``ack``: the alert lifecycle from the command line.

Alerts live in the store as ``alert`` events, one per state change (firing, escalated,
acknowledged, resolved), so the CLI lists them by folding those events per alert id, and an
acknowledgement is one more ``alert`` event: recorded by the CLI, sent to the channels (PagerDuty
acknowledges, OpsGenie acknowledges), and adopted by the running monitor that raised the alert.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from redline.cli._common import (
    CliError,
    State,
    ago,
    emit_json,
    out_console,
    parse_when,
    reading_store,
    text,
    writing_monitor,
)
from redline.cli._govern import default_actor
from redline.store.base import EventQuery

__all__ = ["ack", "alerts"]

_STATES = ("active", "firing", "acknowledged", "resolved", "all")
_COLOURS = {"critical": "bold red", "high": "red", "warning": "yellow", "medium": "yellow"}


def _fold(store: Any, since: float | None) -> list[dict[str, Any]]:
    """The latest state of every alert, from its ``alert`` events (oldest first)."""
    latest: dict[str, dict[str, Any]] = {}
    for stored in store.query(EventQuery(event_type="alert", since=since, order="asc")):
        data = dict(stored.event.data)
        alert_id = data.get("id")
        if not isinstance(alert_id, str):
            continue
        first = latest.get(alert_id, {}).get("first_seen", stored.event.timestamp)
        data["first_seen"] = data.get("first_seen") or first  # a group's own, else its first event
        data["updated"] = stored.event.timestamp
        latest[alert_id] = data
    return sorted(latest.values(), key=lambda a: a["updated"], reverse=True)


def alerts(
    ctx: typer.Context,
    state_filter: Annotated[
        str,
        typer.Option(
            "--state",
            help="active (firing or acknowledged), firing, acknowledged, resolved or all.",
        ),
    ] = "active",
    since: Annotated[
        str | None, typer.Option("--since", help="Only alerts raised since (ISO, epoch, 2h).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per alert.")] = False,
) -> None:
    """List alerts and their state (firing, acknowledged, resolved)."""
    state = State.of(ctx)
    if state_filter not in _STATES:
        raise CliError(f"--state must be one of {', '.join(_STATES)}, got {state_filter!r}")
    with reading_store(state) as store:
        folded = _fold(store, parse_when(since, "--since", time.time()))
    wanted = {
        "active": {"firing", "acknowledged"},
        "all": {"firing", "acknowledged", "resolved"},
    }.get(state_filter, {state_filter})
    matching = [a for a in folded if a.get("state") in wanted]
    rows = matching[:limit]
    if state.wants_json(as_json):
        emit_json(rows)
        return
    if not rows:
        out_console().print(text(f"No {state_filter} alerts."))
        return
    table = Table("id", "state", "severity", "agent", "title", "count", "raised", "updated", "by")
    for a in rows:
        details = a.get("details") or {}
        table.add_row(
            str(a.get("id")),
            str(a.get("state")),
            text(str(a.get("severity")), _COLOURS.get(str(a.get("severity")), "")),
            str(a.get("agent")),
            str(a.get("title")),
            str(a.get("count", 1)),
            ago(a.get("first_seen")),
            ago(a.get("updated")),
            str(details.get("acknowledged_by", "")),
        )
    out_console().print(table)
    if len(matching) > len(rows):
        out_console().print(text(f"{len(matching) - len(rows)} more: raise --limit to see them"))


def ack(
    ctx: typer.Context,
    alert_id: Annotated[
        str | None, typer.Argument(help="The alert id (see `redline alerts`); or use --all.")
    ] = None,
    all_of: Annotated[
        bool,
        typer.Option("--all", help="Acknowledge every firing alert that matches the filters."),
    ] = False,
    agent: Annotated[str | None, typer.Option("--agent", help="With --all: this agent's.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="With --all: anomaly, kill, budget, rule ...")
    ] = None,
    rule: Annotated[
        str | None, typer.Option("--rule", help="With --all: this rule or detector's.")
    ] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", help="With --all: this severity's.")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who acknowledges (default: cli:$USER).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Acknowledge a firing alert, or all of a filter: recorded, sent, adopted by its monitor."""
    state = State.of(ctx)
    who = by or default_actor()
    filters = {"agent": agent, "kind": kind, "rule": rule, "severity": severity}
    if (alert_id is None) == (not all_of):
        raise CliError("give an alert id, or --all (with --agent/--kind/--rule/--severity)")
    if alert_id is not None and any(v is not None for v in filters.values()):
        raise CliError("--agent, --kind, --rule and --severity filter --all, not one alert id")
    if alert_id is None:
        with writing_monitor(state) as monitor:
            done = monitor.ack_alerts(who, **filters)
        if state.wants_json(as_json):
            emit_json([a.to_dict() for a in done])
            return
        out_console().print(text(f"Acknowledged {len(done)} alert(s) by {who}"))
        return
    with writing_monitor(state) as monitor:
        acked = monitor.ack_alert(alert_id, by=who)
    if acked is None:
        raise CliError(f"no firing alert with id {alert_id!r} (see `redline alerts`)", code=1)
    if state.wants_json(as_json):
        emit_json(acked.to_dict())
        return
    out_console().print(text(f"Acknowledged {alert_id} ({acked.title}) by {who}"))
