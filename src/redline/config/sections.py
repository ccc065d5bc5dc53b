"""Sections a feature package owns: the package parses its part of the file, the loader does not.

A package with settings of its own (budgets, pricing, ...) plugs a top-level section into
``monitor.yaml`` without editing the loader or the core schema, in one of two ways:

* **A line in** :data:`SECTIONS` (for Redline's own packages): ``"budgets":
  "redline.control.budgets.config:parse_budgets_config"``. The module is imported only when a file has
  that section or code asks for it (``config.section("budgets")``), as the store backends and
  alert channels are (``"module:attribute"``), so ``import redline`` does not pay for it.
* **A call to** :func:`register_section` (for code outside Redline, or tests), before loading.

A parser is called as ``parser(raw, source=source)`` with the section's mapping, already
interpolated (``${VAR}`` replaced), or ``None`` when the file omits it (give the defaults). It
returns the section's value (a msgspec struct, typically) and raises
:class:`~redline.exceptions.ConfigError` with *every* problem it finds, each ``file: key.path:
what was expected``; :func:`redline.config.errors.convert_reporting_all` does the structural part
the way the core sections do. The loader merges its errors with everyone else's, so a file with
problems in several sections still reports them all in one run. The parsed value is
``config.section(name)`` (and ``config.sections[name]`` once parsed).

A section named like a core one (``storage``, ``server``, ...) is refused: those belong to the
schema in :mod:`redline.config.schema`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final

import msgspec

from redline.exceptions import ConfigError

__all__ = [
    "SECTIONS",
    "SectionParser",
    "default_section",
    "register_section",
    "registered_sections",
    "section_parser",
]

#: ``parser(raw, source=...) -> value``; raises ``ConfigError`` with every problem found.
SectionParser = Callable[..., Any]

#: Redline's own feature sections: top-level key → ``"module:callable"`` (imported when used).
SECTIONS: Final[dict[str, str]] = {
    "pricing": "redline.pricing.config:parse_pricing_config",
    "budgets": "redline.control.budgets.config:parse_budgets_config",
}

_registered: dict[str, SectionParser] = {}


def register_section(name: str, parser: SectionParser) -> None:
    """Let ``monitor.yaml`` have a top-level ``name:`` section, parsed by ``parser``.

    Registering the same parser again is a no-op (a module imported twice); a different one for
    a taken name, or a core section's name, raises ``ValueError``.
    """
    from redline.config.schema import MonitorConfig

    if name in {f.encode_name for f in msgspec.structs.fields(MonitorConfig)}:
        raise ValueError(f"{name!r} is a core config section; pick another name")
    current = _registered.get(name)
    if current is not None and current is not parser:
        raise ValueError(f"config section {name!r} is already registered ({current!r})")
    _registered[name] = parser


def registered_sections() -> list[str]:
    """Every section name a file may use beyond the core schema (table and registrations)."""
    return sorted(set(SECTIONS) | set(_registered))


def section_parser(name: str) -> SectionParser | None:
    """The parser of section ``name`` (importing its module now), or None if none is known."""
    parser = _registered.get(name)
    if parser is not None:
        return parser
    target = SECTIONS.get(name)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    loaded: SectionParser = getattr(importlib.import_module(module_name), attr)
    return loaded


def default_section(name: str, source: str) -> Any:
    """Section ``name`` as it is when a file omits it; ``KeyError`` if nothing registered it."""
    parser = section_parser(name)
    if parser is None:
        raise KeyError(f"no config section {name!r} (known: {registered_sections()})")
    return parse_section(name, parser, None, source)


def parse_section(name: str, parser: SectionParser, raw: Any, source: str) -> Any:
    """Call ``parser``; anything but a ``ConfigError`` it raises is reported as one, located."""
    try:
        return parser(raw, source=source)
    except ConfigError:
        raise
    except Exception as exc:  # a bug or a bad value in a plug-in: located, never a traceback
        raise ConfigError([f"{source}: {name}: {exc}"], file=source) from exc
