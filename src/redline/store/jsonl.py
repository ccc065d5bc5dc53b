"""A JSON-lines event log: the published peer's storage format, hash-chained.

``storage.path: events.jsonl`` keeps working as it did with the peer: one JSON object per line,
appended, every one of the peer's fields present (defaults included). Redline adds ``seq``,
``prev_hash`` and ``hash`` to each line (same canonical encoding as SQLite: the line's event
fields, minus those three and minus peer fields left at their defaults, are the payload), so the
log can be verified too. Appends take an exclusive ``flock`` and re-read the head under it, so
several processes can share one log. Kill state lives in a JSON file beside it (the peer's
``kill_switch.state_path``), changed under an exclusive ``flock`` on ``<state>.lock`` (so
concurrent writers in several processes lose no update), replaced atomically and polled by
modification time.

Queries scan the file: fine for the log's intended size (a development box, a single agent); use
SQLite for anything larger.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from redline.events import AgentEvent
from redline.exceptions import StoreError
from redline.store._history import HistoryPoint, from_events
from redline.store.base import EventQuery, KillRecord, StoredEvent
from redline.store.chain import (
    GENESIS,
    ChainRow,
    VerifyReport,
    canonical_payload,
    chain_hash,
    verify_rows,
)

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = ["JsonlStore"]

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_CHAIN_KEYS = ("seq", "prev_hash", "hash")
#: The peer's fields and their defaults. Every line carries all of them (the peer wrote
#: ``asdict(event)``, and its reader filters with ``entry.get("event_type")``), while the canonical
#: payload omits defaults; verification drops them again before hashing.
_PEER_DEFAULTS: dict[str, Any] = {
    "agent": "",
    "event_type": "action",
    "data": {},
    "session_id": None,
    "user": None,
    "cost_usd": None,
    "latency_ms": None,
    "tags": [],
}
_PEER_JSON = {
    k: f'"{k}":'.encode() + msgspec.json.encode(v) + b"," for k, v in _PEER_DEFAULTS.items()
}


class JsonlStore:
    """Events in an append-only JSONL file, kills in a JSON file beside it."""

    backend = "jsonl"
    persistent = True

    @classmethod
    def from_config(cls, config: MonitorConfig) -> JsonlStore:
        """The log at ``storage.path``, kills at ``kill_switch.state_path`` (the peer's key)."""
        path = config.storage.path
        assert path is not None
        return cls(path, kill_state_path=config.kill_switch.state_path or None)

    def __init__(
        self, path: str | os.PathLike[str], *, kill_state_path: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self.kill_path = (
            Path(kill_state_path) if kill_state_path else Path(f"{self.path}.kills.json")
        )
        self._lock = threading.Lock()
        self._kill_stamp: tuple[int, int] | None = None

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (files are opened per append, so nothing else)."""
        self._lock = threading.Lock()

    # -- events ---------------------------------------------------------------------------
    def append(self, events: Sequence[AgentEvent]) -> None:
        """Append a chained batch under an exclusive file lock, then fsync."""
        try:
            with self._lock, self.path.open("a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    seq, prev = _last_head(fh)
                    lines = []
                    for e in events:
                        payload = canonical_payload(e)
                        seq += 1
                        h = chain_hash(seq, prev, hashlib.sha256(payload).hexdigest())
                        chain = f'"hash":"{h}","prev_hash":"{prev}","seq":{seq},'.encode()
                        peer = b"".join(
                            _PEER_JSON[k] for k, d in _PEER_DEFAULTS.items() if getattr(e, k) == d
                        )
                        lines.append(b"{" + chain + peer + payload[1:] + b"\n")
                        prev = h
                    end = fh.seek(0, os.SEEK_END)
                    if end > 0:
                        fh.seek(end - 1)
                        if fh.read(1) != b"\n":  # a torn line from a crash: end it first
                            lines.insert(0, b"\n")
                        fh.seek(0, os.SEEK_END)
                    fh.write(b"".join(lines))
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        except OSError as exc:
            raise StoreError(f"{self.path}: append failed: {exc}") from exc

    def _lines(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        with self.path.open("rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                yield obj, raw

    def metric_history(
        self, agent: str | None, since: float, until: float, step: int
    ) -> list[HistoryPoint]:
        """Chart points computed from the events held (this store is small by design)."""
        lo = since // step * step  # the first point's start: its whole step is counted
        q = EventQuery(agent=agent, since=lo, until=until, limit=None, order="asc")
        return from_events((s.event for s in self.query(q)), agent, since, until, step)

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Scan the log for matching events (newest first unless ``order="asc"``)."""
        matches = (s for s in (self._stored(o) for o, _ in self._lines()) if s is not None)
        matches = (s for s in matches if query.matches(s.seq, s.event))
        if query.order == "asc":
            out: Iterator[StoredEvent] = matches
        elif query.limit is not None:
            out = reversed(deque(matches, maxlen=query.limit))
        else:
            out = reversed(list(matches))
        if query.limit is not None:
            return (s for i, s in enumerate(out) if i < query.limit)
        return out

    @staticmethod
    def _stored(obj: dict[str, Any]) -> StoredEvent | None:
        fields = {k: v for k, v in obj.items() if k not in _CHAIN_KEYS}
        try:
            event = msgspec.convert(fields, AgentEvent)
        except msgspec.ValidationError:
            return None
        return StoredEvent(
            seq=int(obj.get("seq", 0)),
            event=event,
            hash=obj.get("hash"),
            prev_hash=obj.get("prev_hash"),
        )

    def count(self, query: EventQuery) -> int:
        """How many events match (a scan)."""
        return sum(1 for _ in self.query(msgspec.structs.replace(query, limit=None, order="asc")))

    def verify(self, *, public_key: str | None = None) -> VerifyReport:
        """Recompute every line's hash and link (no checkpoints in a JSONL log)."""

        def rows() -> Iterator[ChainRow]:
            for obj, _ in self._lines():
                fields = {
                    k: v
                    for k, v in obj.items()
                    if k not in _CHAIN_KEYS and not (k in _PEER_DEFAULTS and v == _PEER_DEFAULTS[k])
                }
                payload = _encode_sorted(fields)
                yield ChainRow(
                    int(obj.get("seq", 0)),
                    str(obj.get("prev_hash", "")),
                    str(obj.get("hash", "")),
                    hashlib.sha256(payload).hexdigest(),
                    payload,
                    None,
                )

        return verify_rows(rows(), stream=str(self.path))

    # -- kills ----------------------------------------------------------------------------
    def load_kills(self) -> list[KillRecord]:
        """Kill records from the state file (none if it does not exist)."""
        try:
            raw = json.loads(self.kill_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.kill_path}: unreadable kill state: {exc}") from exc
        records = raw.get("records", []) if isinstance(raw, dict) else []
        return [msgspec.convert(r, KillRecord) for r in records]

    def _save_kills(self, records: list[KillRecord]) -> None:
        tmp = self.kill_path.with_suffix(self.kill_path.suffix + f".{os.getpid()}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(msgspec.json.encode({"records": records}))
        os.replace(tmp, self.kill_path)

    @contextlib.contextmanager
    def _kill_lock(self) -> Iterator[None]:
        """Serialise read-modify-write of the state file across threads and processes."""
        with self._lock:
            self.kill_path.parent.mkdir(parents=True, exist_ok=True)
            with open(f"{self.kill_path}.lock", "a+b") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace a kill record (atomic file replace, under a cross-process lock)."""
        with self._kill_lock():
            records = [r for r in self.load_kills() if r.key != record.key]
            self._save_kills([*records, record])

    def delete_kill(self, scope: str, target: str) -> None:
        """Remove a kill record."""
        with self._kill_lock():
            records = self.load_kills()
            kept = [r for r in records if r.key != (scope, target)]
            if len(kept) != len(records):
                self._save_kills(kept)

    def poll_kills(self) -> list[KillRecord] | None:
        """The kill state when the file changed since the last poll."""
        try:
            st = self.kill_path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._kill_stamp:
            return None
        first = self._kill_stamp is None
        self._kill_stamp = stamp
        try:
            records = self.load_kills()
        except StoreError:
            return None
        return None if first and not records else records

    def close(self) -> None:
        """Nothing is held open between calls."""
        return None


def _last_head(fh: Any) -> tuple[int, str]:
    """``(seq, hash)`` of the last complete line of an open log (anchor if empty)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return 0, GENESIS
    block = min(size, 65_536)
    while True:
        fh.seek(size - block)
        tail = fh.read(block)
        lines = [line for line in tail.split(b"\n") if line.strip()]
        for line in reversed(lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "hash" in obj and "seq" in obj:
                return int(obj["seq"]), str(obj["hash"])
            return 0, GENESIS
        if block >= size:
            return 0, GENESIS
        block = min(size, block * 4)
