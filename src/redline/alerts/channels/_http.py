"""What every HTTP channel shares: one ``httpx.Client``, JSON posting, status triage, masking.

A channel builds its vendor's payload and calls :meth:`HttpChannel.post`; this module turns the
answer into success or a :class:`~redline.alerts.delivery.DeliveryError` that says whether a
retry may help (timeouts, connection errors, 408, 429 and 5xx) and carries ``Retry-After``.

Secrets never reach a log line or the dead-letter file through here: error messages name the
URL by :func:`mask_url` (scheme, host and port only) and :meth:`HttpChannel.redact` replaces
every configured credential (URL, header values, secret, routing key, api key) with ``***``.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from redline.alerts.delivery import DeliveryError
from redline.exceptions import ConfigError

if TYPE_CHECKING:
    from redline.config import AlertChannelConfig

__all__ = ["HttpChannel", "encode_json", "iso8601", "mask_url", "truncate"]

_MASK = "***"
_MIN_SECRET_LEN = 4  # shorter strings would mask ordinary words in error messages
_MIN_SEGMENT_LEN = 8  # path segments such as "v2" or "alerts" are not tokens


def mask_url(url: str) -> str:
    """``url`` with everything that may be a credential hidden: user info, path and query.

    Slack, Teams and many webhooks carry their token in the path, so only the scheme, host and
    port survive: ``https://hooks.slack.com/services/T/B/X`` → ``https://hooks.slack.com/***``.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        shown += "/" + _MASK
    return shown


def iso8601(timestamp: float) -> str:
    """``timestamp`` (unix seconds) as ISO 8601 in UTC with an explicit offset."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON, as the vendors expect it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


_LIVE: weakref.WeakSet[HttpChannel] = weakref.WeakSet()


class _MaskChannelSecrets(logging.Filter):
    """httpx logs every request URL at INFO; mask it when it is one of our channels' URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        channels = list(_LIVE)
        if not channels or not record.args:
            return True
        if isinstance(record.args, Mapping):
            record.args = {k: _mask_arg(v, channels) for k, v in record.args.items()}
        else:
            record.args = tuple(_mask_arg(a, channels) for a in record.args)
        return True


def _mask_arg(arg: object, channels: list[HttpChannel]) -> object:
    text = str(arg)
    for channel in channels:
        masked = channel.redact(text)
        if masked != text:
            return mask_url(text) if text.startswith(("http://", "https://")) else masked
    return arg


_LOG_MASK = _MaskChannelSecrets()


class HttpChannel:
    """Base of the HTTP channels: ``send()`` in subclasses, ``post()`` and masking here."""

    deliver_inline = False
    default_url = ""

    def __init__(
        self,
        config: AlertChannelConfig,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.type = config.type
        self.name = config.name or config.type
        self.min_severity = config.min_severity
        self.url = config.url or self.default_url
        self.timeout = float(config.timeout_seconds)
        self.headers = dict(config.headers)
        try:
            parts = urlsplit(self.url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"url: expected an http(s) URL, got {mask_url(self.url)!r}")
        if self.timeout <= 0:
            raise ConfigError("timeout_seconds: expected a positive number of seconds")
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._add_secrets(self.url, *self.headers.values())
        split = urlsplit(self.url)
        self._add_secrets(split.path, split.query, split.username or "", split.password or "")
        # Tokens inside the path (Slack: /services/T…/B…/<token>) and query values on their own.
        pieces = [*split.path.split("/"), *(v for _, v in parse_qsl(split.query))]
        self._add_secrets(*(p for p in pieces if len(p) >= _MIN_SEGMENT_LEN))
        _LIVE.add(self)
        httpx_log = logging.getLogger("httpx")
        if _LOG_MASK not in httpx_log.filters:
            httpx_log.addFilter(_LOG_MASK)

    def _add_secrets(self, *values: str) -> None:
        found = {v for v in (*self._secrets, *values) if len(v) >= _MIN_SECRET_LEN and v != "/"}
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    # -- masking ----------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every configured credential replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={mask_url(self.url)!r})"

    # -- HTTP -------------------------------------------------------------------------------
    @property
    def client(self) -> httpx.Client:
        """The channel's client, created on first use (keeps connections alive between alerts)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    from redline import __version__

                    self._client = httpx.Client(
                        transport=self._transport,
                        follow_redirects=False,
                        headers={"User-Agent": f"redline/{__version__}"},
                    )
                client = self._client
        return client

    def post(
        self,
        url: str,
        payload: Any = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST JSON (``payload``, or ready-encoded ``body``); the 2xx response or DeliveryError.

        The configured ``headers`` are sent first, then ``headers`` (the channel's own, which win).
        """
        content = body if body is not None else encode_json(payload)
        sent_headers = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        where = mask_url(url)
        try:
            response = self.client.post(
                url, content=content, headers=sent_headers, params=params, timeout=self.timeout
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"{type(exc).__name__}: no answer within {self.timeout:g}s from {where}"
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"{type(exc).__name__} posting to {where}: {self.redact(str(exc))}"
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        retryable = status in (408, 429) or status >= 500
        retry_after = response.headers.get("Retry-After") if status in (429, 503) else None
        snippet = self.redact(response.text[:200].strip())
        raise DeliveryError(
            f"HTTP {status} from {where}" + (f": {snippet}" if snippet else ""),
            retryable=retryable,
            retry_after=retry_after,
            status=status,
        )

    def close(self) -> None:
        """Close the client's connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
