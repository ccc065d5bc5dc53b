"""Process lifecycle in one place: after ``os.fork()``, at interpreter exit, and on SIGTERM.

**Fork.** Gunicorn, uvicorn ``--workers``, Celery prefork and ``multiprocessing`` (fork) create a
monitor in the parent and use it in the child. Threads do not survive a fork, locks held by a
parent thread stay held forever in the child, and a database connection must not be shared
across the fork. Each part that owns such things registers a callback with
:func:`after_fork_in_child`; the child runs them in order of registration (a monitor registers
once, and re-initialises its parts in dependency order: locks, store connections, then the
writer's thread). Callbacks are held weakly: a closed, collected monitor costs nothing at the
next fork.

**Exit.** Everything that holds queued work registers with :func:`at_exit` in a *phase*; at
interpreter exit, and on SIGTERM before the process dies, :func:`run_exit_hooks` runs every hook
once, phase by phase, so that nothing is flushed into a part that was already closed:

1. :data:`PRODUCERS`: workers that send events onward (the remote client's sender);
2. :data:`WRITERS`: monitors, whose ``close()`` commits the writer's queue to the store;
3. :data:`DELIVERY`: workers downstream of a monitor (alert delivery, span export), last,
   so that what closing a monitor still produced goes out too.

**SIGTERM.** The handler is installed once, from the main thread only (Python's rule), over the
default or an ordinary Python handler, which it chains to afterwards; a process that ignores
SIGTERM keeps doing so.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "DELIVERY",
    "PRODUCERS",
    "WRITERS",
    "after_fork_in_child",
    "at_exit",
    "cancel_at_exit",
    "install_sigterm_handler",
    "run_exit_hooks",
]

log = logging.getLogger("redline")

T = TypeVar("T")

#: Exit phases, run in this order (see the module docstring).
PRODUCERS = 0
WRITERS = 1
DELIVERY = 2

#: How long one exit hook may take, and all of them together.
_HOOK_TIMEOUT = 5.0
_EXIT_BUDGET = 15.0

# -- fork ---------------------------------------------------------------------------------------

_callbacks: list[weakref.WeakMethod[Callable[[], None]]] = []
_guard = threading.Lock()


def after_fork_in_child(method: Callable[[], None]) -> None:
    """Run the bound ``method`` in every child process forked from now on."""
    with _guard:
        _callbacks.append(weakref.WeakMethod(method))


def _run_in_child() -> None:
    global _guard, _exit_guard
    _guard = threading.Lock()  # a parent thread may have held it at the fork
    _exit_guard = threading.Lock()
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

# -- exit ---------------------------------------------------------------------------------------

#: owner → (phase, order of registration, hook). The hook is a plain function taking the owner,
#: so the registry never keeps an owner alive.
_exit_hooks: weakref.WeakKeyDictionary[Any, tuple[int, int, Callable[[Any, float], object]]] = (
    weakref.WeakKeyDictionary()
)
_exit_order = itertools.count()
_exit_guard = threading.Lock()


def at_exit(owner: T, hook: Callable[[T, float], object], phase: int) -> None:
    """Call ``hook(owner, timeout)`` once at exit (or SIGTERM), in ``phase``, unless cancelled.

    Registering the same owner again replaces its hook (it still runs once).
    """
    with _exit_guard:
        _exit_hooks[owner] = (phase, next(_exit_order), hook)


def cancel_at_exit(owner: object) -> None:
    """``owner`` was closed: nothing left to do for it at exit."""
    with _exit_guard:
        _exit_hooks.pop(owner, None)


def run_exit_hooks() -> None:
    """Run every registered hook once, phase by phase, in order of registration within a phase.

    Each hook gets at most :data:`_HOOK_TIMEOUT` seconds and all of them together about
    :data:`_EXIT_BUDGET`, so a dead receiver cannot hold the process up for long. A hook that
    raises is logged; the others still run.
    """
    deadline = time.monotonic() + _EXIT_BUDGET
    with _exit_guard:
        due = sorted(
            ((phase, order, owner, hook) for owner, (phase, order, hook) in _exit_hooks.items()),
            key=lambda item: (item[0], item[1]),
        )
        _exit_hooks.clear()
    for _, _, owner, hook in due:
        timeout = max(0.05, min(_HOOK_TIMEOUT, deadline - time.monotonic()))
        try:
            hook(owner, timeout)
        except Exception:
            log.exception("redline: flushing %s at exit failed", type(owner).__name__)


atexit.register(run_exit_hooks)

# -- SIGTERM ------------------------------------------------------------------------------------

_previous_sigterm: Any = None
_sigterm_installed = False


def install_sigterm_handler() -> None:
    """On SIGTERM, run the exit hooks (flush everything), then do what was going to happen.

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
    run_exit_hooks()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
