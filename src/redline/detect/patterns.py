"""Behavioural pattern detectors from seed 001: loops, stuck agents and suspicious actions.

Each is a small class whose ``observe(event)`` is O(1) and returns an :class:`Anomaly` or
``None``. They only look at events that name an action (a ``tool``, or ``data["action"]`` /
``data["name"]`` / ``data["type"]`` on action and tool-call events), so chat and cost events cost
one attribute read. Per-agent state is bounded; what is evicted is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from redline.config import LoopConfig, StuckConfig, SuspiciousConfig
from redline.detect.anomaly import Anomaly
from redline.events import AgentEvent

__all__ = ["LoopDetector", "StuckDetector", "SuspiciousDetector", "action_name"]

_ACTION_TYPES = frozenset({"action", "tool_call"})
#: Calls remembered per agent and generation (see :class:`LoopDetector`).
_GENERATION_KEYS = 128
_MAX_AGENTS = 100_000
_encode = msgspec.json.Encoder().encode


def action_name(event: AgentEvent) -> str | None:
    """The name of the action an event performs, if it performs one."""
    if event.tool is not None:
        return event.tool
    if event.event_type in _ACTION_TYPES:
        data = event.data
        if data:
            for key in ("action", "name", "type"):
                value = data.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def _args_hash(data: dict[str, Any]) -> int | None:
    """A hash of the call's arguments (``data["args"|"arguments"|"input"]``); None if absent."""
    if not data:
        return None
    args = data.get("args", data.get("arguments", data.get("input")))
    if args is None:
        return None
    if isinstance(args, str):
        return hash(args)
    try:
        return hash(_encode(args))
    except (TypeError, msgspec.EncodeError, ValueError, OverflowError):
        return hash(repr(args))


class LoopDetector:
    """The same tool with the same arguments ``repeats`` times within ``window_seconds``.

    Only calls whose arguments are known count (``data["args"]``, ``["arguments"]`` or
    ``["input"]``): a bare action repeated is the stuck detector's business, not a loop.

    Memory per agent is bounded by two generations of at most ``_GENERATION_KEYS`` calls each:
    when the current generation fills, the previous one is dropped whole (counted in
    ``evicted``) and the current one becomes previous. A call seen in the previous generation
    moves to the current one, so a loop in progress is never forgotten; only calls not repeated
    within the last 256 distinct ones are. Each call is keyed by one int (the hash of tool and
    arguments) and a first sighting keeps a bare timestamp, so most entries cost ~100 bytes.
    """

    def __init__(self, config: LoopConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._now = clock
        # agent -> [current generation, previous generation]; each maps a call's key to the
        # timestamp of its first sighting, or a tuple of the last ``repeats`` timestamps.
        self._seen: dict[str, list[dict[int, float | tuple[float, ...]]]] = {}
        self._fired: dict[tuple[str, int], float] = {}
        self.evicted = 0

    def observe(self, event: AgentEvent, name: str) -> Anomaly | None:
        """Count one action; an anomaly when it closes a loop."""
        args = _args_hash(event.data)
        if args is None:
            return None
        agent = event.agent
        generations = self._seen.get(agent)
        if generations is None:
            if len(self._seen) >= _MAX_AGENTS:
                dropped = self._seen.pop(next(iter(self._seen)))
                self.evicted += len(dropped[0]) + len(dropped[1])
            generations = self._seen[agent] = [{}, {}]
        current = generations[0]
        key = hash((name, args))
        ts = event.timestamp
        seen = current.get(key)
        if seen is None:
            seen = generations[1].pop(key, None)
            if seen is None:
                if len(current) >= _GENERATION_KEYS:
                    self.evicted += len(generations[1])
                    generations[1] = current
                    current = generations[0] = {}
                current[key] = ts
                return None
        cfg = self.config
        if isinstance(seen, float):
            times: tuple[float, ...] = (seen, ts)
        else:
            times = (*seen[1 - cfg.repeats :], ts) if len(seen) >= cfg.repeats else (*seen, ts)
        current[key] = times
        if len(times) < cfg.repeats or ts - times[0] > cfg.window_seconds:
            return None
        fired_key = (agent, key)
        now = self._now()
        last = self._fired.get(fired_key)
        if last is not None and now - last < cfg.cooldown_seconds:
            return None
        if len(self._fired) >= _MAX_AGENTS:
            self._fired.clear()
        self._fired[fired_key] = now
        del current[key]
        return Anomaly(
            kind="loop",
            rule="loop",
            agent=agent,
            session_id=event.session_id,
            severity=cfg.severity,
            action=cfg.action,
            timestamp=now,
            value=float(cfg.repeats),
            threshold=float(cfg.repeats),
            recommended_action="inject_guidance",
            message=(
                f"Loop detected: {name!r} called {cfg.repeats} times with the same arguments "
                f"within {cfg.window_seconds:g}s"
            ),
            details={"tool": name, "repeats": cfg.repeats, "window_seconds": cfg.window_seconds},
        )


class StuckDetector:
    """The same action ``repeats`` times in a row: an agent going round without progress."""

    def __init__(self, config: StuckConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._now = clock
        self._runs: dict[str, list[Any]] = {}
        self._fired: dict[str, float] = {}

    def observe(self, event: AgentEvent, name: str) -> Anomaly | None:
        """Extend or restart the agent's run; an anomaly when it reaches ``repeats``."""
        run = self._runs.get(event.agent)
        if run is None:
            if len(self._runs) >= _MAX_AGENTS:
                self._runs.pop(next(iter(self._runs)))
            self._runs[event.agent] = [name, 1]
            return None
        if run[0] != name:
            run[0] = name
            run[1] = 1
            return None
        run[1] += 1
        cfg = self.config
        if run[1] < cfg.repeats:
            return None
        run[1] = 0
        now = self._now()
        last = self._fired.get(event.agent)
        if last is not None and now - last < cfg.cooldown_seconds:
            return None
        self._fired[event.agent] = now
        return Anomaly(
            kind="stuck",
            rule="stuck",
            agent=event.agent,
            session_id=event.session_id,
            severity=cfg.severity,
            action=cfg.action,
            timestamp=now,
            value=float(cfg.repeats),
            threshold=float(cfg.repeats),
            recommended_action="pause_and_review",
            message=f"Agent repeated {name!r} {cfg.repeats} times in a row",
            details={"action": name, "repeats": cfg.repeats},
        )


class SuspiciousDetector:
    """Actions whose name contains a risky word (delete, transfer, payment ...)."""

    def __init__(self, config: SuspiciousConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._now = clock
        self._patterns = tuple(p.lower() for p in config.patterns)
        self._verdicts: dict[str, str | None] = {}
        self._fired: dict[tuple[str, str], float] = {}

    def match(self, name: str) -> str | None:
        """The pattern ``name`` contains, if any (cached per name)."""
        if name in self._verdicts:
            return self._verdicts[name]
        lowered = name.lower()
        hit = next((p for p in self._patterns if p in lowered), None)
        if len(self._verdicts) < 100_000:
            self._verdicts[name] = hit
        return hit

    def observe(self, event: AgentEvent, name: str) -> Anomaly | None:
        """An anomaly when the action's name matches a pattern."""
        pattern = self.match(name)
        if pattern is None:
            return None
        cfg = self.config
        now = self._now()
        if cfg.cooldown_seconds > 0:
            key = (event.agent, name)
            last = self._fired.get(key)
            if last is not None and now - last < cfg.cooldown_seconds:
                return None
            if len(self._fired) >= _MAX_AGENTS:
                self._fired.clear()
            self._fired[key] = now
        return Anomaly(
            kind="suspicious",
            rule="suspicious_action",
            agent=event.agent,
            session_id=event.session_id,
            severity=cfg.severity,
            action=cfg.action,
            timestamp=now,
            recommended_action="require_approval",
            message=f"Suspicious action attempted: {name!r} (matches {pattern!r})",
            details={"action": name, "pattern": pattern},
        )
