"""``kill``, ``revive`` and ``check``: kill switches from the command line.

A kill goes through a :class:`~redline.Monitor` on the configured store, so it is committed to the
store's kill table (which every monitor on that store obeys) and recorded as a ``kill`` event, with
its alert, exactly as a kill made in code.
"""

from __future__ import annotations

import getpass
import os
import time
from typing import Annotated

import typer

from redline.cli._common import (
    EXIT_FOUND,
    CliError,
    State,
    active_kills,
    covering,
    emit_json,
    err_console,
    iso,
    kill_dict,
    out_console,
    parse_duration,
    reading_store,
    text,
    writing_monitor,
)
from redline.store.base import KillRecord

__all__ = ["check", "kill", "revive"]

AgentArg = Annotated[str | None, typer.Argument(help="The agent.", show_default=False)]
SessionOpt = Annotated[
    str | None, typer.Option("--session", "-s", help="Only this session (of any agent).")
]
GlobalOpt = Annotated[bool, typer.Option("--global", help="Every agent (the whole fleet).")]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (default: cli:$USER).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def default_actor() -> str:
    """``cli:`` and the login name."""
    user = os.environ.get("USER") or os.environ.get("USERNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"cli:{user}"


def _scope(agent: str | None, session: str | None, everyone: bool, verb: str) -> tuple[str, str]:
    if everyone:
        if agent or session:
            raise CliError(f"{verb} --global applies to every agent: give no AGENT or --session")
        return "global", "*"
    if session:
        return "session", session
    if agent:
        return "agent", agent
    raise CliError(f"{verb} what? give an AGENT, --session SID, or --global")


def _what(scope: str, target: str) -> str:
    return "all agents" if scope == "global" else f"{scope} {target!r}"


def _describe(rec: KillRecord) -> str:
    expires = iso(rec.expires_at) if rec.expires_at is not None else "never"
    return (
        f"reason: {rec.reason or 'none given'}; by {rec.actor or '?'} at "
        f"{iso(rec.created_at)}; expires {expires}"
    )


def kill(
    ctx: typer.Context,
    agent: AgentArg = None,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why (kept with the kill and its event).")
    ] = "",
    session: SessionOpt = None,
    everyone: GlobalOpt = False,
    ttl: Annotated[
        str | None,
        typer.Option("--ttl", help="Lift the kill after this long: seconds or 30m, 2h, 1d."),
    ] = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop an agent, a session (--session) or every agent (--global) until revived."""
    state = State.of(ctx)
    scope, target = _scope(agent, session, everyone, "kill")
    if not reason.strip():
        raise CliError('a kill needs a reason: --reason "why"')
    ttl_seconds = parse_duration(ttl, "--ttl")
    who = actor or default_actor()
    with writing_monitor(state) as monitor:
        if scope == "global":
            rec = monitor.kill_global(reason, actor=who, ttl_seconds=ttl_seconds)
        elif scope == "session":
            rec = monitor.kill_session(
                target, reason, actor=who, ttl_seconds=ttl_seconds, agent=agent
            )
        else:
            rec = monitor.kill_agent(target, reason, actor=who, ttl_seconds=ttl_seconds)
    if state.wants_json(as_json):
        emit_json({"killed": kill_dict(rec), "agent": agent})
        return
    of = f" (of agent {agent!r})" if scope == "session" and agent else ""
    out_console().print(text(f"Killed {_what(scope, target)}{of}: {_describe(rec)}"))


def revive(
    ctx: typer.Context,
    agent: AgentArg = None,
    session: SessionOpt = None,
    everyone: GlobalOpt = False,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lift the kill on an agent, a session (--session) or the fleet (--global)."""
    state = State.of(ctx)
    scope, target = _scope(agent, session, everyone, "revive")
    who = actor or default_actor()
    with writing_monitor(state) as monitor:
        if scope == "global":
            lifted = monitor.revive_global(actor=who)
        elif scope == "session":
            lifted = monitor.revive(session_id=target, actor=who)
        else:
            lifted = monitor.revive(agent=target, actor=who)
        still = [k for k in monitor.kills() if k.scope == "global"] if scope != "global" else []
    if state.wants_json(as_json):
        emit_json(
            {
                "revived": lifted,
                "scope": scope,
                "target": target,
                "still_killed_by": [kill_dict(k) for k in still],
            }
        )
        return
    if lifted:
        out_console().print(text(f"Revived {_what(scope, target)} (by {who})"))
    else:
        out_console().print(text(f"Nothing to revive: {_what(scope, target)} was not killed"))
    if still:
        err_console().print(
            text(f"note: a global kill is still active ({_describe(still[0])})", "yellow")
        )


def check(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="The agent.", show_default=False)],
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Also check this session.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Exit 1 (printing scope, target and reason) if the agent or session is killed, else 0."""
    state = State.of(ctx)
    now = time.time()
    with reading_store(state) as store:
        rec = covering(active_kills(store, now), agent, session)
    if state.wants_json(as_json):
        emit_json(
            {
                "agent": agent,
                "session_id": session,
                "killed": rec is not None,
                "kill": kill_dict(rec) if rec else None,
            }
        )
    elif rec is not None:
        subject = f"agent {agent!r}" + (f" (session {session!r})" if session else "")
        out_console().print(
            text(
                f"KILLED: {subject}: scope {rec.scope}, target {rec.target!r}; {_describe(rec)}",
                "bold red",
            )
        )
    else:
        subject = f"agent {agent!r}" + (f" (session {session!r})" if session else "")
        out_console().print(text(f"running: {subject} is not killed"))
    if rec is not None:
        raise typer.Exit(EXIT_FOUND)
