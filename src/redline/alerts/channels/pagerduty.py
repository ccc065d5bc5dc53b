"""The ``pagerduty`` channel: PagerDuty Events API v2.

``firing`` → ``trigger`` (with the payload), ``acknowledged`` → ``acknowledge``, ``resolved`` →
``resolve``; all three share ``dedup_key`` = the alert's fingerprint, so PagerDuty keeps one
incident per fingerprint and resolves the one that was triggered. The ``routing_key`` (an
integration key) is a credential: masked in every log line and error.

Severity: critical → critical, high → error, medium/warning → warning, low/info → info.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx

from redline.alerts.channels._http import HttpChannel, iso8601, truncate
from redline.exceptions import ConfigError

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["PagerDutyChannel", "dedup_key"]

SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "warning": "warning",
    "low": "info",
    "info": "info",
}
ACTION = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}
_SUMMARY_MAX = 1024
_DEDUP_MAX = 255


def dedup_key(alert: Alert) -> str:
    """The alert's fingerprint (its id when it has none), hashed down if over 255 characters."""
    key = alert.fingerprint or alert.id
    if len(key) <= _DEDUP_MAX:
        return key
    return key[:190] + ":" + hashlib.sha256(key.encode()).hexdigest()


class PagerDutyChannel(HttpChannel):
    """Sends Events API v2 events to ``url`` (default: PagerDuty's enqueue endpoint)."""

    default_url = "https://events.pagerduty.com/v2/enqueue"

    def __init__(
        self, config: AlertChannelConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not config.routing_key:
            raise ConfigError("routing_key: a pagerduty channel needs a routing_key")
        super().__init__(config, transport=transport)
        self.routing_key = config.routing_key
        self._add_secrets(self.routing_key)

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r}, routing_key='***')"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The event sent (``payload`` only on trigger, as the API documents)."""
        action = ACTION.get(alert.state, "trigger")
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": dedup_key(alert),
        }
        if action != "trigger":
            return event
        details: dict[str, Any] = {
            "alert_id": alert.id,
            "agent": alert.agent,
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
        }
        if alert.rule:
            details["rule"] = alert.rule
        if alert.session_id:
            details["session_id"] = alert.session_id
        if alert.details:
            details["details"] = alert.details
        event["payload"] = {
            "summary": truncate(f"{alert.title}: {alert.message}", _SUMMARY_MAX),
            "source": alert.agent,
            "severity": SEVERITY.get(alert.severity, "warning"),
            "timestamp": iso8601(alert.timestamp),
            "component": alert.rule or alert.kind,
            "group": alert.session_id or alert.agent,
            "class": alert.kind,
            "custom_details": details,
        }
        event["client"] = "Redline"
        return event

    def send(self, alert: Alert) -> None:
        """POST the event; raises DeliveryError unless PagerDuty answers 2xx."""
        self.post(self.url, self.payload(alert))
