"""Process lifecycle in one place: what must happen in a child after ``os.fork()``.

Gunicorn, uvicorn ``--workers``, Celery prefork and ``multiprocessing`` (fork) create a monitor
in the parent and use it in the child. Threads do not survive a fork, locks held by a parent
thread stay held forever in the child, and a database connection must not be shared across the
fork. Each part that owns such things registers a callback here; the child runs them in order of
registration (a monitor registers once, and re-initialises its parts in dependency order: locks,
store connections, then the writer's thread).

Callbacks are held weakly: a closed, collected monitor costs nothing at the next fork.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable

__all__ = ["after_fork_in_child"]

log = logging.getLogger("redline")

_callbacks: list[weakref.WeakMethod[Callable[[], None]]] = []
_guard = threading.Lock()


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Run the bound ``method`` in every child process forked from now on."""
    with _guard:
        _callbacks.append(weakref.WeakMethod(method))


def _run_in_child() -> None:
    global _guard
    _guard = threading.Lock()  # a parent thread may have held it at the fork
    alive = []
    for ref in _callbacks:
        method = ref()
        if method is None:
            continue
        alive.append(ref)
        try:
            method()
        except Exception:
            log.exception("redline: re-initialising after fork failed")
    _callbacks[:] = alive


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent on Windows only
    os.register_at_fork(after_in_child=_run_in_child)
