"""The manifest every export ends with, and the hashing writer that makes it honest.

A manifest says what an export holds and how to check it::

    {"format": "jsonl", "schema": "redline-events/v1", "count": 1000000,
     "first_seq": 1, "last_seq": 1000000,
     "sha256": "…", "sha256_of": "every byte before the manifest line", "bytes": 412345678,
     "verification": {"ok": true, "checked": 1000000, "first_bad_seq": null, "damage": null, …},
     "checkpoint": {"seq": 1000000, "head_hash": "…", "signature": "…", "public_key": "…", …},
     "generated_at": "2026-11-21T10:00:00.000000Z", "filters": {…}}

``sha256`` is computed while the content streams out, so it costs one pass and no memory. In
JSON, JSONL, SOC 2 and GDPR exports the manifest is the **last line** of the file and the digest
covers every byte before it (``head -n -1 export.jsonl | sha256sum``); a CSV file holds only rows,
so its digest covers the whole file and the manifest is returned (and written to
``<file>.manifest.json`` when the export went to a path). ``verification`` is ``null`` for a store
without a hash chain (memory) or when verification was turned off.
"""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING, Any, Final

import msgspec

from redline.store.chain import Checkpoint, VerifyReport

if TYPE_CHECKING:
    from redline.compliance.report import ExportContext

__all__ = [
    "SCHEMAS",
    "HashingWriter",
    "build_manifest",
    "checkpoint_dict",
    "encode_manifest",
    "verification_dict",
]

#: The document schema each format writes (``format`` in the document, ``schema`` in manifests).
SCHEMAS: Final[dict[str, str]] = {
    "json": "redline-events/v1",
    "jsonl": "redline-events/v1",
    "csv": "redline-events-csv/v1",
    "soc2": "redline-soc2/v1",
    "gdpr": "redline-gdpr-access/v1",
}
_CHUNK: Final = 1 << 18
_encode = msgspec.json.Encoder().encode


class HashingWriter:
    """Writes bytes to ``raw`` in ~256 KiB chunks, hashing exactly what it writes.

    :meth:`write_trailer` writes bytes that the digest does not cover (the manifest).
    """

    __slots__ = ("_buf", "_pending", "_raw", "_sha", "bytes")

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self._buf: list[bytes] = []
        self._pending = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        """Queue ``data`` (hashed and written when the chunk fills)."""
        self._buf.append(data)
        self._pending += len(data)
        if self._pending >= _CHUNK:
            self.drain()

    def drain(self) -> None:
        """Hash and write everything queued."""
        if not self._buf:
            return
        blob = b"".join(self._buf)
        self._buf.clear()
        self._pending = 0
        self._sha.update(blob)
        self._raw.write(blob)
        self.bytes += len(blob)

    def hexdigest(self) -> str:
        """SHA-256 of every byte written so far (queued bytes included)."""
        self.drain()
        return self._sha.hexdigest()

    def write_trailer(self, data: bytes) -> None:
        """Write ``data`` after the hashed content, outside the digest."""
        self.drain()
        self._raw.write(data)


def verification_dict(report: VerifyReport | None) -> dict[str, Any] | None:
    """The manifest's ``verification`` object (``None`` when nothing was verified)."""
    if report is None:
        return None
    return {
        "ok": report.ok,
        "checked": report.checked,
        "first_bad_seq": report.first_bad_seq,
        "damage": report.damage,
        "detail": report.detail,
        "checkpoints_checked": report.checkpoints_checked,
        "anchors_checked": report.anchors_checked,
        "head_seq": report.last_seq,
        "head_hash": report.head_hash,
    }


def checkpoint_dict(cp: Checkpoint | None) -> dict[str, Any] | None:
    """A checkpoint with everything an auditor needs to check it offline."""
    if cp is None:
        return None
    return {
        "stream": cp.stream,
        "seq": cp.seq,
        "head_hash": cp.head_hash,
        "created_at": cp.created_at,
        "algorithm": "Ed25519",
        "public_key": cp.public_key,
        "signature": cp.signature,
        "signed_message": cp.message().decode(),
        "signature_valid": cp.valid_signature(),
    }


def build_manifest(ctx: ExportContext, sha256: str, size: int) -> dict[str, Any]:
    """The manifest for a finished export (runs verification and finds the checkpoint)."""
    from redline.compliance.report import iso

    return {
        "format": ctx.format,
        "schema": SCHEMAS[ctx.format],
        "count": ctx.count,
        "first_seq": ctx.first_seq,
        "last_seq": ctx.last_seq,
        "sha256": sha256,
        "sha256_of": "the whole file" if ctx.format == "csv" else "every byte before this line",
        "bytes": size,
        "verification": verification_dict(ctx.verification()),
        "checkpoint": checkpoint_dict(ctx.checkpoint()),
        "store": ctx.store.backend,
        "generated_at": iso(ctx.now),
        "filters": ctx.filters.to_dict(),
    }


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest as one compact JSON line (no newline inside, so it is always the last line)."""
    return _encode(manifest)
