"""Per-session archives (seed 002): one JSONL file per session, replayable later.

``archive_session(monitor, "sess-123", "/data/archive")`` writes
``/data/archive/sess-123.jsonl``: every event of the session in order, one per line, then a
``{"manifest": {...}}`` line whose ``sha256`` covers every line before it. ``read_archive(path)``
replays such a file and checks that digest; ``replay_session(store, id)`` replays straight from
the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from redline.events import AgentEvent
from redline.exceptions import IntegrityError
from redline.store.base import EventQuery, Store, StoredEvent

__all__ = ["archive_name", "archive_session", "read_archive", "replay_session"]

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME: Final = 120


def archive_name(session_id: str) -> str:
    """A file name for ``session_id``: safe characters only, no leading dot, bounded length.

    When anything had to change, a short digest of the original id is appended so two ids that
    clean up alike (``a/b`` and ``a_b``) never share a file.
    """
    clean = _UNSAFE.sub("_", session_id).lstrip(".-")[:_MAX_NAME]
    if clean != session_id or not clean:
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        clean = f"{clean or 'session'}-{digest}"
    return clean + ".jsonl"


def archive_session(
    source: Any,
    session_id: str,
    directory: str | os.PathLike[str],
    *,
    verify: bool = False,
) -> Path:
    """Write every event of ``session_id`` to ``<directory>/<session_id>.jsonl``; return the path.

    ``source`` is a :class:`~redline.Monitor` (flushed first) or a store. ``verify=True`` also
    walks the store's whole chain into the manifest (costly when archiving many sessions).
    """
    from redline.compliance import export

    path = Path(directory) / archive_name(session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    export(source, "jsonl", session_id=session_id, output=path, verify=verify)
    return path


def replay_session(source: Any, session_id: str) -> Iterator[StoredEvent]:
    """The session's stored events, oldest first, straight from the store (streamed)."""
    store: Store = source.store if _is_monitor(source) else source
    if _is_monitor(source):
        source.flush()
    return store.query(EventQuery(session_id=session_id, order="asc"))


def read_archive(path: str | os.PathLike[str]) -> Iterator[StoredEvent]:
    """Replay an archive file, then check its manifest: raises :class:`IntegrityError` at the end
    when the lines do not match the manifest's ``sha256`` or ``count``, or it has none."""
    sha = hashlib.sha256()
    count = 0
    pending: bytes | None = None
    with Path(path).open("rb") as fh:
        for line in fh:
            if pending is not None:
                sha.update(pending)
                count += 1
                yield _stored(pending)
            pending = line
    manifest = _manifest(pending)
    if manifest is None:
        raise IntegrityError(f"{path}: no manifest line: the archive is truncated")
    if manifest.get("sha256") != sha.hexdigest() or manifest.get("count") != count:
        raise IntegrityError(f"{path}: the events do not match the manifest's sha256 and count")


def _stored(line: bytes) -> StoredEvent:
    obj = json.loads(line)
    seq = int(obj.pop("seq"))
    h = obj.pop("hash", None)
    prev = obj.pop("prev_hash", None)
    return StoredEvent(seq=seq, event=msgspec.convert(obj, AgentEvent), hash=h, prev_hash=prev)


def _manifest(line: bytes | None) -> dict[str, Any] | None:
    if line is None:
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    manifest = obj.get("manifest") if isinstance(obj, dict) else None
    return manifest if isinstance(manifest, dict) else None


def _is_monitor(source: Any) -> bool:
    return hasattr(source, "store") and hasattr(source, "flush")
