"""What a reservation is, and whose: the identity a budget's scope reads, a budget key's state,
and :class:`Reservation` (held until committed or released).
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from redline.control.budgets.ledger import Claim

if TYPE_CHECKING:
    from redline.control.budgets.manager import Budgets

__all__ = ["CURRENT", "BudgetState", "Reservation", "Who"]

#: The reservation a ``guard(..., estimate_usd=...)`` block is spending.
CURRENT: contextvars.ContextVar[Reservation | None] = contextvars.ContextVar(
    "redline_reservation", default=None
)


class Who(NamedTuple):
    """Whose call it is: every key a budget's scope can name."""

    agent: str
    session_id: str | None = None
    user: str | None = None
    tenant: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget key now: what ``monitor.budgets()``, the CLI, the API and Prometheus show."""

    name: str
    scope: str
    key: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    period_start: float
    resets_at: float
    action: str

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "key": self.key,
            "limit_usd": self.limit_usd,
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "remaining_usd": self.remaining_usd,
            "period_start": self.period_start,
            "resets_at": self.resets_at,
            "action": self.action,
        }


class Reservation:
    """Money held for one step until it is committed (spent) or released.

    ``with monitor.reserve(...) as r:`` releases on exit unless ``r.commit()`` ran; a process
    that dies holding one frees it when its TTL expires. Committing or releasing twice is a
    no-op.
    """

    __slots__ = (
        "_budgets",
        "_claims",
        "estimate_usd",
        "expires_at",
        "id",
        "recorded",
        "state",
        "who",
    )

    def __init__(
        self,
        budgets: Budgets | None,
        rid: str,
        who: Who,
        estimate: float,
        claims: Sequence[Claim],
        expires_at: float,
    ) -> None:
        self.id = rid
        self.who = who
        self.estimate_usd = estimate
        self.expires_at = expires_at
        self._budgets = budgets
        self._claims = tuple(claims)
        self.state = "held"
        self.recorded = 0.0  # cost of events recorded against this reservation

    @property
    def budgets(self) -> list[str]:
        """The budgets this reservation holds money in."""
        return [c.budget for c in self._claims]

    def commit(
        self,
        cost_usd: float | None = None,
        *,
        model: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        tokens_cached: int | None = None,
        tokens_cache_write: int | None = None,
    ) -> float:
        """Turn the reservation into spend and return the amount spent.

        The amount is ``cost_usd``; else what events recorded against it cost; else the price
        of the given tokens; else the estimate (what was held is what is assumed spent).
        """
        if self.state != "held":
            return 0.0
        self.state = "committed"
        cost = cost_usd
        if cost is None and self.recorded > 0:
            cost = self.recorded
        if cost is None and self._budgets is not None and (tokens_in or tokens_out):
            cost = self._budgets.price(
                model or self.who.model, tokens_in, tokens_out, tokens_cached, tokens_cache_write
            )
        if cost is None or not math.isfinite(cost) or cost < 0:
            cost = self.estimate_usd
        if self._budgets is not None:
            self._budgets.settle(self, self._claims, cost)
        return cost

    def release(self) -> None:
        """Drop the reservation; what events already recorded against it cost is still spent."""
        if self.state != "held":
            return
        if self.recorded > 0:
            self.commit(self.recorded)
            return
        self.state = "released"
        if self._budgets is not None:
            self._budgets.settle(self, (), 0.0)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Reservation {self.id} ${self.estimate_usd:.6f} {self.state} {self.budgets}>"
