"""Compliance exports: SOC 2 evidence, GDPR subject access, JSON, CSV and JSONL, and archives.

Every export streams: events are read from ``store.query()`` in ascending order and written as
they arrive, so a million events take no more memory than ten; nothing is capped. Every export
ends with a manifest (count, first/last seq, the SHA-256 of the content, the chain verification and
a signed checkpoint). See ``docs/audit.md``.

::

    from redline.compliance import export
    text = export(monitor, "soc2", since="30d")                  # the report as a string
    manifest = export(monitor, "jsonl", output="events.jsonl")   # streamed to a file
    manifest = export(store, "gdpr", user="u-42", output=fh)      # to a binary file object
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, overload

from redline.compliance.archive import archive_name, archive_session, read_archive, replay_session
from redline.compliance.gdpr import DEFAULT_PURPOSES
from redline.compliance.jsonexport import CSV_COLUMNS, json_trailer, jsonl_trailer
from redline.compliance.manifest import HashingWriter, build_manifest, encode_manifest
from redline.compliance.report import FORMATS, ExportContext, ExportFilters, Output, Progress

if TYPE_CHECKING:
    from redline.config import MonitorConfig
    from redline.monitor import Monitor
    from redline.store.base import Store

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_PURPOSES",
    "FORMATS",
    "ExportFilters",
    "archive_name",
    "archive_session",
    "export",
    "read_archive",
    "replay_session",
]

TimeArg = str | float | datetime | None


@overload
def export(
    source: Monitor | Store,
    format: str,
    *,
    since: TimeArg = ...,
    until: TimeArg = ...,
    agent: str | None = ...,
    session_id: str | None = ...,
    user: str | None = ...,
    event_type: str | None = ...,
    output: None = ...,
    progress: Progress | None = ...,
    total: int | None = ...,
    purposes: Mapping[str, str] | None = ...,
    verify: bool = ...,
    config: MonitorConfig | None = ...,
    now: float | None = ...,
) -> str: ...
@overload
def export(
    source: Monitor | Store,
    format: str,
    *,
    since: TimeArg = ...,
    until: TimeArg = ...,
    agent: str | None = ...,
    session_id: str | None = ...,
    user: str | None = ...,
    event_type: str | None = ...,
    output: Output,
    progress: Progress | None = ...,
    total: int | None = ...,
    purposes: Mapping[str, str] | None = ...,
    verify: bool = ...,
    config: MonitorConfig | None = ...,
    now: float | None = ...,
) -> dict[str, Any]: ...
def export(
    source: Monitor | Store,
    format: str,
    *,
    since: TimeArg = None,
    until: TimeArg = None,
    agent: str | None = None,
    session_id: str | None = None,
    user: str | None = None,
    event_type: str | None = None,
    output: Output | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    purposes: Mapping[str, str] | None = None,
    verify: bool = True,
    config: MonitorConfig | None = None,
    now: float | None = None,
) -> str | dict[str, Any]:
    """Export the events of ``source`` (a monitor, flushed first, or a store) as ``format``.

    ``format`` is ``soc2``, ``gdpr`` (needs ``user``), ``json``, ``csv`` or ``jsonl``. Filters
    combine; ``since``/``until`` take epoch seconds, ISO 8601 (offsets honoured) or ages such as
    ``"2h"`` relative to ``now`` (the monitor's clock by default).

    With ``output=None`` the report is returned as ``str``. With ``output`` (a path, or a binary
    file object) it is streamed there and the manifest (a dict) is returned; a path is written
    to ``<path>.partial`` and renamed when complete, and a CSV's manifest also goes to
    ``<path>.manifest.json``. ``progress(n)`` is called every ~10,000 events of the main pass
    with the running count (``total``, e.g. from ``store.count``, is the caller's hint for a
    progress bar and is kept in the manifest as ``expected_count``). ``verify=False`` skips the
    whole-chain verification (the manifest's ``verification`` is then ``null``). ``purposes``
    overrides the GDPR purpose of a category.
    """
    fmt = format.lower() if isinstance(format, str) else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {format!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "gdpr" and not user:
        raise ValueError("the gdpr export is about one data subject: pass user=...")
    if _is_monitor(source):
        monitor: Any = source
        monitor.flush()
        store: Store = monitor.store
        config = config if config is not None else monitor.config
        now = now if now is not None else monitor.clock.time()
    else:
        store = source  # type: ignore[assignment]
    if config is None:
        from redline.config import MonitorConfig

        config = MonitorConfig()
    if now is None:
        import time

        now = time.time()
    filters = ExportFilters.parse(
        now=now,
        since=since,
        until=until,
        agent=agent,
        session_id=session_id,
        user=user,
        event_type=event_type,
    )
    ctx = ExportContext(
        store,
        config=config,
        filters=filters,
        now=now,
        fmt=fmt,
        progress=progress,
        total=total,
        verify=verify,
    )
    if output is None:
        buf = io.BytesIO()
        _run(ctx, buf, purposes)
        return buf.getvalue().decode("utf-8")
    if isinstance(output, (str, os.PathLike)):
        return _to_path(ctx, Path(output), purposes)
    manifest = _run(ctx, output, purposes)
    flush = getattr(output, "flush", None)
    if callable(flush):
        flush()
    return manifest


def _run(ctx: ExportContext, raw: IO[bytes], purposes: Mapping[str, str] | None) -> dict[str, Any]:
    """Write the content, then the manifest; return the manifest."""
    out = HashingWriter(raw)
    fmt = ctx.format
    if fmt == "json":
        from redline.compliance.jsonexport import write_json

        write_json(ctx, out)
    elif fmt == "jsonl":
        from redline.compliance.jsonexport import write_jsonl

        write_jsonl(ctx, out)
    elif fmt == "csv":
        from redline.compliance.jsonexport import write_csv

        write_csv(ctx, out)
    elif fmt == "soc2":
        from redline.compliance.soc2 import write_soc2

        write_soc2(ctx, out)
    else:
        from redline.compliance.gdpr import write_gdpr

        write_gdpr(ctx, out, purposes=purposes)
    manifest = build_manifest(ctx, out.hexdigest(), out.bytes)
    if ctx.total is not None:
        manifest["expected_count"] = ctx.total
    if fmt != "csv":
        line = encode_manifest(manifest)
        out.write_trailer(jsonl_trailer(line) if fmt == "jsonl" else json_trailer(line))
    return manifest


def _to_path(ctx: ExportContext, path: Path, purposes: Mapping[str, str] | None) -> dict[str, Any]:
    """Stream to ``<path>.partial``, fsync, rename; a failed export leaves no file behind."""
    tmp = path.with_name(path.name + ".partial")
    try:
        with tmp.open("wb") as fh:
            manifest = _run(ctx, fh, purposes)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if ctx.format == "csv":
        side = path.with_name(path.name + ".manifest.json")
        side.write_bytes(encode_manifest(manifest) + b"\n")
    return manifest


def _is_monitor(source: object) -> bool:
    return hasattr(source, "store") and hasattr(source, "flush") and hasattr(source, "clock")
