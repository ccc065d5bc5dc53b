"""``db upgrade``: create or migrate the PostgreSQL schema a fleet shares.

Migrations are versioned and idempotent; running the command on an up-to-date schema changes
nothing. Monitors also upgrade on start, so this is for operators who prefer to migrate first.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from redline.cli._common import CliError, State, emit_json, out_console, text

__all__ = ["db_app"]

db_app = typer.Typer(help="The PostgreSQL schema of a fleet store.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    dsn: Annotated[
        str | None, typer.Option("--dsn", help="Default: storage.dsn, then $REDLINE_PG_DSN.")
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Default: storage.schema, then 'redline'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create or migrate the schema; prints the versions applied (none when up to date)."""
    state = State.of(ctx)
    config = state.config()
    target = dsn or config.storage.dsn or os.environ.get("REDLINE_PG_DSN")
    if not target:
        raise CliError("no database: give --dsn, set storage.dsn, or export REDLINE_PG_DSN")
    name = schema or config.storage.schema or os.environ.get("REDLINE_PG_SCHEMA") or "redline"
    try:
        from redline.store.postgres import upgrade as run_upgrade
    except ImportError as exc:
        raise CliError(f"{exc}: install redline[postgres]") from exc
    from redline.exceptions import StoreError

    try:
        applied = run_upgrade(target, name)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    if state.wants_json(as_json):
        emit_json({"schema": name, "applied": applied})
        return
    if applied:
        out_console().print(text(f"Schema {name!r}: applied migrations {applied}"))
    else:
        out_console().print(text(f"Schema {name!r} is up to date"))
