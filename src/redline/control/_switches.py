"""Kill switches on the monitor: kill, revive, ``check()``, ``kill_for()`` and ``guard()``.

Operator calls return once their change is committed (or after the persist bound when the store
hangs); a policy's kill is enforced in memory on the recording thread and persisted by the duties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from redline._core import (
    MonitorCore,
)
from redline.detect.anomaly import Anomaly
from redline.events import AgentEvent
from redline.exceptions import AgentKilledError
from redline.guard import Guard
from redline.store.base import KillRecord

if TYPE_CHECKING:
    from redline.monitor import Monitor


class KillSwitches(MonitorCore):
    """Kill switches: operator kills and revives, the O(1) ``check()``, and ``guard()``."""

    def kill_agent(
        self, agent: str, reason: str = "", *, actor: str = "", ttl_seconds: float | None = None
    ) -> KillRecord:
        """Stop ``agent`` everywhere this store is shared; ``check()`` raises until revived."""
        return self._kill("agent", agent, reason, actor, ttl_seconds)

    def kill_session(
        self,
        session_id: str,
        reason: str = "",
        *,
        actor: str = "",
        ttl_seconds: float | None = None,
        agent: str | None = None,
    ) -> KillRecord:
        """Stop one session (of any agent); ``agent`` only labels the recorded kill event."""
        return self._kill("session", session_id, reason, actor, ttl_seconds, agent=agent)

    def kill_global(
        self, reason: str = "", *, actor: str = "", ttl_seconds: float | None = None
    ) -> KillRecord:
        """Stop every agent."""
        return self._kill("global", "*", reason, actor, ttl_seconds)

    def _kill(
        self,
        scope: str,
        target: str,
        reason: str,
        actor: str,
        ttl: float | None,
        anomaly: Anomaly | None = None,
        agent: str | None = None,
    ) -> KillRecord:
        ttl = ttl if ttl is not None else self._default_ttl
        if self._redact is not None and reason:
            # A reason is free text an operator or a policy wrote; it reaches every channel.
            reason = self._redactor.scrub_text(reason)
        rec = self._kills.kill(
            scope,
            target,
            reason=reason,
            actor=actor or "api",
            ttl_seconds=ttl,
            policy=anomaly.rule if anomaly is not None else None,
            persist=not getattr(self._no_wait, "active", False),
        )
        self._kill_count += 1
        if self._kills.committed(rec):
            self._announce_kill(rec, scope, target, reason, anomaly, agent)
        else:
            # The store did not take the kill in time: its evidence is queued without waiting
            # too (each wait would be another bounded stall on the same outage).
            prior = getattr(self._no_wait, "active", False)
            self._no_wait.active = True
            try:
                self._announce_kill(rec, scope, target, reason, anomaly, agent)
            finally:
                self._no_wait.active = prior
        return rec

    def _announce_kill(
        self,
        rec: KillRecord,
        scope: str,
        target: str,
        reason: str,
        anomaly: Anomaly | None,
        agent: str | None,
    ) -> None:
        """Record the kill event and raise its alert."""
        who = agent or (target if scope == "agent" else "*")
        self._record_internal(
            AgentEvent(
                timestamp=rec.created_at,
                agent=who,
                event_type="kill",
                session_id=target if scope == "session" else None,
                level="critical",
                data={
                    "scope": scope,
                    "target": target,
                    "reason": reason,
                    "actor": rec.actor,
                    "expires_at": rec.expires_at,
                    "policy": rec.policy,
                },
            )
        )
        what = "all agents" if scope == "global" else f"{scope} {target!r}"
        self._alert(
            kind="kill",
            severity=anomaly.severity if anomaly is not None else "critical",
            title=f"Killed {what}",
            message=reason or "no reason given",
            agent=who,
            rule=anomaly.rule if anomaly is not None else None,
            details={
                "scope": scope,
                "target": target,
                "actor": rec.actor,
                "expires_at": rec.expires_at,
            },
        )

    def revive(
        self, agent: str | None = None, session_id: str | None = None, *, actor: str = ""
    ) -> bool:
        """Lift the kill on ``agent`` and/or ``session_id``; True if anything was lifted.

        Reviving an agent starts its windows afresh and re-arms its policies, so the spike that
        tripped the switch does not trip it again on the next event.
        """
        if agent is None and session_id is None:
            raise ValueError("revive() needs an agent or a session_id (revive_global() for all)")
        lifted = False
        if agent is not None:
            lifted |= self._revive("agent", agent, actor)
        if session_id is not None:
            lifted |= self._revive("session", session_id, actor)
        return lifted

    def revive_global(self, *, actor: str = "") -> bool:
        """Lift the global kill; True if there was one."""
        return self._revive("global", "*", actor)

    def _revive(
        self,
        scope: str,
        target: str,
        actor: str,
        *,
        expired: bool = False,
        record: KillRecord | None = None,
    ) -> bool:
        rec = record if record is not None else self._kills.revive(scope, target)
        if scope == "agent":
            self.reset_metrics(target)
        elif scope == "global":
            # A fleet-wide stop is a fleet-wide fresh start: otherwise the next event re-kills.
            self.reset_metrics()
        else:
            for policy in self._policies:
                policy.rearm(session=target)
        if rec is None:
            return False
        who = target if scope == "agent" else "*"
        duration = self._now() - rec.created_at
        self._record_internal(
            AgentEvent(
                agent=who,
                timestamp=self._now(),
                event_type="revive",
                session_id=target if scope == "session" else None,
                level="warning",
                data={
                    "scope": scope,
                    "target": target,
                    "actor": actor or ("ttl" if expired else "api"),
                    "killed_at": rec.created_at,
                    "kill_reason": rec.reason,
                    "downtime_seconds": duration,
                    "expired": expired,
                },
            )
        )
        self._alert(
            kind="revive",
            severity="info",
            title=f"Revived {'all agents' if scope == 'global' else f'{scope} {target!r}'}",
            message=("kill expired" if expired else f"revived by {actor or 'api'}")
            + f" after {duration:.0f}s",
            agent=who,
            details={"scope": scope, "target": target},
        )
        for alert in self._groups.resolve_kill(target, self._now()):
            self._publish_alert(alert)  # the kill's own alert is no longer firing
        return True

    def kill_for(self, agent: str, session_id: str | None = None) -> KillRecord | None:
        """The kill that stops ``agent`` (or its session) now, by precedence global, agent,
        session; ``None`` when it may run. O(1); the one definition of precedence."""
        return self._kills.covering(agent, session_id)

    def is_killed(self, agent: str, session_id: str | None = None) -> bool:
        """Whether a kill covers ``agent`` or its session. O(1).

        With ``kill_switch.fail_mode: closed``, also True while the kill state could not be
        refreshed from a shared store for longer than ``stale_after_seconds``.
        """
        if self._kills.covering(agent, session_id) is not None:
            return True
        return self._fail_closed and self._stale_kill_state() is not None

    def check(self, agent: str, session_id: str | None = None) -> None:
        """Raise :class:`AgentKilledError` if a kill covers ``agent``/``session_id``.

        Call it before every tool or LLM call; it costs a couple of dict lookups. With
        ``fail_mode: closed`` a stale kill state (a shared store unreachable for longer than
        ``stale_after_seconds``) fails closed too, as scope ``global`` by actor ``redline``.
        """
        rec = self._kills.covering(agent, session_id) if self._kills.active else None
        if rec is not None:
            raise AgentKilledError(rec.scope, rec.target, rec.reason, rec.actor)
        if self._budgets is not None:
            self._budgets.check(agent, session_id)
        if self._fail_closed:
            age = self._stale_kill_state()
            if age is not None:
                raise AgentKilledError(
                    "global", "*", f"kill state is {age:.0f}s old (fail_mode: closed)", "redline"
                )

    def _stale_kill_state(self) -> float | None:
        """The kill state's age when it is older than the staleness bound, else None."""
        age_of = getattr(self.store, "kill_state_age", None)
        if age_of is None:
            return None
        age = float(age_of())
        return age if age > self._stale_after else None

    def guard(
        self,
        agent: str,
        session_id: str | None = None,
        *,
        event_type: str = "tool_call",
        tool: str | None = None,
        estimate_usd: float | None = None,
        **fields: Any,
    ) -> Guard:
        """A context manager (and decorator) that checks, times and records a block of work.

        On entry it calls :meth:`check`; on exit it records one ``event_type`` event with the
        block's ``latency_ms`` and ``status`` (``"ok"``, or ``"error"`` with the exception type in
        ``data["error_type"]``). Exceptions propagate unchanged.

        With ``estimate_usd`` it also reserves that much before the block (raising
        :class:`~redline.BudgetExceededError` instead of running it) and commits what the
        events recorded inside the block cost.
        """
        return Guard(
            cast("Monitor", self), agent, session_id, event_type, tool, fields, estimate_usd
        )

    def kills(self) -> list[KillRecord]:
        """Every active kill record."""
        return self._kills.records()
