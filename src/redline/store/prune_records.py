"""Signed prune records: what retention erased or dropped, when, by whom, under which rule.

Without them a tombstone (a row whose payload is ``NULL``) and a chain that starts after seq 1 are
taken on trust, so anyone with write access to the file can erase a fresh denial or cut off the
oldest rows and move the anchor, and ``verify`` still says OK. Every prune that changes rows
therefore writes, in the same transaction, one :class:`PruneRecord` signed with the store's
checkpoint key, and :class:`PruneLedger` holds verification to them.

**Where they live.** In a table of their own (``prune_records``: ``id``, ``body``, the record's
JSON), not as events in the chain. A record has to outlive the rows it accounts for, and an event
in the chain is itself subject to retention and dropped with the prefix it sits in: the proof of
the first prune would go with the second. The records are chained to each other instead: ``id``
counts 1, 2, 3 ... and ``prev`` is the SHA-256 of the previous record's stored body, so removing
or replacing one in the middle breaks the sequence (``prune_record_missing``); removing the newest
leaves its tombstones (``forged_tombstone``) or its dropped prefix (``truncated``) unaccounted for.

**What a record says** (all of it signed): the chain position the start rested on before
(``prior_seq``/``prior_hash``) and rests on after (``anchor_seq``/``anchor_hash``, a signed
checkpoint's head), so the dropped rows are exactly ``prior_seq + 1 .. anchor_seq``; the seqs it
tombstoned as a compact list of ``[first, last]`` ranges; per category the cutoff, the retention
rule (days) and the count, first and last seq it tombstoned; the rows dropped per category; the
head at the time; who ran it (``actor``), when (``created_at``) and why (``reason``).

The signed bytes are ``"redline-prune:v1:"`` followed by the record encoded as JSON with keys
sorted and ``signature`` empty (the canonical encoding of :mod:`redline.store.chain`).
"""

from __future__ import annotations

import bisect
import getpass
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from redline.store.chain import GENESIS, Checkpoint, Erasure, Signer, VerifyReport

__all__ = [
    "CategoryRule",
    "PruneLedger",
    "PruneRecord",
    "default_actor",
    "ranges_of",
    "record_digest",
    "sign_record",
]

_PREFIX: Final = b"redline-prune:v1:"
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


class CategoryRule(msgspec.Struct, frozen=True, kw_only=True):
    """One category in one prune: the rule applied and what it tombstoned."""

    cutoff: float
    retention_days: float | None = None
    tombstoned: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


class PruneRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A signed account of one prune (see the module docstring for each field's meaning)."""

    id: int
    prev: str
    created_at: float
    actor: str
    reason: str = "retention"
    rules: dict[str, CategoryRule]
    tombstoned: list[tuple[int, int]]
    tombstoned_count: int
    dropped: int
    dropped_by_category: dict[str, int]
    prior_seq: int
    prior_hash: str
    anchor_seq: int
    anchor_hash: str
    head_seq: int
    head_hash: str
    signature: str = ""
    public_key: str = ""

    def message(self) -> bytes:
        """The exact bytes signed: the record with an empty signature, keys sorted."""
        return _PREFIX + _encode_sorted(msgspec.structs.replace(self, signature=""))

    def encode(self) -> bytes:
        """The stored body."""
        return msgspec.json.encode(self)

    def valid_signature(self, public_key: str | None = None) -> bool:
        """Whether the signature verifies (against ``public_key`` if given, else its own)."""
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key or self.public_key))
            key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def first_affected(self) -> int:
        """The lowest seq this record speaks for (where a problem with it is reported)."""
        if self.dropped:
            return self.prior_seq + 1
        return self.tombstoned[0][0] if self.tombstoned else self.anchor_seq + 1


def sign_record(signer: Signer, record: PruneRecord) -> PruneRecord:
    """``record`` signed by ``signer`` (its key recorded in ``public_key``)."""
    unsigned = msgspec.structs.replace(record, signature="", public_key=signer.public_key)
    # Signed as it will decode, so a verifier re-encodes the same bytes (an ``int`` of days in a
    # ``float`` field comes back as ``30.0``, not ``30``).
    unsigned = msgspec.json.decode(unsigned.encode(), type=PruneRecord)
    return msgspec.structs.replace(unsigned, signature=signer.sign_bytes(unsigned.message()))


def record_digest(body: bytes | None) -> str:
    """What the next record's ``prev`` must be: SHA-256 of this one's stored body (genesis
    before the first)."""
    return GENESIS if body is None else hashlib.sha256(body).hexdigest()


def ranges_of(seqs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Ascending seqs folded into ``(first, last)`` runs of consecutive numbers."""
    first = last = None
    for seq in seqs:
        if last is not None and seq == last + 1:
            last = seq
            continue
        if first is not None and last is not None:
            yield first, last
        first = last = seq
    if first is not None and last is not None:
        yield first, last


def default_actor() -> str:
    """Who runs a prune when the caller does not say: ``user@host (pid N)``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = f"uid {os.getuid()}"
    return f"{user}@{os.uname().nodename} (pid {os.getpid()})"


class PruneLedger:
    """The signed prune records of one chain, as verification consults them.

    Built from the stored ``(id, body)`` rows, oldest first; decoding and every check happen in
    :meth:`start_problem`, which :func:`~redline.store.chain.verify_rows` calls before it walks
    the rows. The tombstones it is shown are counted per record and category for the report.
    """

    def __init__(
        self, rows: Sequence[tuple[int, bytes]], *, public_key: str | None, pinned: bool
    ) -> None:
        self._rows = rows
        self._public_key = public_key
        self._pinned = pinned
        self.records: list[PruneRecord] = []
        self._starts: list[int] = []
        self._spans: list[tuple[int, int, PruneRecord]] = []
        self._bounds: dict[int, str] = {}
        self._start = (0, GENESIS)
        self._counted: dict[tuple[int, str], int] = {}
        self.erased = 0

    def start_problem(self, anchor_seq: int, anchor_hash: str) -> tuple[int, str, str] | None:
        """Check the records (decodable, signed, none missing, each dropped range following the
        last), then that the stored anchor is where they put the start of the chain."""
        prev_body: bytes | None = None
        start_seq, start_hash = 0, GENESIS
        for position, (row_id, body) in enumerate(self._rows, 1):
            try:
                record = msgspec.json.decode(body, type=PruneRecord)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return (
                    start_seq + 1,
                    "prune_record_invalid",
                    f"prune record {row_id} is unreadable",
                )
            if row_id != position or record.id != row_id:
                return (
                    record.first_affected(),
                    "prune_record_missing",
                    f"prune record {position} is missing (found {row_id} in its place)",
                )
            if record.prev != record_digest(prev_body):
                return (
                    record.first_affected(),
                    "prune_record_missing",
                    f"prune record {row_id} does not follow record {row_id - 1}: a record "
                    "between them was removed or replaced",
                )
            if not record.valid_signature(self._public_key):
                whose = "the pinned key" if self._pinned else "the store's key"
                return (
                    record.first_affected(),
                    "prune_record_invalid",
                    f"prune record {row_id} is not signed by {whose}",
                )
            if (record.prior_seq, record.prior_hash) != (start_seq, start_hash) or (
                record.anchor_seq - record.prior_seq != record.dropped
            ):
                return (
                    record.first_affected(),
                    "prune_record_invalid",
                    f"prune record {row_id} does not continue from the start the records before "
                    f"it left (seq {start_seq})",
                )
            start_seq, start_hash = record.anchor_seq, record.anchor_hash
            if record.dropped:
                self._bounds[record.anchor_seq] = record.anchor_hash
            for lo, hi in record.tombstoned:
                self._spans.append((lo, hi, record))
            self.records.append(record)
            prev_body = body
        self._spans.sort(key=lambda span: span[0])
        self._starts = [span[0] for span in self._spans]
        self._start = (start_seq, start_hash)
        if (anchor_seq, anchor_hash) == self._start:
            return None
        if anchor_seq > start_seq:
            return (
                start_seq + 1,
                "truncated",
                f"rows {start_seq + 1}..{anchor_seq} were removed from the start of the chain "
                "and no signed prune record accounts for them",
            )
        return (
            anchor_seq + 1,
            "rewritten",
            f"the stored anchor (seq {anchor_seq}) is not the start the signed prune records "
            f"leave (seq {start_seq})",
        )

    def spans(self) -> list[tuple[int, int]]:
        """Every tombstoned ``(first, last)`` run the records name (after
        :meth:`start_problem` found them sound)."""
        return [(lo, hi) for lo, hi, _ in self._spans]

    def below_start(self, cp: Checkpoint, public_key: str | None) -> tuple[int, str, str] | None:
        """A checkpoint at or below the start is accounted for by the drop that removed its row;
        one a prune rested the new start on must still match that start."""
        if cp.seq > self._start[0]:  # not below the start the records vouch for
            return (cp.seq, "truncated", f"row {cp.seq} of a checkpoint is missing")
        if not cp.valid_signature(public_key):
            return (cp.seq, "rewritten", f"checkpoint at {cp.seq} has an invalid signature")
        bound = self._bounds.get(cp.seq)
        if bound is not None and bound != cp.head_hash:
            return (
                cp.seq,
                "rewritten",
                f"checkpoint at {cp.seq} differs from the start a signed prune record rests on",
            )
        return None

    def tombstone(self, seq: int, category: Any, ts: Any) -> tuple[int, str, str] | None:
        """A tombstone must lie in a record's tombstoned ranges, in a category that record
        erased, older than that category's cutoff."""
        i = bisect.bisect_right(self._starts, seq) - 1
        if i < 0 or self._spans[i][1] < seq:
            return (
                seq,
                "forged_tombstone",
                f"row {seq}'s content was erased but no signed prune record erased it",
            )
        record = self._spans[i][2]
        rule = record.rules.get(str(category))
        if rule is None:
            return (
                seq,
                "forged_tombstone",
                f"row {seq} is a {category} event; prune record {record.id} erased no {category}",
            )
        if not isinstance(ts, (int, float)) or ts >= rule.cutoff:
            return (
                seq,
                "forged_tombstone",
                f"row {seq} (time {ts}) is not older than prune record {record.id}'s cutoff "
                f"for {category} ({rule.cutoff})",
            )
        key = (record.id, str(category))
        self._counted[key] = self._counted.get(key, 0) + 1
        self.erased += 1
        return None

    def annotate(self, report: VerifyReport) -> VerifyReport:
        """``report`` with ``erased``, ``dropped`` and one :class:`Erasure` per record and
        category."""
        erasures = []
        for r in self.records:
            for category in sorted(set(r.rules) | set(r.dropped_by_category)):
                rule = r.rules.get(category)
                erased = rule.tombstoned if rule is not None else 0
                dropped = r.dropped_by_category.get(category, 0)
                if not erased and not dropped:
                    continue
                erasures.append(
                    Erasure(
                        record=r.id,
                        at=r.created_at,
                        actor=r.actor,
                        reason=r.reason,
                        category=category,
                        cutoff=rule.cutoff if rule is not None else None,
                        retention_days=rule.retention_days if rule is not None else None,
                        erased=erased,
                        dropped=dropped,
                    )
                )
        return msgspec.structs.replace(
            report,
            erased=self.erased,
            dropped=self._start[0],
            prune_records_checked=len(self.records),
            erasures=erasures,
        )
