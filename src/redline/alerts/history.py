"""Alerts as the store holds them: one ``alert`` event per state change, folded per alert id.

Every process on a shared store writes its alerts' state changes there (firing, a group's count,
acknowledged, resolved), so the store is the one place that knows every alert: the CLI, the
server and a monitor acknowledging by filter all read alerts through :func:`latest_alerts`.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from redline.alerts.manager import Alert
from redline.store.base import StoredEvent

__all__ = ["latest_alerts"]


def latest_alerts(
    newest_first: Iterable[StoredEvent],
    *,
    state: str | None = None,
    agent: str | None = None,
    limit: int | None = None,
) -> list[Alert]:
    """The newest state of each alert, from ``alert`` events read newest first.

    The first event seen for an id is its current state; later (older) ones are its history and
    are skipped. Events whose data is not an alert (no id, wrong shape) are skipped too. Stops
    reading as soon as ``limit`` alerts match, so a long history costs only what is shown.
    """
    out: list[Alert] = []
    seen: set[str] = set()
    for stored in newest_first:
        data = stored.event.data
        alert_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(alert_id, str) or alert_id in seen:
            continue
        seen.add(alert_id)
        try:
            alert = msgspec.convert(data, Alert)
        except msgspec.ValidationError:
            continue
        if (state is None or alert.state == state) and (agent is None or alert.agent == agent):
            out.append(alert)
            if limit is not None and len(out) >= limit:
                break
    return out
