"""The monitor's budget methods (``reserve``, ``budgets``, ``has_budgets``), kept beside the
budgets themselves: :class:`~redline.monitor.Monitor` mixes them in and wires the rest (a
recorded cost in ``record()``, ``check()``, the duties tick, fork and close) in one line each.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from redline.control.budgets.manager import BudgetActions, Budgets, BudgetState, Reservation, Who
from redline.events import AgentEvent

if TYPE_CHECKING:
    from redline.monitor import Monitor

__all__ = ["BudgetMethods", "open_budgets"]


def open_budgets(monitor: Monitor) -> Budgets | None:
    """The monitor's budgets over its store's ledger (per process without one); ``None`` when
    the configuration has none."""
    configs = monitor.config.section("budgets")
    if not configs:
        return None
    from redline.control.budgets.ledger import MemoryLedger
    from redline.store.base import BudgetLedgers

    store = monitor.store
    ledger = store.budget_ledger() if isinstance(store, BudgetLedgers) else MemoryLedger()

    def record(agent: str, session_id: str | None, level: str, data: dict[str, Any]) -> None:
        with _unwaited(monitor):
            monitor._record_internal(
                AgentEvent(
                    timestamp=monitor.clock.time(),
                    agent=agent,
                    event_type="budget",
                    session_id=session_id,
                    level=level,
                    data=data,
                )
            )

    def alert(
        severity: str,
        title: str,
        message: str,
        agent: str,
        session_id: str | None,
        details: dict[str, Any],
    ) -> None:
        with _unwaited(monitor):
            monitor._alert(
                kind="budget",
                severity=severity,
                title=title,
                message=message,
                agent=agent,
                rule=details.get("budget"),
                session_id=session_id,
                details=details,
            )

    def kill(scope: str, target: str, reason: str, agent: str) -> None:
        if monitor.kill_for(agent, target if scope == "session" else None) is not None:
            return  # already stopped: one kill per overrun
        with _unwaited(monitor):
            monitor._kill(scope, target, reason, "budget", None, agent=agent)

    return Budgets(
        configs,
        ledger,
        clock=monitor.clock.time,
        price=monitor.prices.cost,
        actions=BudgetActions(record=record, alert=alert, kill=kill),
        fail_closed=monitor.config.kill_switch.fail_mode == "closed",
    )


@contextlib.contextmanager
def _unwaited(monitor: Monitor) -> Iterator[None]:
    """Act on the caller's thread without waiting on the store (it is an agent's thread)."""
    state = monitor._no_wait
    prior = getattr(state, "active", False)
    state.active = True
    try:
        yield
    finally:
        state.active = prior


class BudgetMethods:
    """``Monitor``'s budget surface."""

    _budgets: Budgets | None

    @property
    def has_budgets(self) -> bool:
        """Whether any budget is configured (integrations reserve before model calls only then)."""
        return self._budgets is not None

    def reserve(
        self,
        agent: str,
        *,
        estimate_usd: float | None = None,
        model: str | None = None,
        tokens_in: int | None = None,
        max_tokens_out: int | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        ttl_seconds: float = 300.0,
    ) -> Reservation:
        """Hold the step's estimated cost against every budget covering it, before it runs.

        With no ``estimate_usd`` the estimate is the price of ``tokens_in`` plus
        ``max_tokens_out`` for ``model`` (0 when the model has no price: admitted while the
        budget has anything left). Raises :class:`~redline.BudgetExceededError` when any
        covering budget would go past its limit (nothing is held then). Commit the returned
        reservation with the actual cost, or release it; unsettled, it expires after
        ``ttl_seconds``. Without budgets it is a reservation of nothing.
        """
        if estimate_usd is None:
            priced = (
                self.prices.estimate(model, tokens_in, max_tokens_out)
                if model is not None and (tokens_in or max_tokens_out)
                else None
            )
            estimate_usd = priced or 0.0
        elif not (math.isfinite(estimate_usd) and estimate_usd >= 0):
            raise ValueError(f"estimate_usd: expected an amount >= 0, got {estimate_usd!r}")
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise ValueError(f"ttl_seconds: expected seconds > 0, got {ttl_seconds!r}")
        who = Who(agent, session_id, user, tenant, model)
        budgets = self._budgets
        if budgets is None:
            return Reservation(None, uuid.uuid4().hex, who, estimate_usd, (), math.inf)
        return budgets.reserve(who, estimate_usd, ttl_seconds)

    def _spend_into(self, res: Reservation) -> Any:
        """Count the costs recorded on this context against ``res`` (``guard``); returns the
        token :meth:`_spend_done` takes."""
        return None if self._budgets is None else self._budgets.guarding(res)

    def _spend_done(self, token: Any) -> None:
        if token is not None:
            Budgets.unguard(token)

    def budgets(self) -> list[BudgetState]:
        """Each budget key's state: limit, spent and reserved in the current period, when the
        period started and when it resets. Keys that nothing has spent against are omitted
        (except a fleet budget's one key and a budget whose match names one key)."""
        return [] if self._budgets is None else self._budgets.states()

    @property
    def prices(self) -> Any:  # overridden by Monitor.prices
        raise NotImplementedError


def stored_states(configs: Any, store: Any, now: float | None = None) -> list[BudgetState]:
    """Budget states read straight from a store's ledger, for a process that has no monitor
    (the CLI): what every monitor on the store has spent and holds. A store without a ledger
    (memory, JSONL: budgets per process) has nothing to show."""
    from redline.store.base import BudgetLedgers

    if not configs or not isinstance(store, BudgetLedgers):
        return []
    import time

    def ignore(*_args: Any) -> None:
        return None

    budgets = Budgets(
        configs,
        store.budget_ledger(),
        clock=(lambda: now) if now is not None else time.time,
        price=ignore,
        actions=BudgetActions(record=ignore, alert=ignore, kill=ignore),
    )
    return budgets.states()
