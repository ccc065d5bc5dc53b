"""``budgets``: every budget key's spend, holds and headroom, from the store's ledger.

Read from the store, so it shows what every monitor on the store has spent and reserved in the
current period (a memory or JSONL store keeps budgets per process: there is nothing to read).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from redline.cli._common import CliError, State, emit_json, iso, out_console, reading_store, text
from redline.control.budgets.facade import stored_states
from redline.exceptions import StoreError

__all__ = ["budgets"]


def budgets(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this budget.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the states as JSON.")] = False,
) -> None:
    """Show each budget's limit, spent and reserved in its current period, and when it resets."""
    state = State.of(ctx)
    configs = state.config().section("budgets")
    if not configs:
        raise CliError(
            f"{state.label} configures no budgets",
            "add a 'budgets:' section (see docs/budgets.md)",
        )
    if name is not None and name not in {b.name for b in configs}:
        known = ", ".join(sorted(b.name for b in configs))
        raise CliError(f"no budget named {name!r} in {state.label}", f"known budgets: {known}")
    with reading_store(state) as store:
        try:
            rows = stored_states(configs, store, time.time())
        except StoreError as exc:
            if "no such table" not in str(exc):
                raise
            rows = []  # a store nothing has reserved or spent against yet
    rows = [r for r in rows if name is None or r.name == name]
    if state.wants_json(as_json):
        emit_json({"budgets": [r.to_dict() for r in rows]})
        return
    console = out_console()
    if not rows:
        console.print(text("no spend or reservations in the current periods"))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("budget", "scope", "key"):
        table.add_column(column, no_wrap=True)
    for column in ("spent", "reserved", "limit", "used"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("resets", no_wrap=True)
    for r in rows:
        used = (r.spent_usd + r.reserved_usd) / r.limit_usd
        style = "bold red" if used >= 1 else "yellow" if used >= 0.8 else ""
        table.add_row(
            r.name,
            r.scope,
            r.key,
            f"${r.spent_usd:.4f}",
            f"${r.reserved_usd:.4f}",
            f"${r.limit_usd:.2f}",
            text(f"{used:.0%}", style),
            iso(r.resets_at),
        )
    console.print(table)
