"""What every command shares: the loaded config, the store or monitor it opens, and output.

Exit codes (scripts rely on them): ``0`` ok; ``1`` the command ran and found a problem (a broken
chain, a killed agent); ``2`` the command could not run (usage, config or store error).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import msgspec
import typer
from rich.console import Console
from rich.text import Text

from redline.config import MonitorConfig, load_config, resolve_backend
from redline.events import AgentEvent
from redline.monitor import Monitor
from redline.store.base import KillRecord, Store, StoredEvent
from redline.timeparse import parse_time

__all__ = [
    "EXIT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "State",
    "active_kills",
    "ago",
    "covering",
    "emit_json",
    "emit_json_line",
    "err_console",
    "event_line",
    "iso",
    "kill_dict",
    "money",
    "out_console",
    "parse_duration",
    "parse_when",
    "reading_store",
    "summary",
    "text",
    "what",
    "writing_monitor",
]

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1
EXIT_USAGE: Final = 2

DEFAULT_CONFIG: Final = "monitor.yaml"


class CliError(Exception):
    """A problem to report to the user as ``error: ...`` (one line per message) and exit on."""

    def __init__(self, *messages: str, code: int = EXIT_USAGE) -> None:
        self.messages = list(messages)
        self.code = code
        super().__init__("\n".join(messages))


class State:
    """The global options, and the config loaded once when a command first asks for it."""

    def __init__(self, config_path: str | None, as_json: bool) -> None:
        self.config_path = config_path
        self.json = as_json
        self._config: MonitorConfig | None = None

    @classmethod
    def of(cls, ctx: typer.Context) -> State:
        """The state the root callback stored on the context."""
        state = ctx.find_root().obj
        return state if isinstance(state, State) else cls(None, False)

    def wants_json(self, local: bool) -> bool:
        """``--json`` given globally or on the command."""
        return self.json or local

    @property
    def file(self) -> str | None:
        """The config file in use: ``-c``, else ``monitor.yaml`` when present, else none."""
        if self.config_path is not None:
            return self.config_path
        return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None

    @property
    def label(self) -> str:
        """How to name the config in messages."""
        return self.file or "the built-in defaults"

    def config(self) -> MonitorConfig:
        """Load (once) and return the config; a missing ``-c`` file is a usage error."""
        if self._config is None:
            file = self.file
            if file is None:
                self._config = MonitorConfig()
            else:
                try:
                    self._config = load_config(file)
                except FileNotFoundError:
                    raise CliError(f"config file not found: {file}") from None
        return self._config


# -- opening the store --------------------------------------------------------------------


def _persistent_backend(state: State, config: MonitorConfig) -> str:
    """The configured backend's name, refused unless it outlives the process (``persistent``).

    Judged on the backend's class, before anything is opened: a memory-only config has nothing
    the CLI could read and no running monitor it could reach.
    """
    from redline.store import store_class

    backend = resolve_backend(config.storage)
    if not store_class(config, backend).persistent:
        raise CliError(
            f"{state.label} keeps events in memory only (no storage.path), so there is nothing "
            "the CLI can read and no running monitor it can reach",
            "set storage.path to a file, e.g. 'storage: {path: redline.db}', in the config "
            "every monitor and the CLI use",
        )
    return backend


@contextlib.contextmanager
def reading_store(state: State) -> Iterator[Store]:
    """The configured store opened for reading (SQLite read-only: a reader never signs)."""
    config = state.config()
    backend = _persistent_backend(state, config)
    st = config.storage
    if backend in ("sqlite", "jsonl") and st.path and not Path(st.path).exists():
        raise CliError(
            f"no store at {st.path} (storage.path in {state.label}): nothing has been recorded "
            "there yet, or the path is wrong"
        )
    store: Store
    if backend == "sqlite":
        from redline.store.sqlite import SQLiteStore

        assert st.path is not None
        store = SQLiteStore(st.path, readonly=True, anchor_path=st.anchor_path or None)
    else:
        from redline.store import open_store

        store = open_store(config, backend)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def writing_monitor(state: State) -> Iterator[Monitor]:
    """A :class:`Monitor` on the configured store, closed (flushed) on the way out.

    The CLI's monitor never touches ``baselines.storage_path``: it learns nothing, and saving an
    empty or stale book at close would overwrite what the running agents learned.
    """
    config = state.config()
    _persistent_backend(state, config)
    replace = msgspec.structs.replace
    config = replace(config, baselines=replace(config.baselines, storage_path=""))
    with Monitor(config) as monitor:
        yield monitor


def active_kills(store: Store, now: float) -> list[KillRecord]:
    """Unexpired kill records, global first, then agents, then sessions."""
    order = {"global": 0, "agent": 1, "session": 2}
    live = [k for k in store.load_kills() if not k.expired(now)]
    return sorted(live, key=lambda k: (order.get(k.scope, 3), k.target))


def covering(kills: list[KillRecord], agent: str | None, session: str | None) -> KillRecord | None:
    """The kill that stops ``agent``/``session`` (global, then agent, then session)."""
    for rec in kills:
        if (
            rec.scope == "global"
            or (rec.scope == "agent" and rec.target == agent)
            or (rec.scope == "session" and session is not None and rec.target == session)
        ):
            return rec
    return None


def kill_dict(rec: KillRecord) -> dict[str, Any]:
    """A kill record for JSON output."""
    out: dict[str, Any] = msgspec.to_builtins(rec)
    return out


# -- parsing ------------------------------------------------------------------------------


def parse_when(value: str | None, option: str, now: float) -> float | None:
    """``--since``/``--until``: ISO 8601 (offsets honoured), epoch seconds or an age (``2h``)."""
    try:
        return parse_time(value, now=now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.I)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | None, option: str) -> float | None:
    """A length of time: seconds (``300``) or with a unit (``90s``, ``5m``, ``2h``, ``1d``)."""
    if value is None:
        return None
    m = _DURATION.match(value)
    seconds = float(m.group(1)) * _SECONDS[(m.group(2) or "s").lower()] if m else 0.0
    if seconds <= 0:
        raise typer.BadParameter(
            f"{value!r} is not a length of time: use seconds (300) or 90s, 5m, 2h, 1d",
            param_hint=option,
        )
    return seconds


# -- output -------------------------------------------------------------------------------


def _console(stream: Any) -> Console:
    tty = stream.isatty()
    width = None
    if not tty:
        try:
            width = int(os.environ.get("COLUMNS", "")) or 200
        except ValueError:
            width = 200
    return Console(file=stream, highlight=False, width=width, soft_wrap=not tty)


def out_console() -> Console:
    """Rich on stdout: colours only when stdout is a terminal; wide when piped."""
    return _console(sys.stdout)


def err_console() -> Console:
    """Rich on stderr (notes, progress, the export manifest when the report is on stdout)."""
    return _console(sys.stderr)


def text(value: object, style: str = "") -> Text:
    """A cell or line that is never read as Rich markup (event data is untrusted)."""
    return Text("" if value is None else str(value), style=style)


def _json_default(value: object) -> object:
    if isinstance(value, (msgspec.Struct, set, frozenset, tuple)):
        return msgspec.to_builtins(value)
    return str(value)


def emit_json(obj: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def emit_json_line(obj: object) -> None:
    """One compact JSON object per line on stdout, flushed (for ``tail -f`` and pipes)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def iso(ts: float | None) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-11-21T10:00:00.123Z``."""
    if ts is None:
        return "-"
    try:
        dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return repr(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def ago(ts: float | None, now: float | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago`` (``in 5s`` for the future)."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    future = delta < 0
    delta = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            amount = f"{int(delta // size)}{unit}"
            break
    else:
        amount = f"{int(delta)}s"
    return f"in {amount}" if future else f"{amount} ago"


def money(value: float | None) -> str:
    """Dollars with four decimals (``-`` when unknown)."""
    return "-" if value is None else f"${value:.4f}"


def summary(data: dict[str, Any], width: int = 80) -> str:
    """The event's ``data`` as compact JSON, cut at ``width`` characters."""
    if not data:
        return ""
    line = json.dumps(data, separators=(",", ":"), sort_keys=True, default=str, ensure_ascii=False)
    return line if len(line) <= width else line[: width - 1] + "…"


def what(e: AgentEvent) -> str:
    """The tool or model an event concerns (``tool/model`` when both)."""
    parts = [p for p in (e.tool, e.model) if p]
    return "/".join(parts) if parts else "-"


def event_line(stored: StoredEvent, *, seq: bool = True) -> str:
    """One event as a line: time, type, agent, tool/model, cost, latency, status, data."""
    e = stored.event
    latency = "-" if e.latency_ms is None else f"{e.latency_ms:.0f}ms"
    fields = [
        f"#{stored.seq:<6}" if seq else "",
        iso(e.timestamp),
        f"{e.event_type:<12}",
        f"{e.agent:<14}",
        f"{what(e):<12}",
        f"{money(e.cost_usd):>9}",
        f"{latency:>8}",
        f"{e.status or '-':<7}",
        summary(e.data),
    ]
    if e.killed_scope:
        fields.append(f"(recorded while killed: {e.killed_scope})")
    return "  ".join(f for f in fields if f).rstrip()


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``1 policy``, ``2 policies``, ``0 checkpoints``: a count with its noun agreeing."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {plural or noun + 's'}"
