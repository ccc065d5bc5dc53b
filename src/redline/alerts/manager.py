"""Turn anomalies, kills and revives into alerts, and hand them to channels and hooks.

Every alert is also recorded as an ``alert`` event by the monitor, so the audit trail holds it
whatever happens to delivery. Channels with a ``min_severity`` only see alerts at or above it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from redline.config import AlertChannelConfig, AlertConfig, severity_rank

__all__ = ["Alert", "AlertChannel", "AlertManager"]

log = logging.getLogger("redline")


class Alert(msgspec.Struct, kw_only=True):
    """One notification: what happened, to whom, how bad, and the evidence."""

    id: str
    kind: str
    severity: str
    title: str
    message: str
    agent: str
    timestamp: float
    rule: str | None = None
    session_id: str | None = None
    fingerprint: str = ""
    state: str = "firing"
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON channels and the ``alert`` event."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class AlertChannel(Protocol):
    """Anything that can deliver an alert."""

    name: str
    min_severity: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert (may raise; the manager counts and survives it)."""
        ...


_COLOURS = {
    "critical": "\x1b[1;31m",
    "high": "\x1b[31m",
    "warning": "\x1b[33m",
    "medium": "\x1b[33m",
    "low": "\x1b[36m",
    "info": "\x1b[37m",
}


class ConsoleChannel:
    """One line per alert on stderr, coloured by severity when stderr is a terminal."""

    def __init__(self, config: AlertChannelConfig) -> None:
        self.name = config.name or "console"
        self.min_severity = config.min_severity

    def send(self, alert: Alert) -> None:
        """Write the alert line."""
        stream = sys.stderr
        tag = f"[redline] {alert.severity.upper()}"
        if stream.isatty():
            tag = f"{_COLOURS.get(alert.severity, '')}{tag}\x1b[0m"
        stream.write(f"{tag} {alert.agent}: {alert.title}: {alert.message}\n")
        stream.flush()


class JsonlChannel:
    """One JSON alert per line, fsync'd, in an append-only file (``file`` and ``jsonl`` types)."""

    def __init__(self, config: AlertChannelConfig) -> None:
        self.name = config.name or config.type
        self.min_severity = config.min_severity
        self.path = Path(config.path)
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        """Append and fsync."""
        line = json.dumps(alert.to_dict(), sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())


def build_channel(config: AlertChannelConfig) -> AlertChannel | None:
    """The channel for one config entry; ``None`` for types this build does not deliver."""
    if config.type == "console":
        return ConsoleChannel(config)
    if config.type in ("file", "jsonl"):
        return JsonlChannel(config)
    return None


class AlertManager:
    """Fans alerts out to channels and hooks, counting what was sent and what failed."""

    def __init__(self, config: AlertConfig | None = None) -> None:
        self.channels: list[AlertChannel] = []
        self.unsupported: list[str] = []
        for ch in config.channels if config else []:
            if not ch.enabled:
                continue
            built = build_channel(ch)
            if built is None:
                self.unsupported.append(ch.type)
                log.warning(
                    "redline: alert channel type %r is not delivered by this build; "
                    "alerts are still stored as 'alert' events",
                    ch.type,
                )
            else:
                self.channels.append(built)
        self._hooks: list[Callable[[Alert], object]] = []
        self._ids = itertools.count(1)
        self.sent = 0
        self.failed = 0
        self.history: list[Alert] = []
        self._max_history = 1000

    def next_id(self) -> str:
        """A process-unique alert id."""
        return f"al-{os.getpid():x}-{next(self._ids)}"

    def add_hook(self, hook: Callable[[Alert], object]) -> Callable[[], None]:
        """Call ``hook(alert)`` for every alert; returns a function that removes it."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def notify(self, alert: Alert) -> None:
        """Deliver ``alert`` to each channel at or above its severity, then to hooks."""
        self.history.append(alert)
        if len(self.history) > self._max_history:
            del self.history[: len(self.history) - self._max_history]
        rank = severity_rank(alert.severity)
        for channel in self.channels:
            if rank < severity_rank(channel.min_severity):
                continue
            try:
                channel.send(alert)
                self.sent += 1
            except Exception:
                self.failed += 1
                log.exception("redline: alert channel %s failed", channel.name)
        for hook in list(self._hooks):
            try:
                hook(alert)
            except Exception:
                self.failed += 1
                log.exception("redline: alert hook failed")
