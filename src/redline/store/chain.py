"""The hash chain, signed checkpoints and verification: how Redline proves what it stored.

Canonical encoding (version 1), fixed so an auditor can recompute every hash without Redline:

* **payload**: the event as a JSON object of its non-default fields, keys sorted by code point at
  every depth, no insignificant whitespace, UTF-8, strings escaped as JSON requires (non-ASCII kept
  as UTF-8), integers in decimal, no NaN or infinity (validation removes them). Floats carry the
  shortest digits that round-trip (the digits of Python's ``repr``) in msgspec's layout: a
  decimal point and at least one fractional digit for moderate magnitudes (``5.0``,
  ``0.00001``), an exponent with no ``+`` sign and no leading zeros for large and tiny ones
  (``1e16``, ``1.5e-7``; Python writes ``1e+16``, ``1.5e-07``). The payload bytes are stored, so
  an auditor hashes them as they are (as ``verify`` does) and never needs to re-encode.
* ``payload_sha256 = SHA-256(payload)`` in lower-case hex.
* ``hash = SHA-256("redline:v1:" + seq + ":" + prev_hash + ":" + payload_sha256)`` in lower-case
  hex, ``seq`` in decimal; the first event's ``prev_hash`` is 64 zeros (or, after a prune, the
  anchor kept for the oldest retained row).

Hashing the payload's digest rather than the payload lets retention erase an event's content while
keeping its link in the chain (a *tombstone*: seq, hashes, time, category), so pruning never breaks
verification.

A **checkpoint** signs ``"redline-checkpoint:v1:" + stream + ":" + seq + ":" + head_hash + ":" +
created_at`` with Ed25519. Checkpoints are kept in the store and, when configured, appended to an
*anchor file* that operators ship off-box: a store truncated or rewritten after a checkpoint left
the box cannot match it.

A **prune record** (see :mod:`redline.store.prune_records`) is the signed account of what
retention erased or dropped. ``verify_rows`` takes the records as an :class:`ErasureLedger`: then a
chain that does not start at genesis, a checkpoint below its start, or a tombstone is accepted only
where a signed record accounts for it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from redline.events import AgentEvent, category_of

__all__ = [
    "GENESIS",
    "ChainRow",
    "Checkpoint",
    "Erasure",
    "ErasureLedger",
    "Signer",
    "VerifyReport",
    "canonical_payload",
    "chain_hash",
    "load_anchors",
    "read_anchor_file",
    "verify_rows",
]

GENESIS: Final = "0" * 64
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode
_sha256 = hashlib.sha256


def canonical_payload(event: AgentEvent) -> bytes:
    """The event's canonical JSON bytes (see the module docstring)."""
    return _encode_sorted(event)


def chain_hash(seq: int, prev_hash: str, payload_sha256: str) -> str:
    """The chain hash of one row."""
    return _sha256(f"redline:v1:{seq}:{prev_hash}:{payload_sha256}".encode()).hexdigest()


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed statement: "stream ``stream`` had head ``head_hash`` at ``seq``"."""

    stream: str
    seq: int
    head_hash: str
    created_at: float
    signature: str
    public_key: str

    def message(self) -> bytes:
        """The exact bytes signed."""
        return (
            f"redline-checkpoint:v1:{self.stream}:{self.seq}:{self.head_hash}:{self.created_at!r}"
        ).encode()

    def valid_signature(self, public_key: str | None = None) -> bool:
        """Whether the signature verifies (against ``public_key`` if given, else its own)."""
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key or self.public_key))
            key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 key that signs checkpoints; generated on first use and kept ``0600``."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = raw.hex()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Signer:
        """Load the PEM key at ``path``, creating it (mode 0600) if it does not exist."""
        p = Path(path)
        if p.exists():
            key = serialization.load_pem_private_key(p.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{p}: not an Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return cls(key)

    def sign(self, stream: str, seq: int, head_hash: str, created_at: float) -> Checkpoint:
        """A checkpoint for ``(stream, seq, head_hash)`` at ``created_at``."""
        unsigned = Checkpoint(
            stream=stream,
            seq=seq,
            head_hash=head_hash,
            created_at=created_at,
            signature="",
            public_key=self.public_key,
        )
        return msgspec.structs.replace(unsigned, signature=self.sign_bytes(unsigned.message()))

    def sign_bytes(self, message: bytes) -> str:
        """The hex Ed25519 signature of ``message`` (prune records sign their own encoding)."""
        return self._key.sign(message).hex()


def append_anchor(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Append a checkpoint to the anchor file (one JSON line, fsync'd)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("ab") as fh:
        fh.write(msgspec.json.encode(checkpoint) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_anchors(path: str | os.PathLike[str]) -> list[Checkpoint]:
    """Every checkpoint in an anchor file (unreadable lines are skipped; see
    :func:`anchor_problem` for what verification makes of them)."""
    return _read_anchors(path)[0]


def _read_anchors(path: str | os.PathLike[str]) -> tuple[list[Checkpoint], list[int]]:
    p = Path(path)
    if not p.exists():
        return [], []
    out = []
    unreadable = []
    for number, line in enumerate(p.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(msgspec.json.decode(line, type=Checkpoint))
        except msgspec.DecodeError:
            unreadable.append(number)
    return out, unreadable


def read_anchor_file(
    path: str | os.PathLike[str] | None, *, expected: bool
) -> tuple[list[Checkpoint], tuple[str, str] | None]:
    """The anchors in ``path`` and what is wrong with the file, as ``(damage, detail)``.

    Protection that was configured and is absent is a failure, not an OK: a configured anchor
    file that is gone while the store has signed checkpoints (``expected``) is
    ``anchor_missing``; a line that does not parse is ``anchor_unreadable`` (a forger who cannot
    re-sign would rather garble the line that convicts them).
    """
    if path is None:
        return [], None
    if not Path(path).exists():
        if expected:
            return [], ("anchor_missing", f"the configured anchor file {path} is missing")
        return [], None
    anchors, unreadable = _read_anchors(path)
    if unreadable:
        lines = ", ".join(str(n) for n in unreadable[:5])
        return anchors, ("anchor_unreadable", f"{path}: unreadable anchor line(s) {lines}")
    return anchors, None


class ChainRow(msgspec.Struct, frozen=True):
    """What verification needs of a stored row. ``payload`` is ``None`` for a tombstone.

    ``columns`` are the indexed values compared with the payload; for a tombstone, the
    ``category`` and ``timestamp`` it kept (what an :class:`ErasureLedger` checks it against).
    """

    seq: int
    prev_hash: str
    hash: str
    payload_sha256: str
    payload: bytes | None
    columns: dict[str, Any] | None = None


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """One category's share of one signed prune record: what was erased, when, by whom, why."""

    record: int
    at: float
    actor: str
    reason: str
    category: str
    cutoff: float | None
    retention_days: float | None
    erased: int
    dropped: int


class VerifyReport(msgspec.Struct, kw_only=True):
    """The outcome of a verification.

    ``damage`` is ``"edited" | "deleted" | "reordered" | "truncated" | "rewritten" |
    "forged_tombstone" | "prune_record_invalid" | "prune_record_missing" | "anchor_missing" |
    "anchor_unreadable" | "unprotected" | None``; ``first_bad_seq`` the first sequence number
    where the chain stops being provable. ``erased`` counts the tombstones in the chain,
    ``dropped`` the rows removed before its start, ``erasures`` the signed prune records (per
    category) that account for both.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    damage: str | None = None
    detail: str = ""
    checkpoints_checked: int = 0
    anchors_checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    stream: str = ""
    streams: list[VerifyReport] = msgspec.field(default_factory=list)
    erased: int = 0
    dropped: int = 0
    prune_records_checked: int = 0
    erasures: list[Erasure] = msgspec.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class ErasureLedger(Protocol):
    """What verification asks of the signed prune records (:class:`~redline.store.prune_records.PruneLedger`).

    Each check returns ``None`` when the records account for what it is shown, else
    ``(first_bad_seq, damage, detail)``.
    """

    def start_problem(self, anchor_seq: int, anchor_hash: str) -> tuple[int, str, str] | None:
        """The records themselves (signed, none missing) and the chain's start they imply."""
        ...

    def below_start(self, cp: Checkpoint, public_key: str | None) -> tuple[int, str, str] | None:
        """A checkpoint at or below the start: a signed prune record must cover it."""
        ...

    def tombstone(self, seq: int, category: Any, ts: Any) -> tuple[int, str, str] | None:
        """A row without content: a signed record must have erased it, past its cutoff."""
        ...

    def annotate(self, report: VerifyReport) -> VerifyReport:
        """``report`` with the erasure counts filled in."""
        ...


def _columns_match(payload: bytes, columns: dict[str, Any]) -> bool:
    try:
        decoded = _decode(payload)
    except (msgspec.DecodeError, ValueError):
        return False
    if not isinstance(decoded, dict):
        return False
    for key, value in columns.items():
        stored: Any
        if key == "category":
            stored = category_of(decoded.get("event_type") or "action")
        else:
            stored = decoded.get(key)
        if key == "event_type" and stored is None:
            stored = "action"
        # Numbers must agree to the millisecond (room for a column's microsecond rounding),
        # not relatively: a relative 1e-6 of an epoch time let ``ts`` move by ±1,700 s.
        if stored != value and not (
            isinstance(stored, (int, float))
            and isinstance(value, (int, float))
            and abs(stored - value) <= 1e-3
        ):
            return False
    return True


def verify_rows(
    rows: Iterable[ChainRow],
    *,
    anchor_seq: int = 0,
    anchor_hash: str = GENESIS,
    checkpoints: Iterable[Checkpoint] = (),
    anchors: Iterable[Checkpoint] = (),
    public_key: str | None = None,
    stream: str = "",
    anchor_problem: tuple[str, str] | None = None,
    pinned: bool = False,
    ledger: ErasureLedger | None = None,
) -> VerifyReport:
    """Walk ``rows`` (ascending seq) and say exactly where and how the chain breaks.

    ``anchor_problem`` is what :func:`read_anchor_file` found wrong with the anchor file;
    ``pinned`` says the auditor gave the key: then a chain with rows and no signed checkpoint
    at all is ``unprotected`` (nothing vouches for it), not OK.

    ``checkpoints`` are those stored beside the rows; ``anchors`` those read from the off-box
    anchor file, which the store cannot have rewritten. ``public_key`` pins the expected signer
    (an auditor passes the key they trust; otherwise the store's recorded key is used).

    ``ledger`` holds the store's signed prune records. Without one (a store that keeps none) the
    anchor is taken on trust and tombstones pass, as before prune records existed. With one, the
    anchor must be where the records put the start (else ``truncated``), every checkpoint and
    anchor at or below it must be covered by a record, and every tombstone must have been erased
    by a record (else ``forged_tombstone``).
    """
    stored_cps = {c.seq: c for c in checkpoints}
    anchor_list = sorted(anchors, key=lambda c: c.seq)
    prev_seq = anchor_seq
    prev_hash = anchor_hash
    checked = 0
    first_seq: int | None = None
    recent: dict[str, int] = {}
    hashes_at: dict[int, str] = {}
    wanted = {c.seq for c in anchor_list} | set(stored_cps)

    def bad(seq: int, damage: str, detail: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            checked=checked,
            first_bad_seq=seq,
            damage=damage,
            detail=detail,
            first_seq=first_seq,
            last_seq=prev_seq if checked else None,
            stream=stream,
        )

    if ledger is not None:
        problem = ledger.start_problem(anchor_seq, anchor_hash)
        if problem is not None:
            return bad(*problem)
    it = iter(rows)
    row = next(it, None)
    while row is not None:
        nxt = next(it, None)
        if first_seq is None:
            first_seq = row.seq
        if row.seq != prev_seq + 1:
            if row.seq > prev_seq + 1:
                return bad(
                    prev_seq + 1, "deleted", f"rows {prev_seq + 1}..{row.seq - 1} are missing"
                )
            return bad(row.seq, "reordered", f"row {row.seq} appears after row {prev_seq}")
        if row.payload is not None:
            digest = _sha256(row.payload).hexdigest()
            if digest != row.payload_sha256:
                return bad(row.seq, "edited", f"row {row.seq}'s content does not match its digest")
            if row.columns is not None and not _columns_match(row.payload, row.columns):
                return bad(row.seq, "edited", f"row {row.seq}'s indexed columns were changed")
        elif ledger is not None:
            cols = row.columns or {}
            problem = ledger.tombstone(row.seq, cols.get("category"), cols.get("timestamp"))
            if problem is not None:
                return bad(*problem)
        expect = chain_hash(row.seq, row.prev_hash, row.payload_sha256)
        if expect != row.hash:
            moved = _original_seq(row)
            if moved is not None and moved > row.seq:
                back = nxt is not None and _original_seq(nxt) == row.seq
                if back:
                    return bad(
                        row.seq,
                        "reordered",
                        f"rows {row.seq} and {nxt.seq if nxt else row.seq + 1} swapped places",
                    )
                return bad(
                    row.seq, "deleted", f"row {row.seq} was removed and later rows renumbered"
                )
            if moved is not None:
                return bad(row.seq, "reordered", f"row {moved} was moved to position {row.seq}")
            return bad(row.seq, "edited", f"row {row.seq}'s hash does not match its content")
        if row.prev_hash != prev_hash:
            earlier = recent.get(row.prev_hash)
            if earlier is not None and earlier != prev_seq:
                return bad(
                    row.seq,
                    "reordered",
                    f"row {row.seq} follows row {earlier} in the chain, not row {prev_seq}",
                )
            if checked:
                return bad(
                    prev_seq,
                    "edited",
                    f"row {prev_seq} was changed and its hash recomputed: row {row.seq} "
                    "still links to the original",
                )
            return bad(
                row.seq, "deleted", f"row {row.seq} does not link to the anchor at {prev_seq}"
            )
        recent[row.hash] = row.seq
        if len(recent) > 4096:
            recent.pop(next(iter(recent)))
        if row.seq in wanted:
            hashes_at[row.seq] = row.hash
        prev_seq = row.seq
        prev_hash = row.hash
        checked += 1
        row = nxt

    last_seq = prev_seq
    cps_checked = 0
    for seq, cp in sorted(stored_cps.items()):
        if seq <= anchor_seq:
            if ledger is not None and (problem := ledger.below_start(cp, public_key)):
                return bad(*problem)
            continue
        if not cp.valid_signature(public_key):
            return bad(seq, "rewritten", f"checkpoint at {seq} has an invalid signature")
        if seq > last_seq:
            return bad(
                last_seq + 1,
                "truncated",
                f"a checkpoint covers row {seq} but the chain ends at {last_seq}",
            )
        if hashes_at.get(seq) != cp.head_hash:
            return bad(seq, "rewritten", f"row {seq} does not match its signed checkpoint")
        cps_checked += 1
    anchors_checked = 0
    for cp in anchor_list:
        if cp.seq <= anchor_seq:
            if ledger is not None and (problem := ledger.below_start(cp, public_key)):
                return bad(*problem)
            continue
        if not cp.valid_signature(public_key):
            return bad(cp.seq, "rewritten", f"anchored checkpoint at {cp.seq} has a bad signature")
        if cp.seq > last_seq:
            return bad(
                last_seq + 1,
                "truncated",
                f"the anchor file vouches for row {cp.seq} but the chain ends at {last_seq}",
            )
        if hashes_at.get(cp.seq) != cp.head_hash:
            return bad(cp.seq, "rewritten", f"row {cp.seq} differs from the anchored checkpoint")
        anchors_checked += 1
    if anchor_problem is not None:
        return bad(last_seq + 1 if checked else 1, anchor_problem[0], anchor_problem[1])
    if pinned and checked and not cps_checked and not anchors_checked:
        return bad(
            first_seq or 1,
            "unprotected",
            f"no checkpoint signed by the pinned key covers any of the {checked} rows",
        )
    report = VerifyReport(
        ok=True,
        checked=checked,
        checkpoints_checked=cps_checked,
        anchors_checked=anchors_checked,
        first_seq=first_seq,
        last_seq=last_seq if checked else None,
        head_hash=prev_hash if checked else None,
        stream=stream,
    )
    return report if ledger is None else ledger.annotate(report)


def _original_seq(row: ChainRow) -> int | None:
    """The position a row's hash was computed for, if it is a nearby other one."""
    for delta in (1, -1, 2, -2, 3, -3):
        seq = row.seq + delta
        if seq > 0 and chain_hash(seq, row.prev_hash, row.payload_sha256) == row.hash:
            return seq
    return None


def iter_chunks(items: Iterator[ChainRow], size: int) -> Iterator[list[ChainRow]]:
    """Group an iterator into lists of ``size`` (for batched reads)."""
    chunk: list[ChainRow] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
