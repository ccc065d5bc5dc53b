"""Which build runs the per-event path, and the switch back to pure Python.

The modules listed in ``pyproject.toml``'s mypyc hook may be compiled to C extensions (release
wheels, and ``make`` in a checkout). They are the same source either way; the compiled build is
about twice as fast on the hot path. ``REDLINE_PURE_PYTHON=1`` in the environment makes the
package import their ``.py`` source even where a compiled module sits next to it: to debug with
a pure-Python traceback, or to run the test suite against what a source install runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["build_info", "compiled_modules", "prefer_source"]

_ROOT = Path(__file__).resolve().parent


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds ``redline.*`` modules as ``.py`` files, ahead of any compiled extension."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("redline."):
            return None
        source = _ROOT.joinpath(*fullname.split(".")[1:]).with_suffix(".py")
        if not source.is_file():
            return None  # a package: its __init__ is never compiled
        return importlib.util.spec_from_file_location(fullname, source)


def prefer_source() -> None:
    """Import every ``redline`` module from its ``.py`` source from now on."""
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def compiled_modules() -> list[str]:
    """The ``redline`` modules loaded from compiled extensions (empty for pure Python)."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("redline.")
        and not str(getattr(module, "__file__", "") or "").endswith((".py", ".pyc"))
        and getattr(module, "__file__", None) is not None
    )


def build_info() -> str:
    """Which build this install runs, and why, in words (``redline --version`` prints it)."""
    import os

    extensions = sorted(
        str(p.relative_to(_ROOT))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        for p in _ROOT.rglob(f"*{suffix}")
    )
    failed = _ROOT / ".compiled-failed"
    if not extensions and failed.is_file():
        return (
            "pure Python: compiling with mypyc failed in this checkout (no C compiler?); the "
            "log is .venv/mypyc.log, and `make` retries once a compiled module changes"
        )
    if not extensions:
        return (
            "pure Python: no compiled modules in this install (a source install without mypyc; "
            "a release wheel or `make` in a checkout compiles the per-event path, ~2x faster)"
        )
    if os.environ.get("REDLINE_PURE_PYTHON"):
        return (
            f"pure Python: REDLINE_PURE_PYTHON is set ({len(extensions)} compiled modules unused)"
        )
    return f"compiled: {len(extensions)} modules built with mypyc"
