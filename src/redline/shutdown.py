"""Flush every live monitor when the process ends: at interpreter exit and on SIGTERM.

A monitor registers itself when built and leaves when closed. The SIGTERM handler is installed
once, from the main thread only (Python's rule), over the default or an ordinary Python handler,
which it chains to afterwards; a process that ignores SIGTERM keeps doing so.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redline.monitor import Monitor

__all__ = ["install_sigterm_handler", "register", "unregister"]

log = logging.getLogger("redline")

_LIVE: weakref.WeakSet[Monitor] = weakref.WeakSet()


def register(monitor: Monitor) -> None:
    """Close ``monitor`` at exit or SIGTERM unless it was closed before."""
    _LIVE.add(monitor)


def unregister(monitor: Monitor) -> None:
    """``monitor`` was closed: nothing left to do for it at exit."""
    _LIVE.discard(monitor)


_previous_sigterm: Any = None
_sigterm_installed = False


def install_sigterm_handler() -> None:
    """On SIGTERM, close (flush) every live monitor, then do what was going to happen anyway.

    Installed once, from the main thread only (Python's rule), and only over the default or an
    ordinary Python handler, which it chains to afterwards.
    """
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:
        return
    _previous_sigterm = previous
    signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    _close_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@atexit.register
def _close_all() -> None:
    for monitor in list(_LIVE):
        try:
            monitor.close(timeout=5.0)
        except Exception:
            log.exception("redline: closing a monitor at exit failed")
