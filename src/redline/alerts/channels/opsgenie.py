"""The ``opsgenie`` channel: Opsgenie Alert API v2.

``firing`` → create (``POST {url}``), ``acknowledged`` → ``POST {url}/{alias}/acknowledge``,
``resolved`` → ``POST {url}/{alias}/close``, both with ``?identifierType=alias``; the alias is
the alert's fingerprint, so Opsgenie de-duplicates repeats and closes the alert that was
opened. Authentication is ``Authorization: GenieKey <api_key>``; the key is masked everywhere.
For the EU instance set ``url: https://api.eu.opsgenie.com/v2/alerts``.

Priority: critical → P1, high → P2, medium/warning → P3, low → P4, info → P5.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from redline.alerts.channels._http import HttpChannel, iso8601, mask_url, truncate
from redline.exceptions import ConfigError

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["OpsgenieChannel", "alias_of"]

PRIORITY = {
    "critical": "P1",
    "high": "P2",
    "medium": "P3",
    "warning": "P3",
    "low": "P4",
    "info": "P5",
}
# Opsgenie's limits.
_MESSAGE_MAX, _ALIAS_MAX, _DESCRIPTION_MAX, _NOTE_MAX = 130, 512, 15_000, 25_000
_TAG_MAX, _TAGS_MAX, _DETAIL_MAX = 50, 20, 1000


def alias_of(alert: Alert) -> str:
    """The alert's fingerprint (its id when it has none), hashed down if over 512 characters."""
    key = alert.fingerprint or alert.id
    if len(key) <= _ALIAS_MAX:
        return key
    return key[:440] + ":" + hashlib.sha256(key.encode()).hexdigest()


class OpsgenieChannel(HttpChannel):
    """Creates, acknowledges and closes Opsgenie alerts at ``url`` (default: the US API)."""

    default_url = "https://api.opsgenie.com/v2/alerts"

    def __init__(
        self, config: AlertChannelConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        if not config.api_key:
            raise ConfigError("api_key: an opsgenie channel needs an api_key")
        super().__init__(config, transport=transport)
        self.api_key = config.api_key
        self._add_secrets(self.api_key)
        self._auth = {"Authorization": f"GenieKey {self.api_key}"}
        self._base = self.url.rstrip("/")

    def __repr__(self) -> str:
        return f"OpsgenieChannel(name={self.name!r}, url={mask_url(self.url)!r}, api_key='***')"

    def request(self, alert: Alert) -> tuple[str, dict[str, str] | None, dict[str, Any]]:
        """``(url, query, body)`` of the request for ``alert``'s state."""
        alias = alias_of(alert)
        if alert.state in ("resolved", "acknowledged"):
            action = "close" if alert.state == "resolved" else "acknowledge"
            body = {
                "source": "redline",
                "user": "redline",
                "note": truncate(f"{alert.state.capitalize()}: {alert.message}", _NOTE_MAX),
            }
            url = f"{self._base}/{quote(alias, safe='')}/{action}"
            return url, {"identifierType": "alias"}, body
        return self.url, None, self.create_body(alert)

    def create_body(self, alert: Alert) -> dict[str, Any]:
        """The create-alert request body."""
        tags = ["redline", alert.kind, f"severity:{alert.severity}", f"agent:{alert.agent}"]
        if alert.rule:
            tags.append(f"rule:{alert.rule}")
        details = {
            "alert_id": alert.id,
            "agent": alert.agent,
            "kind": alert.kind,
            "severity": alert.severity,
            "time": iso8601(alert.timestamp),
        }
        if alert.rule:
            details["rule"] = alert.rule
        if alert.session_id:
            details["session_id"] = alert.session_id
        for key, value in alert.details.items():
            details.setdefault(str(key), truncate(str(value), _DETAIL_MAX))
        lines = [alert.message, ""]
        lines += [f"{key}: {value}" for key, value in details.items()]
        return {
            "message": truncate(alert.title, _MESSAGE_MAX),
            "alias": alias_of(alert),
            "description": truncate("\n".join(lines), _DESCRIPTION_MAX),
            "priority": PRIORITY.get(alert.severity, "P3"),
            "source": "redline",
            "entity": truncate(alert.agent, _ALIAS_MAX),
            "tags": [truncate(tag, _TAG_MAX) for tag in tags][:_TAGS_MAX],
            "details": details,
        }

    def send(self, alert: Alert) -> None:
        """POST the request; raises DeliveryError unless Opsgenie answers 2xx."""
        url, params, body = self.request(alert)
        self.post(url, body, headers=self._auth, params=params)
