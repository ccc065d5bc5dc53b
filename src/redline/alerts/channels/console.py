"""The ``console`` channel: one line per alert on stderr, delivered inline."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["ConsoleChannel"]

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

    deliver_inline = True

    def __init__(self, config: AlertChannelConfig) -> None:
        self.name = config.name or "console"
        self.min_severity = config.min_severity

    def send(self, alert: Alert) -> None:
        """Write the alert line."""
        stream = sys.stderr
        tag = f"[redline] {alert.severity.upper()}"
        if alert.state != "firing":
            tag += f" ({alert.state})"
        if stream.isatty():
            tag = f"{_COLOURS.get(alert.severity, '')}{tag}\x1b[0m"
        stream.write(f"{tag} {alert.agent}: {alert.title}: {alert.message}\n")
        stream.flush()

    def __repr__(self) -> str:
        return f"ConsoleChannel(name={self.name!r})"
