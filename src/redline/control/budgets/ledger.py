"""Where budget spend and reservations live, and the one operation that must be atomic.

A :class:`Ledger` admits a reservation only if, for every budget covering it, spend plus
outstanding reservations plus the estimate stays within the limit, and writes the reservation
in the same atomic step: a SQLite ``BEGIN IMMEDIATE`` transaction, a PostgreSQL transaction
holding each budget key's advisory lock, or a lock in this process (:class:`MemoryLedger`, for
the memory and JSONL stores: budgets per process). Two racing processes can therefore never
both take the last dollar.

Spend is kept per (budget, key, bucket) (:mod:`redline.control.budgets.period`); a reservation per
(id, budget, key) with an expiry, so a process that dies holding one frees it after its TTL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["EPSILON", "Claim", "Ledger", "MemoryLedger", "Refusal", "Usage", "overruns"]

#: A sum of float cents may land a hair off an exact limit: 20 x $0.05 is exactly $1.00 here.
EPSILON = 1e-9


class Claim(NamedTuple):
    """One budget a reservation or a cost counts against."""

    budget: str
    key: str
    since: float  # spend from buckets >= since is in the current period
    bucket: float  # where a cost now is added
    limit: float


class Usage(NamedTuple):
    """A budget key's current spend and outstanding reservations."""

    spent: float
    reserved: float


def overruns(use: Usage, amount: float, limit: float) -> bool:
    """Whether admitting ``amount`` takes a budget past ``limit``.

    A step of unknown cost (``amount`` 0) is refused once nothing is left: it would spend
    something, and there is nothing to spend.
    """
    held = use.spent + use.reserved
    return held + amount > limit + EPSILON or (amount <= 0 and held >= limit - EPSILON)


class Refusal(NamedTuple):
    """Why a reservation was not admitted: the first claim it would overrun."""

    claim: Claim
    usage: Usage


@runtime_checkable
class Ledger(Protocol):
    """Budget state shared by every monitor on the same store."""

    #: Whether other processes on the same store see this ledger (False: per process).
    shared: bool

    def reserve(
        self, claims: Sequence[Claim], rid: str, amount: float, expires_at: float, now: float
    ) -> Refusal | None:
        """Admit ``amount`` against every claim atomically (``None``), or refuse (nothing held)."""
        ...

    def commit(self, rid: str, claims: Sequence[Claim], cost: float) -> list[float]:
        """Drop reservation ``rid`` and add ``cost`` to each claim's bucket, atomically; each
        claim's spend in its period afterwards (so exactly one writer sees a threshold crossed)."""
        ...

    def release(self, rid: str) -> None:
        """Drop reservation ``rid`` (nothing spent)."""
        ...

    def add_spend(self, items: Sequence[tuple[Claim, float]]) -> list[float]:
        """Add costs recorded without a reservation; each item's period spend afterwards."""
        ...

    def keys(self, budgets: Sequence[str], now: float) -> list[tuple[str, str]]:
        """Every (budget, key) of ``budgets`` with spend or an unexpired reservation."""
        ...

    def usage(self, claims: Sequence[Claim], now: float) -> list[Usage]:
        """Each claim's spend in its period and its unexpired reservations."""
        ...

    def after_fork(self) -> None:
        """Fresh connections and locks in a forked child."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryLedger:
    """A ledger in this process, for stores that are not shared (memory, JSONL)."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spend: dict[tuple[str, str], dict[float, float]] = {}
        self._held: dict[str, list[tuple[str, str, float, float]]] = {}

    def _usage(self, claim: Claim, now: float) -> Usage:
        buckets = self._spend.get((claim.budget, claim.key), {})
        spent = sum(v for b, v in buckets.items() if b >= claim.since)
        reserved = sum(
            amount
            for rows in self._held.values()
            for budget, key, amount, expires in rows
            if budget == claim.budget and key == claim.key and expires > now
        )
        return Usage(float(spent), float(reserved))

    def reserve(
        self, claims: Sequence[Claim], rid: str, amount: float, expires_at: float, now: float
    ) -> Refusal | None:
        with self._lock:
            for rid_, rows in list(self._held.items()):
                if all(expires <= now for *_, expires in rows):
                    del self._held[rid_]
            for claim in claims:
                use = self._usage(claim, now)
                if overruns(use, amount, claim.limit):
                    return Refusal(claim, use)
            self._held[rid] = [(c.budget, c.key, amount, expires_at) for c in claims]
        return None

    def commit(self, rid: str, claims: Sequence[Claim], cost: float) -> list[float]:
        with self._lock:
            self._held.pop(rid, None)
            return [self._add(claim, cost) for claim in claims]

    def _add(self, claim: Claim, cost: float) -> float:
        buckets = self._spend.setdefault((claim.budget, claim.key), {})
        buckets[claim.bucket] = buckets.get(claim.bucket, 0.0) + cost
        for b in [b for b in buckets if b < claim.since]:
            del buckets[b]  # past periods: nothing reads them again
        return sum(buckets.values())

    def release(self, rid: str) -> None:
        with self._lock:
            self._held.pop(rid, None)

    def add_spend(self, items: Sequence[tuple[Claim, float]]) -> list[float]:
        with self._lock:
            return [self._add(claim, cost) for claim, cost in items]

    def keys(self, budgets: Sequence[str], now: float) -> list[tuple[str, str]]:
        wanted = set(budgets)
        with self._lock:
            found = {k for k, buckets in self._spend.items() if buckets and k[0] in wanted}
            found.update(
                (budget, key)
                for rows in self._held.values()
                for budget, key, _amount, expires in rows
                if budget in wanted and expires > now
            )
        return sorted(found)

    def usage(self, claims: Sequence[Claim], now: float) -> list[Usage]:
        with self._lock:
            return [self._usage(c, now) for c in claims]

    def after_fork(self) -> None:
        self._lock = threading.Lock()

    def close(self) -> None:
        return None
