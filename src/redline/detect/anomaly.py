"""The record every detector produces."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Anomaly", "AnomalyAlert"]


class Anomaly(msgspec.Struct, kw_only=True):
    """Something a detector judged abnormal, with what it recommends doing.

    ``kind`` is ``zscore``, ``loop``, ``stuck``, ``suspicious``, ``drift`` or ``policy``;
    ``action`` what the configuration says to do (``alert``, ``kill_agent``, ``kill_session``,
    ``kill_global``); ``recommended_action`` seed 001's advice to a human or orchestrator
    (``pause_and_review``, ``inject_guidance``, ``require_approval`` ...). ``ttl_seconds`` is
    the kill's time to live, resolved from the policy when the configuration was compiled, so
    every policy (agent or fleet) honours its own.
    """

    kind: str
    rule: str
    agent: str
    severity: str
    message: str
    timestamp: float
    metric: str | None = None
    value: float | None = None
    z_score: float | None = None
    threshold: float | None = None
    session_id: str | None = None
    action: str = "alert"
    ttl_seconds: float | None = None
    recommended_action: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, as stored in the ``anomaly`` event's data."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


#: The peer's name for an anomaly record; kept so migrating code keeps importing it.
AnomalyAlert = Anomaly
