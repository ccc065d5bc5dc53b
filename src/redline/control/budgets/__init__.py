"""Budgets: spending limits reserved before a call and held across every process on a store.

Configured in the ``budgets:`` section (:mod:`redline.control.budgets.config`); enforced by
:class:`~redline.control.budgets.manager.Budgets` over a :class:`~redline.control.budgets.ledger.Ledger` (the
SQLite file or PostgreSQL schema of the store, so racing processes share one limit; per
process with the memory and JSONL stores). ``monitor.reserve()``, ``monitor.budgets()`` and
``check()`` are the public face; see docs/budgets.md.

Names resolve on first use, so importing a submodule (the PostgreSQL migrations import the
ledger's schema) does not import the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redline.control.budgets.config import BudgetConfig
    from redline.control.budgets.manager import Budgets, BudgetState, Reservation

__all__ = ["BudgetConfig", "BudgetState", "Budgets", "Reservation"]

_HOME = {
    "BudgetConfig": "redline.control.budgets.config",
    "BudgetState": "redline.control.budgets.reservation",
    "Budgets": "redline.control.budgets.manager",
    "Reservation": "redline.control.budgets.reservation",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'redline.control.budgets' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
