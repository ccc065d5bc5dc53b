"""The ``jsonl`` (and ``file``) channel: one JSON alert per line, fsync'd, delivered inline."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from redline.exceptions import ConfigError

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["JsonlChannel"]


class JsonlChannel:
    """One JSON alert per line, fsync'd, in an append-only file (``file`` and ``jsonl`` types).

    Written by its delivery worker, not on the thread that raised the alert: an fsync costs
    hundreds of microseconds, which ``record()`` must never pay.
    """

    deliver_inline = False

    def __init__(self, config: AlertChannelConfig) -> None:
        if not config.path:
            raise ConfigError(f"path: a {config.type} channel needs a path")
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

    def __repr__(self) -> str:
        return f"JsonlChannel(name={self.name!r}, path={str(self.path)!r})"
