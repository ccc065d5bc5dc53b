"""Kill switches: state, not log lines.

Three scopes, checked in O(1): the whole fleet (``global``), one agent, one session. The in-memory
dicts here are a cache of the store's kill table, which is the one source of truth: a kill is
committed to the store before :meth:`KillSwitch.kill` returns, and kills made by other processes
arrive through :meth:`KillSwitch.replace_all` when the monitor's background thread polls the
store. A snapshot read by the poll can predate this process's own latest change (a kill is
applied here, then committed; a poll may read in between), so each local change is remembered
with a generation number until a snapshot read after it has been adopted: ``replace_all`` lays
the newer local changes over an older snapshot instead of undoing them.

A record may carry a TTL; an expired record no longer covers anything and is collected by
:meth:`KillSwitch.expire`, which the monitor turns into ``revive`` events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from redline.exceptions import StoreError
from redline.store.base import KillRecord, Store

log = logging.getLogger("redline")

__all__ = ["SCOPES", "KillSwitch"]

SCOPES = ("global", "agent", "session")
#: How long an operator's kill waits for the store to commit it. Past that (a hung database: the
#: connection stays open and nothing comes back) the kill is enforced in this process, logged,
#: and persisted by :meth:`KillSwitch.retry_persist` once the store answers.
PERSIST_TIMEOUT_SECONDS = 5.0
#: The generation of a local change not yet committed: newer than any snapshot.
_IN_FLIGHT = float("inf")


class KillSwitch:
    """The kill state of one monitor, backed by its store."""

    def __init__(
        self,
        clock: Callable[[], float],
        store: Store | None = None,
        *,
        persist_timeout: float = PERSIST_TIMEOUT_SECONDS,
    ) -> None:
        self._now = clock
        self._store = store
        self._persist_timeout = persist_timeout
        self._retrying = threading.Event()
        self._lock = threading.Lock()
        self._global: KillRecord | None = None
        self._agents: dict[str, KillRecord] = {}
        self._sessions: dict[str, KillRecord] = {}
        #: True while any record exists: ``record()`` skips every lookup when nothing is killed.
        self.active = False
        self._soonest_expiry: float | None = None
        self._unpersisted: dict[tuple[str, str], KillRecord] = {}
        # Local changes a poll's snapshot may not show yet: key -> (generation, record or None
        # for a revive). A change in progress has generation ``_IN_FLIGHT``.
        self._generation = 0
        self._local: dict[tuple[str, str], tuple[float, KillRecord | None]] = {}
        if store is not None:
            self._install(store.load_kills())

    # -- the hot path ---------------------------------------------------------------------
    def covering(self, agent: str, session_id: str | None = None) -> KillRecord | None:
        """The record that stops ``agent`` (or its session), if any. O(1).

        Order of precedence: global, then agent, then session, so the widest reason is reported.
        """
        if not self.active:
            return None
        rec = self._global or self._agents.get(agent)
        if rec is None and session_id is not None:
            rec = self._sessions.get(session_id)
        if rec is not None and rec.expires_at is not None and self._now() >= rec.expires_at:
            return self._covering_slow(agent, session_id)
        return rec

    def _covering_slow(self, agent: str, session_id: str | None) -> KillRecord | None:
        now = self._now()
        for rec in (
            self._global,
            self._agents.get(agent),
            self._sessions.get(session_id) if session_id is not None else None,
        ):
            if rec is not None and not rec.expired(now):
                return rec
        return None

    # -- changes --------------------------------------------------------------------------
    def kill(
        self,
        scope: str,
        target: str,
        *,
        reason: str = "",
        actor: str = "",
        ttl_seconds: float | None = None,
        policy: str | None = None,
        persist: bool = True,
    ) -> KillRecord:
        """Kill ``target`` in ``scope``; persisted before this returns. Replaces an earlier kill.

        ``persist=False`` enforces the kill in this process at once and leaves the write to
        :meth:`retry_persist` on the duties thread: an automatic kill tripped inside
        ``record()`` must not wait on the store (nor on its outage).
        """
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        if scope == "global":
            target = "*"
        elif not target:
            raise ValueError(f"a {scope} kill needs a target")
        now = self._now()
        rec = KillRecord(
            scope=scope,
            target=target,
            reason=reason,
            actor=actor,
            created_at=now,
            expires_at=None if ttl_seconds is None else now + ttl_seconds,
            policy=policy,
        )
        with self._lock:
            self._set(rec)
            self._refresh()
            if self._store is not None:
                self._local[rec.key] = (_IN_FLIGHT, rec)
                if not persist:
                    self._unpersisted[rec.key] = rec
        if self._store is not None and persist:
            if self._put_bounded(rec):
                self._settle(rec.key, rec)
            else:
                # The store is unreachable or hung: this process stops the target anyway (a
                # kill must never be lost to an outage) and persists it when the store is back.
                with self._lock:
                    self._unpersisted[rec.key] = rec
                log.warning(
                    "redline: kill of %s %r not committed within %.0f s; applied in this "
                    "process, will be persisted when the store answers",
                    scope,
                    target,
                    self._persist_timeout,
                )
        return rec

    def _put_bounded(self, rec: KillRecord) -> bool:
        """``store.put_kill(rec)`` within the persist timeout: True once committed, False when
        the store failed (a :class:`StoreError`) or did not answer in time. Any other error is
        raised. The write runs on a thread of its own so a hung connection holds that thread,
        never the caller; a late success is harmless (a kill's write is idempotent)."""
        store = self._store
        assert store is not None
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def put() -> None:
            try:
                store.put_kill(rec)
                outcome.append(None)
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=put, name="redline-kill-write", daemon=True).start()
        if not done.wait(self._persist_timeout):
            return False
        error = outcome[0]
        if error is None:
            return True
        if isinstance(error, StoreError):
            log.debug("redline: kill write failed", exc_info=error)
            return False
        raise error

    def committed(self, rec: KillRecord) -> bool:
        """Whether ``rec`` is in the store (False while it waits for :meth:`retry_persist`)."""
        with self._lock:
            return rec.key not in self._unpersisted

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held this one)."""
        self._lock = threading.Lock()
        self._retrying = threading.Event()

    def retry_persist(self) -> int:
        """Persist kills applied while the store was down; returns how many are still pending.

        Each write is bounded like :meth:`kill`'s, and only one retry runs at a time, so a hung
        store never holds the duties thread nor piles up writer threads.
        """
        if not self._unpersisted or self._store is None or self._retrying.is_set():
            return len(self._unpersisted)
        self._retrying.set()
        try:
            with self._lock:
                pending = list(self._unpersisted.values())
            for rec in pending:
                if not self._put_bounded(rec):
                    return len(pending)
                with self._lock:
                    self._unpersisted.pop(rec.key, None)
                self._settle(rec.key, rec)  # committed at last: snapshots from now on show it
            return len(self._unpersisted)
        finally:
            self._retrying.clear()

    def revive(self, scope: str, target: str) -> KillRecord | None:
        """Lift the kill on ``target`` in ``scope``; returns the record lifted, if any."""
        if scope == "global":
            target = "*"
        key = (scope, target)
        # Lifted here first, then in the store: a poll in between must not see the record gone
        # from memory before this call has taken it (it would report "nothing to revive").
        with self._lock:
            rec = self._pop(scope, target)
            self._refresh()
            previous = self._local.get(key)
            if self._store is not None:
                self._local[key] = (_IN_FLIGHT, None)
        if rec is None and self._store is not None:
            # Not yet polled here (a kill made elsewhere a moment ago): the store's record is
            # the one lifted, so the revive is reported and recorded with who lifted it. A kill
            # is never deleted from the store without that.
            try:
                rec = next((k for k in self._store.load_kills() if k.key == key), None)
            except StoreError:
                rec = None
        if self._store is not None:
            try:
                self._store.delete_kill(scope, target)
            except BaseException:
                with self._lock:  # the store still holds the kill: so does this process
                    if previous is None:
                        self._local.pop(key, None)
                    else:
                        self._local[key] = previous
                    if rec is not None:
                        self._set(rec)
                    self._refresh()
                raise
            self._settle(key, None)
        return rec

    @property
    def generation(self) -> int:
        """The number of local changes so far; read it before a poll, pass it to replace_all."""
        return self._generation

    def _settle(self, key: tuple[str, str], rec: KillRecord | None) -> None:
        """A local change is committed: snapshots read from now on include it."""
        with self._lock:
            self._generation += 1
            self._local[key] = (self._generation, rec)

    def replace_all(
        self, records: Iterable[KillRecord], *, since: int | None = None
    ) -> tuple[list[KillRecord], list[KillRecord]]:
        """Adopt the store's state (another process changed it); returns ``(added, removed)``.

        ``since`` is :attr:`generation` read before the snapshot was: local changes committed
        after that (or still in progress) are laid over the snapshot, which may predate them.
        """
        new = {r.key: r for r in records}
        with self._lock:
            new.update(self._unpersisted)
            for key, (gen, rec) in self._local.items():
                if since is None or gen > since:
                    if rec is None:
                        new.pop(key, None)
                    else:
                        new[key] = rec
            self._forget(since)
            old = {r.key: r for r in self._records()}
            self._global = None
            self._agents = {}
            self._sessions = {}
            for rec in new.values():
                self._set(rec)
            self._refresh()
        added = [r for k, r in new.items() if old.get(k) != r]
        removed = [r for k, r in old.items() if k not in new]
        return added, removed

    def forget_before(self, since: int) -> None:
        """Drop local changes a snapshot read after generation ``since`` already shows.

        Called for a poll that found the store unchanged (then what was adopted last already
        shows every change committed before ``since``), so the memory stays small.
        """
        with self._lock:
            self._forget(since)

    def _forget(self, since: int | None) -> None:
        if since is not None and self._local:
            stale = [k for k, (gen, _) in self._local.items() if gen <= since]
            for key in stale:
                del self._local[key]

    def expire(self) -> list[KillRecord]:
        """Remove records whose TTL ran out (from memory and store); returns them."""
        if self._soonest_expiry is None or self._now() < self._soonest_expiry:
            return []
        now = self._now()
        with self._lock:
            gone = [r for r in self._records() if r.expired(now)]
            for rec in gone:
                self._pop(rec.scope, rec.target)
            self._refresh()
        if self._store is not None:
            for rec in gone:
                self._store.delete_kill(rec.scope, rec.target)
        return gone

    # -- reads ----------------------------------------------------------------------------
    def records(self) -> list[KillRecord]:
        """Every active record (expired ones excluded), global first."""
        now = self._now()
        with self._lock:
            return [r for r in self._records() if not r.expired(now)]

    def get(self, scope: str, target: str) -> KillRecord | None:
        """The record for one key, if active."""
        if scope == "global":
            rec = self._global
        elif scope == "agent":
            rec = self._agents.get(target)
        else:
            rec = self._sessions.get(target)
        return None if rec is None or rec.expired(self._now()) else rec

    # -- internals (called with the lock held) --------------------------------------------
    def _install(self, records: Iterable[KillRecord]) -> None:
        with self._lock:
            for rec in records:
                self._set(rec)
            self._refresh()

    def _records(self) -> list[KillRecord]:
        out = [self._global] if self._global is not None else []
        out.extend(self._agents.values())
        out.extend(self._sessions.values())
        return out

    def _set(self, rec: KillRecord) -> None:
        if rec.scope == "global":
            self._global = rec
        elif rec.scope == "agent":
            self._agents[rec.target] = rec
        else:
            self._sessions[rec.target] = rec

    def _pop(self, scope: str, target: str) -> KillRecord | None:
        if scope == "global":
            rec, self._global = self._global, None
            return rec
        if scope == "agent":
            return self._agents.pop(target, None)
        return self._sessions.pop(target, None)

    def _refresh(self) -> None:
        records = self._records()
        self.active = bool(records)
        expiries = [r.expires_at for r in records if r.expires_at is not None]
        self._soonest_expiry = min(expiries) if expiries else None
