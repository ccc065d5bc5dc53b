"""``events``, ``tail`` and ``replay``: stored events, filtered, followed, or one session in order."""

from __future__ import annotations

import difflib
import enum
import sys
import time
from typing import Annotated

import msgspec
import typer
from rich import box
from rich.table import Table

from redline.cli._common import (
    State,
    emit_json_line,
    err_console,
    event_line,
    iso,
    money,
    out_console,
    parse_when,
    reading_store,
    summary,
    text,
    what,
)
from redline.events import EVENT_TYPES
from redline.store.base import Checkpointed, EventQuery, GroupedCounts, Store, StoredEvent

__all__ = ["events", "replay", "tail"]

_replace = msgspec.structs.replace

AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")]
TypeOpt = Annotated[
    str | None, typer.Option("--type", "-t", help="Only this event type (action, denial, ...).")
]
SessionOpt = Annotated[str | None, typer.Option("--session", "-s", help="Only this session id.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="From this time: ISO 8601 (offsets honoured), epoch, or 2h."),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Up to this time (same forms).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


class Order(str, enum.Enum):
    """Sort order of ``events``."""

    desc = "desc"
    asc = "asc"


def _table(rows: list[StoredEvent]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (
        ("seq", "right"),
        ("time (UTC)", "left"),
        ("type", "left"),
        ("agent", "left"),
        ("session", "left"),
        ("tool/model", "left"),
        ("cost", "right"),
        ("latency", "right"),
        ("status", "left"),
        ("data", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "data")  # type: ignore[arg-type]
    for s in rows:
        e = s.event
        style = "red" if e.event_type in ("kill", "denial", "error") else ""
        table.add_row(
            text(s.seq),
            text(iso(e.timestamp)),
            text(e.event_type, style),
            text(e.agent),
            text(e.session_id or "-"),
            text(what(e)),
            text(money(e.cost_usd)),
            text("-" if e.latency_ms is None else f"{e.latency_ms:.0f} ms"),
            text(e.status or "-"),
            text(
                summary(e.data, 60)
                + (f" (recorded while killed: {e.killed_scope})" if e.killed_scope else "")
            ),
        )
    return table


def events(
    ctx: typer.Context,
    agent: AgentOpt = None,
    event_type: TypeOpt = None,
    session: SessionOpt = None,
    user: UserOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    order: Annotated[
        Order, typer.Option("--order", help="desc: newest first; asc: oldest first.")
    ] = Order.desc,
    as_json: JsonOpt = False,
) -> None:
    """List stored events as a table, or JSON lines with --json (each with its seq)."""
    state = State.of(ctx)
    now = time.time()
    query = EventQuery(
        agent=agent,
        event_type=event_type,
        session_id=session,
        user=user,
        since=parse_when(since, "--since", now),
        until=parse_when(until, "--until", now),
        limit=limit,
        order=order.value,
    )
    with reading_store(state) as store:
        if state.wants_json(as_json):
            for stored in store.query(query):
                emit_json_line(stored.to_dict())
            return
        rows = list(store.query(query))
        if not rows:
            err_console().print(text("no matching events"))
            _unknown_type_hint(store, event_type)
            return
        out_console().print(_table(rows))


def _unknown_type_hint(store: Store, event_type: str | None) -> None:
    """When ``--type`` names a type nothing ever recorded, say so and list the known ones.

    A typo (``--type llm-call``) otherwise reads as "nothing happened", the wrong conclusion.
    """
    if event_type is None or event_type in EVENT_TYPES:
        return
    recorded: set[str] = set()
    if isinstance(store, GroupedCounts):
        recorded = set(store.counts_by("event_type", EventQuery()))
    if event_type in recorded:
        return
    known = sorted(EVENT_TYPES | recorded)
    close = difflib.get_close_matches(event_type, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    err_console().print(
        text(
            f"no event of type {event_type!r} was ever recorded here{hint}\n"
            f"known types: {', '.join(known)}",
            "yellow",
        )
    )


def _follow(
    store: Store,
    query: EventQuery,
    last_seq: int,
    *,
    as_json: bool,
    max_events: int | None,
    timeout: float | None,
    interval: float,
) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = 0
    err = err_console()
    err.print(text("following new events (Ctrl-C to stop)"))
    sys.stderr.flush()
    while True:
        # Every row committed after ``last_seq``, whatever its timestamp says.
        newer = _replace(query, after_seq=last_seq, order="asc")
        for stored in store.query(newer):
            last_seq = max(last_seq, stored.seq)
            _print(stored, as_json)
            shown += 1
            if max_events is not None and shown >= max_events:
                return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(interval)


def _print(stored: StoredEvent, as_json: bool) -> None:
    if as_json:
        emit_json_line(stored.to_dict())
    else:
        sys.stdout.write(event_line(stored) + "\n")
        sys.stdout.flush()


def tail(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    agent: AgentOpt = None,
    event_type: TypeOpt = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="Events shown first.")] = 20,
    max_events: Annotated[
        int | None,
        typer.Option("--max-events", min=1, help="With -f: stop after this many new events."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.0, help="With -f: stop after S seconds.")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.01, help="With -f: poll every S seconds.")
    ] = 0.2,
    as_json: JsonOpt = False,
) -> None:
    """Print the last N events, oldest first; with -f keep following the store."""
    state = State.of(ctx)
    js = state.wants_json(as_json)
    query = EventQuery(agent=agent, event_type=event_type)
    with reading_store(state) as store:
        recent = list(store.query(_replace(query, limit=lines, order="desc"))) if lines else []
        recent.reverse()
        for stored in recent:
            _print(stored, js)
        if not follow:
            return
        last_seq = max([s.seq for s in recent], default=0)
        if isinstance(store, Checkpointed):
            last_seq = max(last_seq, int(store.head()[0]))
        try:
            _follow(
                store,
                query,
                last_seq,
                as_json=js,
                max_events=max_events,
                timeout=timeout,
                interval=interval,
            )
        except KeyboardInterrupt:
            return


def replay(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="The session id to replay.")],
    as_json: JsonOpt = False,
) -> None:
    """Print one session's events in time order: time, type, agent, tool/model, cost, ..."""
    state = State.of(ctx)
    js = state.wants_json(as_json)
    with reading_store(state) as store:
        count = 0
        for stored in store.query(EventQuery(session_id=session, order="asc")):
            count += 1
            if js:
                emit_json_line(stored.to_dict())
            else:
                sys.stdout.write(event_line(stored, seq=False) + "\n")
        sys.stdout.flush()
    if not count:
        err_console().print(text(f"no events stored for session {session!r}"))
