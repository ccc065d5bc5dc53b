"""``export``, ``verify`` and ``prune``: the audit trail, proven, handed over, and kept in bounds."""

from __future__ import annotations

import contextlib
import enum
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Annotated, Any

import msgspec
import typer
from rich import box
from rich.table import Table

from redline.cli._common import (
    EXIT_FOUND,
    CliError,
    State,
    count_of,
    emit_json,
    err_console,
    out_console,
    parse_when,
    reading_store,
    text,
    writing_monitor,
)
from redline.monitor import Monitor
from redline.store.base import EventQuery, Verifiable

__all__ = ["export", "prune", "verify"]

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class Format(str, enum.Enum):
    """Export formats."""

    soc2 = "soc2"
    gdpr = "gdpr"
    json = "json"
    csv = "csv"
    jsonl = "jsonl"


@contextlib.contextmanager
def _progress(message: str, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr; yields the ``progress(count)`` callback export calls."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        message.replace("[", "\\["),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(message, total=total or None)
        yield lambda count: bar.update(task, completed=count)


def _manifest_lines(manifest: dict[str, Any], dest: str) -> list[str]:
    count = manifest.get("count", "?")
    first, last = manifest.get("first_seq"), manifest.get("last_seq")
    span = f" (seq {first}..{last})" if first is not None else ""
    lines = [f"Exported {count} events{span} to {dest}"]
    if manifest.get("sha256"):
        lines.append(f"sha256 {manifest['sha256']}")
    v = manifest.get("verification")
    if isinstance(v, dict):
        if v.get("ok"):
            lines.append(f"verification: OK ({v.get('checked', '?')} events checked)")
        else:
            lines.append(
                f"verification: FAILED at seq {v.get('first_bad_seq')} "
                f"({v.get('damage')}): {v.get('detail', '')}"
            )
    elif v is not None:
        lines.append(f"verification: {v}")
    return lines


def export(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")],
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent.")] = None,
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Only this session.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user.")] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", "-t", help="Only this event type.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From: ISO 8601, epoch seconds or 2h.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Up to (same forms).")] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Stream a compliance report or archive to a file or stdout, then print its manifest.

    The manifest (count, seq range, sha256, verification) goes to stderr when the report goes to
    stdout. Exits 1 when the manifest says the chain failed verification.
    """
    state = State.of(ctx)
    now = time.time()
    query = EventQuery(
        agent=agent,
        session_id=session,
        user=user,
        event_type=event_type,
        since=parse_when(since, "--since", now),
        until=parse_when(until, "--until", now),
    )
    if fmt is Format.gdpr and not user:
        raise typer.BadParameter(
            "the gdpr export is about one data subject: add --user", param_hint="--format"
        )
    if getattr(Monitor, "export", None) is None:
        raise CliError("export is not available in this build")
    with writing_monitor(state) as monitor:
        options: dict[str, Any] = {}
        dest: str | IO[bytes] = output if output is not None else sys.stdout.buffer
        bar: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if output is not None and sys.stderr.isatty():
            options["total"] = monitor.store.count(query)
            bar = _progress(f"exporting {fmt.value} to {output}", options["total"])
        try:
            with bar as progress:
                if progress is not None:
                    options["progress"] = progress
                result = monitor.export(
                    fmt.value,
                    since=query.since,
                    until=query.until,
                    agent=agent,
                    session_id=session,
                    user=user,
                    event_type=event_type,
                    output=dest,
                    **options,
                )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if output is None:
            sys.stdout.buffer.flush()
    manifest: dict[str, Any] = (
        result if isinstance(result, dict) else {"result": msgspec.to_builtins(result)}
    )
    console = out_console() if output is not None else err_console()
    if state.wants_json(as_json):
        if output is not None:
            emit_json(manifest)
        else:
            import json

            sys.stderr.write(json.dumps(manifest, indent=2, default=str) + "\n")
    else:
        for line in _manifest_lines(manifest, output or "stdout"):
            console.print(text(line))
    v = manifest.get("verification")
    if isinstance(v, dict) and v.get("ok") is False:
        raise typer.Exit(EXIT_FOUND)


def verify(
    ctx: typer.Context,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key", help="Pin the signer: the Ed25519 public key (hex) you trust."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full report as JSON.")] = False,
) -> None:
    """Walk the hash chain and checkpoints: exit 0 if intact, 1 with where and how it broke."""
    state = State.of(ctx)
    if public_key is not None and not _HEX_KEY.fullmatch(public_key):
        raise typer.BadParameter(
            "expected 64 hexadecimal characters (a raw Ed25519 public key)",
            param_hint="--public-key",
        )
    with reading_store(state) as store:
        if not isinstance(store, Verifiable):
            raise CliError(f"the {store.backend} store keeps no hash chain: nothing to verify")
        report = store.verify(public_key=public_key)
    if state.wants_json(as_json):
        emit_json(report.to_dict())
    elif report.ok:
        out_console().print(
            text(
                f"OK: {count_of(report.checked, 'event')}, "
                f"{count_of(report.checkpoints_checked, 'checkpoint')}, "
                f"{count_of(report.anchors_checked, 'anchor')}" + _erasure_summary(report)
            )
        )
        for line in _erasure_lines(report):
            out_console().print(text(line))
    else:
        out_console().print(
            text(
                f"FAILED: first bad seq {report.first_bad_seq}, damage {report.damage}: "
                f"{report.detail}",
                "bold red",
            )
        )
    if not report.ok:
        raise typer.Exit(EXIT_FOUND)


def _erasure_summary(report: Any) -> str:
    """``; N erased, M dropped by K signed prune records`` when retention has run."""
    if not report.prune_records_checked:
        return ""
    return (
        f"; {report.erased} erased, {report.dropped} dropped before seq "
        f"{report.dropped + 1}, accounted for by "
        f"{count_of(report.prune_records_checked, 'signed prune record')}"
    )


def _erasure_lines(report: Any) -> list[str]:
    """One line per prune record and category: when, by whom, under which rule, how many."""
    lines = []
    for e in report.erasures:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at))
        rule = (
            f"kept {e.retention_days:g} d" if e.retention_days is not None else "no rule recorded"
        )
        cutoff = (
            f", older than {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(e.cutoff))}"
            if e.cutoff is not None
            else ""
        )
        lines.append(
            f"  prune record {e.record} ({when}, {e.actor}, {e.reason}): {e.category} "
            f"({rule}{cutoff}): {e.erased} erased, {e.dropped} dropped"
        )
    return lines


def prune(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Apply the retention policy: erase expired events' content, keeping the chain provable."""
    state = State.of(ctx)
    config = state.config()
    with writing_monitor(state) as monitor:
        report = monitor.prune(dry_run=dry_run)
    data: dict[str, Any] = msgspec.to_builtins(report)
    if state.wants_json(as_json):
        emit_json(data)
        return
    erased: dict[str, int] = data.get("erased", {})
    console = out_console()
    verb = "would erase" if dry_run else "erased"
    total = sum(erased.values())
    headline = f"Dry run: would erase {total} events" if dry_run else f"Erased {total} events"
    console.print(text(headline, "bold"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("category")
    table.add_column("kept for", justify="right")
    table.add_column(verb, justify="right")
    for category, count in erased.items():
        days = getattr(config.retention, category, None)
        table.add_row(
            text(category), text(f"{days} d" if days is not None else "forever"), text(count)
        )
    console.print(table)
    if dry_run:
        console.print(text("rows dropped: 0 (a dry run drops nothing)"))
    else:
        console.print(
            text(
                f"rows dropped: {data.get('dropped_rows', 0)}; the chain is now anchored at seq "
                f"{data.get('anchor_seq', 0)}"
            )
        )
        if data.get("record") is not None:
            console.print(text(f"signed prune record {data['record']} accounts for this prune"))
