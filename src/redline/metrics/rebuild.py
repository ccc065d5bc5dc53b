"""Window metrics rebuilt from the store, for processes that hold no live windows.

A running :class:`~redline.Monitor` answers ``get_metrics()`` from windows it keeps in memory. The
CLI (and anything else that starts cold: a restarted server, a report job) has only the store, so
it replays the events of the last window, oldest first, into fresh
:class:`~redline.metrics.windows.AgentWindows` and builds the same snapshots the monitor would.
The rules are the monitor's: governance events the monitor writes itself (``anomaly``, ``alert``,
``kill``, ``revive``) and events stored while their agent, session or the fleet was killed are
evidence, not activity, so they are not counted.

Cost: one indexed range query streamed once, O(agents × window seconds) memory.
"""

from __future__ import annotations

from typing import Final

from redline.events import GOVERNANCE_TYPES
from redline.metrics.snapshot import MetricSnapshot, snapshot_of
from redline.metrics.windows import AgentWindows
from redline.store.base import EventQuery, Store

__all__ = ["NOT_ACTIVITY", "rebuild_snapshots"]

#: Event types the monitor records about itself; they never feed the metrics.
NOT_ACTIVITY: Final = GOVERNANCE_TYPES


def rebuild_snapshots(
    store: Store,
    *,
    window: int,
    now: float,
    agent: str | None = None,
    interval: int = 60,
) -> list[MetricSnapshot]:
    """One snapshot per agent with activity in the ``window`` seconds before ``now``.

    ``agent`` limits the replay to one agent. Snapshots are sorted by agent name; an agent whose
    only events in the window are governance events or were recorded while killed is left out.
    """
    if window <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {window}")
    since = now - window
    windows: dict[str, AgentWindows] = {}
    for stored in store.query(EventQuery(since=since, until=now, order="asc", agent=agent)):
        event = stored.event
        if event.event_type in NOT_ACTIVITY or event.killed_scope is not None:
            continue
        w = windows.get(event.agent)
        if w is None:
            w = windows[event.agent] = AgentWindows(
                event.agent, (window,), start=since, interval=interval
            )
        w.observe(event)
    return [
        snapshot_of(name, window, now, *windows[name].window(window, now))
        for name in sorted(windows)
    ]
