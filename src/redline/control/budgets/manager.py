"""Budgets in force: which ones cover a call, reservations before it, spend after, and what
happens when a budget runs out.

The one rule: a reservation is admitted only if, for every budget covering it, spend plus
outstanding reservations plus the estimate stays within the limit, decided atomically by the
:class:`~redline.control.budgets.ledger.Ledger` (the store's database when it is shared). Costs
recorded without a reservation are spend too; they are summed here and written by the duties
tick (and before the next reservation), so ``record()`` never waits on the ledger.

Which spend a reservation settles: :meth:`Reservation.commit` is the reservation's spend.
An event that carries ``data.reservation_id`` of a reservation this process holds, or that is
recorded inside ``guard(..., estimate_usd=...)``, is counted by that reservation, not again.

What happens at the limit, by ``action``: ``deny`` refuses reservations and makes ``check()``
raise :class:`~redline.BudgetExceededError`; ``kill_agent``/``kill_session`` refuse and kill
the agent or session that ran out (a kill every monitor on the store obeys); ``alert`` never
refuses, it alerts. Denials, the first reservation of each period, ``warn_at`` crossings,
exhaustion and rollovers are ``budget`` events, chained like every other record.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redline.control.budgets.config import BudgetConfig
from redline.control.budgets.ledger import EPSILON, Claim, Ledger, Refusal, Usage
from redline.control.budgets.period import Window, window_of
from redline.control.budgets.reservation import CURRENT, BudgetState, Reservation, Who
from redline.exceptions import BudgetExceededError, StoreError

__all__ = ["BudgetActions", "BudgetState", "Budgets", "Reservation", "Who"]

log = logging.getLogger("redline.control.budgets")

_MATCH_CACHE = 4096  # identities whose covering budgets are remembered
_SETTLED = 4096  # settled reservation ids remembered (their late events are not spend)


@dataclass(frozen=True, slots=True)
class BudgetActions:
    """What the manager may do to the monitor: record a ``budget`` event, alert, kill. Each
    runs without waiting on the store (the caller is an agent's thread)."""

    record: Callable[[str, str | None, str, dict[str, Any]], None]  # agent, session, level, data
    alert: Callable[[str, str, str, str, str | None, dict[str, Any]], None]
    kill: Callable[[str, str, str, str], None]  # scope, target, reason, agent


class _Budget:
    """A configured budget with its matcher and its current window, cached until it resets."""

    __slots__ = ("_match", "_window", "config", "field", "hard")

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self.hard = config.action != "alert"
        self.field = (
            "agent"
            if config.scope == "fleet"
            else {"session": "session_id"}.get(config.scope, config.scope)
        )
        self._match: Callable[[str], Any] | None = (
            None if config.match == "*" else re.compile(fnmatch.translate(config.match)).match
        )
        self._window = Window(0.0, 0.0, -math.inf)

    def key(self, who: Who) -> str | None:
        """The key ``who`` spends against, or ``None`` when this budget does not cover it."""
        if self.config.scope == "fleet":
            return "*"
        value = getattr(who, self.field)
        if value is None or (self._match is not None and self._match(value) is None):
            return None
        return str(value)

    def window(self, now: float) -> Window:
        w = self._window
        if not (w.bucket <= now < w.resets_at):
            w = self._window = window_of(self.config, now)
        return w

    def claim(self, key: str, now: float) -> Claim:
        w = self.window(now)
        limit = self.config.limit_usd if self.hard else math.inf
        return Claim(self.config.name, key, w.since, w.bucket, limit)


class Budgets:
    """Every configured budget of one monitor, over one ledger."""

    def __init__(
        self,
        configs: Sequence[BudgetConfig],
        ledger: Ledger,
        *,
        clock: Callable[[], float],
        price: Callable[..., float | None],
        actions: BudgetActions,
        fail_closed: bool = False,
    ) -> None:
        self._budgets = [_Budget(c) for c in configs]
        self._by_name = {b.config.name: b for b in self._budgets}
        self.ledger = ledger
        self._now = clock
        self.price = price
        self._do = actions
        self._fail_closed = fail_closed
        self._lock = threading.Lock()
        self._matches: OrderedDict[Who, tuple[tuple[_Budget, str], ...]] = OrderedDict()
        self._pending: dict[Claim, float] = {}
        self._live: dict[str, Reservation] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()
        # What check() reads: (scope, key) -> (resets_at, budget, spent) of exhausted deny budgets.
        self._exhausted: dict[tuple[str, str], tuple[float, str, float]] = {}
        self._seen: dict[tuple[str, str], float] = {}  # (budget, key) -> period start used
        self._announced: set[tuple[str, str, float, str]] = set()  # (budget, key, since, what)
        self._periods: dict[str, float] = {}
        self.errors = 0
        self.denied = 0
        self.admitted = 0

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    # -- which budgets cover a call ----------------------------------------------------------
    def covering(self, who: Who) -> tuple[tuple[_Budget, str], ...]:
        """(budget, key) for every budget covering ``who``; remembered per identity."""
        found = self._matches.get(who)
        if found is None:
            found = tuple((b, k) for b in self._budgets if (k := b.key(who)) is not None)
            with self._lock:
                self._matches[who] = found
                if len(self._matches) > _MATCH_CACHE:
                    self._matches.popitem(last=False)
        return found

    # -- before a call ---------------------------------------------------------------------
    def reserve(self, who: Who, estimate: float, ttl: float) -> Reservation:
        """Hold ``estimate`` against every budget covering ``who``, or raise
        :class:`BudgetExceededError` (recorded as a ``budget`` denial)."""
        now = self._now()
        rid = uuid.uuid4().hex
        cover = self.covering(who)
        if not cover:
            return Reservation(None, rid, who, estimate, (), now + ttl)
        self.flush()  # unreserved spend first, so it counts
        claims = [b.claim(k, now) for b, k in cover]
        try:
            refusal = self.ledger.reserve(claims, rid, estimate, now + ttl, now)
        except StoreError as exc:
            self._failed("reserve", exc)
            if self._fail_closed:
                b, k = cover[0]
                raise BudgetExceededError(
                    b.config.name,
                    b.config.scope,
                    k,
                    b.config.limit_usd,
                    math.nan,
                    math.nan,
                    estimate,
                ) from exc
            return Reservation(None, rid, who, estimate, (), now + ttl)
        if refusal is not None:
            self._refuse(who, refusal, estimate, now)
        res = Reservation(self, rid, who, estimate, claims, now + ttl)
        with self._lock:
            self._live[rid] = res
            self.admitted += 1
        for claim in claims:
            if self._seen.get((claim.budget, claim.key)) != claim.since:
                self._seen[(claim.budget, claim.key)] = claim.since
                self._event(who, "info", "admit", claim, estimate_usd=estimate, reservation_id=rid)
        return res

    def _refuse(self, who: Who, refusal: Refusal, estimate: float, now: float) -> None:
        claim, use = refusal
        b = self._by_name[claim.budget]
        cfg = b.config
        self.denied += 1
        if use.spent >= cfg.limit_usd - EPSILON:
            self._mark_exhausted(b, claim.key, use.spent, now)
        self._event(
            who,
            "warning",
            "deny",
            claim,
            spent_usd=use.spent,
            reserved_usd=use.reserved,
            estimate_usd=estimate,
        )
        if self._once(claim, "deny"):
            self._do.alert(
                "warning",
                f"Budget {cfg.name!r} denied a call",
                f"{cfg.scope} {claim.key!r} would exceed ${cfg.limit_usd:.4f}: spent "
                f"${use.spent:.4f}, reserved ${use.reserved:.4f}, this step ${estimate:.4f}",
                who.agent,
                who.session_id,
                self._details(claim, use.spent, use.reserved),
            )
        self._act(b, claim.key, who, use.spent)
        raise BudgetExceededError(
            cfg.name, cfg.scope, claim.key, cfg.limit_usd, use.spent, use.reserved, estimate
        )

    def check(self, agent: str, session_id: str | None) -> None:
        """Raise :class:`BudgetExceededError` if an exhausted ``deny`` budget covers the agent,
        its session or the fleet (O(1); filled by commits, refusals and the duties' refresh)."""
        exhausted = self._exhausted
        if not exhausted:
            return
        now = self._now()
        for key in (("agent", agent), ("session", session_id or ""), ("fleet", "*")):
            hit = exhausted.get(key)
            if hit is None:
                continue
            resets_at, name, spent = hit
            if now >= resets_at:
                exhausted.pop(key, None)
                continue
            cfg = self._by_name[name].config
            raise BudgetExceededError(name, cfg.scope, key[1], cfg.limit_usd, spent, 0.0)

    # -- after a call ----------------------------------------------------------------------
    def settle(self, res: Reservation, claims: Sequence[Claim], cost: float) -> None:
        """Commit (``claims``: spend ``cost``) or release (no claims) reservation ``res``."""
        with self._lock:
            self._live.pop(res.id, None)
            self._settled[res.id] = None
            if len(self._settled) > _SETTLED:
                self._settled.popitem(last=False)
        now = self._now()
        try:
            if not claims:
                self.ledger.release(res.id)
                return
            # The period the cost falls in is now's, which may be past the reservation's.
            current = [self._by_name[c.budget].claim(c.key, now) for c in claims]
            after = self.ledger.commit(res.id, current, cost)
        except StoreError as exc:
            self._failed("commit", exc)
            return
        self._crossed(res.who, list(zip(current, after, [cost] * len(current), strict=True)), now)

    def note(self, who: Who, cost: float, reservation_id: Any) -> None:
        """A recorded event cost ``cost``: its reservation's, the guarded block's, or spend."""
        if reservation_id is not None:
            res = self._live.get(reservation_id) if isinstance(reservation_id, str) else None
            if res is not None:
                res.recorded += cost
                return
            if reservation_id in self._settled:
                return  # its commit already counted it
        current = CURRENT.get()
        if current is not None and current.state == "held" and current.who.agent == who.agent:
            current.recorded += cost
            return
        cover = self.covering(who)
        if not cover:
            return
        now = self._now()
        with self._lock:
            for b, k in cover:
                claim = b.claim(k, now)
                self._pending[claim] = self._pending.get(claim, 0.0) + cost

    def flush(self) -> None:
        """Write the spend recorded without a reservation (the duties tick, and before each
        reservation). A ledger that cannot take it keeps it for the next try."""
        if not self._pending:
            return
        with self._lock:
            items, self._pending = list(self._pending.items()), {}
        try:
            after = self.ledger.add_spend(items)
        except StoreError as exc:
            self._failed("spend", exc)
            with self._lock:
                for claim, cost in items:
                    self._pending[claim] = self._pending.get(claim, 0.0) + cost
            return
        now = self._now()
        for (claim, cost), spent in zip(items, after, strict=True):
            self._seen.setdefault((claim.budget, claim.key), claim.since)
            self._crossed(None, [(claim, spent, cost)], now)

    def _crossed(
        self, who: Who | None, rows: Sequence[tuple[Claim, float, float]], now: float
    ) -> None:
        """Spend moved from ``spent - cost`` to ``spent``: warn_at fractions and the limit
        crossed on the way are announced (by exactly the writer that crossed them)."""
        for claim, spent, cost in rows:
            b = self._by_name[claim.budget]
            cfg = b.config
            before = spent - cost
            actor = who or Who(claim.key if cfg.scope == "agent" else "*")
            for fraction in cfg.warn_at:
                line = fraction * cfg.limit_usd
                if before < line - EPSILON <= spent:
                    self._event(actor, "warning", "warn", claim, spent_usd=spent, fraction=fraction)
                    self._do.alert(
                        "warning",
                        f"Budget {cfg.name!r} at {fraction:.0%}",
                        f"{cfg.scope} {claim.key!r} has spent ${spent:.4f} of ${cfg.limit_usd:.4f}",
                        actor.agent,
                        actor.session_id,
                        self._details(claim, spent, None, fraction=fraction),
                    )
            if spent >= cfg.limit_usd - EPSILON:
                self._mark_exhausted(b, claim.key, spent, now)
                if before < cfg.limit_usd - EPSILON:
                    self._exhaust(b, claim, actor, spent)

    def _exhaust(self, b: _Budget, claim: Claim, who: Who, spent: float) -> None:
        cfg = b.config
        level = "critical" if cfg.action.startswith("kill") else "warning"
        self._event(who, level, "exhausted", claim, spent_usd=spent)
        self._do.alert(
            level,
            f"Budget {cfg.name!r} exhausted",
            f"{cfg.scope} {claim.key!r} has spent ${spent:.4f} of ${cfg.limit_usd:.4f} "
            f"({cfg.action})",
            who.agent,
            who.session_id,
            self._details(claim, spent, None),
        )
        self._act(b, claim.key, who, spent)

    def _act(self, b: _Budget, key: str, who: Who, spent: float) -> None:
        """Kill what ran out, for a ``kill_agent``/``kill_session`` budget."""
        cfg = b.config
        reason = f"budget {cfg.name!r} exhausted: ${spent:.4f} of ${cfg.limit_usd:.4f}"
        if cfg.action == "kill_agent" and who.agent not in ("*", ""):
            self._do.kill("agent", who.agent, reason, who.agent)
        elif cfg.action == "kill_session":
            self._do.kill("session", key, reason, who.agent)

    def _mark_exhausted(self, b: _Budget, key: str, spent: float, now: float) -> None:
        cfg = b.config
        if cfg.action == "deny" and cfg.scope in ("agent", "session", "fleet"):
            self._exhausted[(cfg.scope, key)] = (b.window(now).resets_at, cfg.name, spent)

    # -- duties and reads ------------------------------------------------------------------
    def tick(self) -> None:
        """The duties: write pending spend, refresh which deny budgets are exhausted (spend by
        other processes too), announce rollovers, drop expired local reservations."""
        self.flush()
        now = self._now()
        for b in self._budgets:
            w = b.window(now)
            previous = self._periods.get(b.config.name)
            self._periods[b.config.name] = w.since
            if b.config.rolling_seconds is None and previous is not None and previous < w.since:
                self._rollover(b, previous, w)
        with self._lock:
            for rid in [r for r, res in self._live.items() if res.expires_at <= now]:
                del self._live[rid]
        checked = [
            (self._by_name[name], k)
            for (name, k) in list(self._seen)
            if self._by_name[name].config.action == "deny"
            and self._by_name[name].config.scope in ("agent", "session", "fleet")
        ]
        if not checked:
            return
        try:
            uses = self.ledger.usage([b.claim(k, now) for b, k in checked], now)
        except StoreError as exc:
            self._failed("refresh", exc)
            return
        for (b, k), use in zip(checked, uses, strict=True):
            if use.spent >= b.config.limit_usd - EPSILON:
                self._mark_exhausted(b, k, use.spent, now)
            else:
                self._exhausted.pop((b.config.scope, k), None)

    def _rollover(self, b: _Budget, previous: float, w: Window) -> None:
        cfg = b.config
        for key in [k for (name, k) in self._seen if name == cfg.name]:
            self._exhausted.pop((cfg.scope, key), None)
        self._event(
            Who("*"),
            "info",
            "rollover",
            Claim(cfg.name, "*", w.since, w.bucket, cfg.limit_usd),
            previous_period_start=previous,
            resets_at=w.resets_at,
        )

    def states(self) -> list[BudgetState]:
        """Each budget key's state now: spend in the period and outstanding reservations.

        Every key with spend or a hold on the ledger (whoever wrote it); a fleet budget, or
        one whose match names a single key, is shown before anything is spent."""
        self.flush()
        now = self._now()
        keys = set(self.ledger.keys(self.names, now))
        for b in self._budgets:
            cfg = b.config
            if cfg.scope == "fleet":
                keys.add((cfg.name, "*"))
            elif not any(ch in cfg.match for ch in "*?["):
                keys.add((cfg.name, cfg.match))
        ordered = sorted(keys)
        uses: list[Usage] = self.ledger.usage(
            [self._by_name[n].claim(k, now) for n, k in ordered], now
        )
        out = []
        for (name, key), use in zip(ordered, uses, strict=True):
            b = self._by_name[name]
            w = b.window(now)
            out.append(
                BudgetState(
                    name,
                    b.config.scope,
                    key,
                    b.config.limit_usd,
                    use.spent,
                    use.reserved,
                    w.since,
                    w.resets_at,
                    b.config.action,
                )
            )
        return out

    def guarding(self, res: Reservation) -> contextvars.Token[Reservation | None]:
        """Make ``res`` the reservation events recorded on this context spend (``guard``)."""
        return CURRENT.set(res)

    @staticmethod
    def unguard(token: contextvars.Token[Reservation | None]) -> None:
        CURRENT.reset(token)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._live = {}
        self._pending = {}
        self.ledger.after_fork()

    def close(self) -> None:
        self.flush()
        self.ledger.close()

    # -- records ---------------------------------------------------------------------------
    def _once(self, claim: Claim, what: str) -> bool:
        mark = (claim.budget, claim.key, claim.since, what)
        if mark in self._announced:
            return False
        if len(self._announced) > 10_000:
            self._announced.clear()
        self._announced.add(mark)
        return True

    def _details(
        self, claim: Claim, spent: float, reserved: float | None, **more: Any
    ) -> dict[str, Any]:
        cfg = self._by_name[claim.budget].config
        out: dict[str, Any] = {
            "budget": cfg.name,
            "scope": cfg.scope,
            "key": claim.key,
            "limit_usd": cfg.limit_usd,
            "spent_usd": spent,
            "action": cfg.action,
            "period_start": claim.since,
        }
        if reserved is not None:
            out["reserved_usd"] = reserved
        out.update(more)
        return out

    def _event(self, who: Who, level: str, decision: str, claim: Claim, **fields: Any) -> None:
        cfg = self._by_name[claim.budget].config
        data: dict[str, Any] = {
            "decision": decision,
            "budget": cfg.name,
            "scope": cfg.scope,
            "key": claim.key,
            "limit_usd": cfg.limit_usd,
            "action": cfg.action,
            "period_start": claim.since,
        }
        data.update(fields)
        self._do.record(who.agent, who.session_id, level, data)

    def _failed(self, what: str, exc: StoreError) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.warning("redline: budget ledger %s failed (%d so far): %s", what, self.errors, exc)
