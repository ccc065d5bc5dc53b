"""The ``webhook`` channel: the alert as generic JSON, optionally signed with HMAC-SHA256.

The body is ``alert.to_dict()`` plus ``"source": "redline"``. With ``secret`` set, each request
carries ``X-Redline-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
``HMAC-SHA256(secret, "<t>.<raw body>")``. A receiver recomputes it over the raw bytes it got
(before parsing the JSON), compares in constant time, and rejects a ``t`` older than a few minutes
to stop replays; :func:`verify_signature` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

import httpx

from redline.alerts.channels._http import HttpChannel, encode_json
from redline.clock import Clock, SystemClock

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["SIGNATURE_HEADER", "WebhookChannel", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Redline-Signature"


def _mac(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Redline-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, str(timestamp), body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: float | None = 300,
    *,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` s old.

    ``body`` must be the raw request body. Several ``v1=`` values (during a secret rotation) are
    accepted if any matches. ``tolerance=None`` skips the age check. Never raises.
    """
    if not secret or not header:
        return False
    raw = body.encode() if isinstance(body, str) else body
    stamp = ""
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            candidates.append(value)
    try:
        sent_at = int(stamp)
    except ValueError:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - sent_at) > tolerance:
            return False
    expected = _mac(secret, stamp, raw)
    return any(hmac.compare_digest(expected, c) for c in candidates)


class WebhookChannel(HttpChannel):
    """POSTs the alert as JSON to ``url`` with the configured ``headers``, signed when ``secret``."""

    def __init__(
        self,
        config: AlertChannelConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, transport=transport)
        self.secret = config.secret
        self._add_secrets(self.secret)
        self._clock = clock or SystemClock()

    def payload(self, alert: Alert) -> dict[str, object]:
        """The JSON document sent."""
        return {**alert.to_dict(), "source": "redline"}

    def send(self, alert: Alert) -> None:
        """POST the alert; raises DeliveryError when the receiver does not answer 2xx."""
        body = encode_json(self.payload(alert))
        headers = {"X-Redline-Alert-Id": alert.id}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body, int(self._clock.time()))
        self.post(self.url, body=body, headers=headers)
