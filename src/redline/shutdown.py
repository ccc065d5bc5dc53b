"""Flush every live monitor when the process ends: a thin front of :mod:`redline._lifecycle`.

The registry, the atexit hook and the SIGTERM handler live in :mod:`redline._lifecycle`, which
owns exit, SIGTERM and fork in one place. A monitor registers here in the ``WRITERS`` phase:
closed after the producers that feed it and before the delivery workers downstream of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redline._lifecycle import (
    WRITERS,
    at_exit,
    cancel_at_exit,
    install_sigterm_handler,
    run_exit_hooks,
)

if TYPE_CHECKING:
    from redline.monitor import Monitor

__all__ = ["install_sigterm_handler", "register", "unregister"]


def _close(monitor: Monitor, timeout: float) -> object:
    return monitor.close(timeout=timeout)


def register(monitor: Monitor) -> None:
    """Close ``monitor`` at exit or SIGTERM unless it was closed before."""
    at_exit(monitor, _close, WRITERS)


def unregister(monitor: Monitor) -> None:
    """``monitor`` was closed: nothing left to do for it at exit."""
    cancel_at_exit(monitor)


#: The name "flush everything now" had before :mod:`redline._lifecycle` owned it.
_close_all = run_exit_hooks
