"""The ``redline`` application: global options, the commands, and :func:`main`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from redline.cli import (
    _alerts,
    _audit,
    _budgets,
    _config,
    _events,
    _govern,
    _init,
    _serve,
    _status,
)
from redline.cli._common import EXIT_USAGE, CliError, State, err_console, text
from redline.cli._db import db_app
from redline.exceptions import ConfigError, RedlineError

__all__ = ["app", "main"]

app = typer.Typer(
    name="redline",
    help="Redline: governance-first observability for AI agents. See, stop, prove.",
    epilog="Exit codes: 0 ok; 1 a problem was found (broken chain, killed agent); "
    "2 usage, config or store error.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from redline import __version__
        from redline._compiled import build_info

        sys.stdout.write(f"redline {__version__} ({build_info()})\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            envvar="REDLINE_CONFIG",
            metavar="PATH",
            help="Config file (default: ./monitor.yaml if present, else built-in defaults).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine output: JSON (lines for event lists).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Redline: governance-first observability for AI agents."""
    ctx.obj = State(config, as_json)


app.command("init")(_init.init)
app.command("validate")(_config.validate)
app.command("inspect")(_config.inspect)
app.command("status")(_status.status)
app.command("events")(_events.events)
app.command("kill")(_govern.kill)
app.command("revive")(_govern.revive)
app.command("check")(_govern.check)
app.command("export")(_audit.export)
app.command("verify")(_audit.verify)
app.command("tail")(_events.tail)
app.command("prune")(_audit.prune)
app.command("replay")(_events.replay)
app.command("serve")(_serve.serve)
app.command("alerts")(_alerts.alerts)
app.command("ack")(_alerts.ack)
app.command("budgets")(_budgets.budgets)
app.add_typer(db_app, name="db")


def _code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def hoist_config(args: Sequence[str]) -> list[str]:
    """``args`` with every ``-c PATH`` / ``--config PATH`` / ``--config=PATH`` moved to the front.

    The config is a global option, and people type it where it reads naturally:
    ``redline serve -c monitor.yaml`` as often as ``redline -c monitor.yaml serve``. No command
    has a ``-c`` of its own, so moving it is unambiguous; nothing after ``--`` is touched.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("-c", "--config") and i + 1 < len(args):
            front.extend((arg, args[i + 1]))
            i += 2
            continue
        if arg.startswith("--config="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    # Rich help panels and error boxes on a terminal; plain text for pipes and logs.
    app.rich_markup_mode = "rich" if sys.stdout.isatty() and sys.stderr.isatty() else None
    args = hoist_config(list(argv) if argv is not None else sys.argv[1:])
    try:
        app(args=args, prog_name="redline")
    except SystemExit as exc:
        return _code(exc.code)
    except CliError as exc:
        console = err_console()
        for message in exc.messages:
            console.print(text(f"error: {message}", "red"))
        return exc.code
    except ConfigError as exc:
        # Already ``file: key.path: what was expected``, one line per problem.
        console = err_console()
        for line in exc.errors:
            console.print(text(line, "red"))
        return EXIT_USAGE
    except RedlineError as exc:
        err_console().print(text(f"error: {exc}", "red"))
        return EXIT_USAGE
    return 0
