"""From a YAML file (or a mapping) to a checked :class:`~redline.config.schema.MonitorConfig`.

The order is what makes "every error in one run" hold: interpolate ``${VAR}`` in string values
(never keys), hand each registered section to its package's parser, convert the core sections
collecting every structural problem, check what converted, and only then raise one
:class:`~redline.exceptions.ConfigError` holding all of them. PyYAML is imported by
:func:`load_config` when a file is read, not by ``import redline``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final

import msgspec

from redline.config.checks import semantic_errors
from redline.config.errors import convert_reporting_all, kind_of
from redline.config.schema import DEFAULT_STORE, MonitorConfig
from redline.config.sections import parse_section, registered_sections, section_parser
from redline.exceptions import ConfigError

__all__ = ["load_config", "parse_config"]

# ``${VAR:-default}`` (shell) and ``${VAR:default}`` (the peer's form) both give a fallback.
_ENV: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-?([^}]*))?\}")


def load_config(path: str | os.PathLike[str] = "monitor.yaml") -> MonitorConfig:
    """Read, interpolate and validate a YAML config file.

    A file without a ``storage`` path stores events in ``.redline/events.db`` beside it (the
    audited SQLite store); ``parse_config`` and ``MonitorConfig()`` keep the in-memory default.

    Raises ``FileNotFoundError`` when the file does not exist (as the peer) and
    :class:`ConfigError` for anything wrong inside it, with every problem found.
    """
    import yaml  # here, not at the top: ``import redline`` should not pay for PyYAML

    file = str(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"Monitor config file not found: {file}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: {where}invalid YAML: {problem}"], file=file) from None
    config = parse_config(raw if raw is not None else {}, source=file)
    storage = config.storage
    if storage.backend is None and storage.path is None:
        # A config file persists by default, as the peer's did (it wrote a JSONL log): the
        # audited SQLite store, beside the file, so every process and the CLI find it.
        storage.path = str(Path(file).resolve().parent / DEFAULT_STORE)
    return config


def parse_config(raw: Any, *, source: str = "<config>") -> MonitorConfig:
    """Validate an already-parsed mapping (from YAML, JSON or code) into a :class:`MonitorConfig`.

    Raises :class:`ConfigError` listing every structural and semantic problem, each
    ``source: key.path: what was expected``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{source}: expected a mapping at the top level, got {kind_of(raw)}"], file=source
        )
    raw = dict(raw)
    if "anomaly" in raw:
        if "anomaly_detection" in raw:
            raise ConfigError(
                [f"{source}: anomaly: give either 'anomaly' or 'anomaly_detection', not both"],
                file=source,
            )
        raw["anomaly_detection"] = raw.pop("anomaly")
    version = raw.get("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        raw["version"] = str(version)  # unquoted ``version: 1.0`` in YAML, as the peer accepts
    errors: list[str] = []
    raw = _interpolate(raw, "", errors, source)
    if errors:
        raise ConfigError(errors, file=source)
    names = registered_sections()
    sections = _parse_sections({k: raw.pop(k) for k in names if k in raw}, source, errors)
    try:
        config = convert_reporting_all(
            raw, MonitorConfig, source=source, errors=errors, extra_keys=names
        )
    except ConfigError:
        raise ConfigError(errors, file=source) from None
    config.source = source
    config.sections = sections
    _retention_from_storage(config, raw)
    errors.extend(e for e in semantic_errors(config, source) if e not in errors)
    if errors:
        raise ConfigError(errors, file=source)
    return config


def _retention_from_storage(config: MonitorConfig, raw: dict[str, Any]) -> None:
    """``storage.retention_days`` (theaios-agent-monitor's one number) when no ``retention:``.

    A config written for theaios-agent-monitor says how long to keep events in one number; it
    then applies to every category. A ``retention:`` section, per category, takes precedence.
    """
    storage = raw.get("storage")
    days = config.storage.retention_days
    if "retention" in raw or not isinstance(storage, dict) or "retention_days" not in storage:
        return
    for category in msgspec.structs.asdict(config.retention):
        setattr(config.retention, category, days)


def _parse_sections(found: dict[str, Any], source: str, errors: list[str]) -> dict[str, Any]:
    """Each registered section the file has, parsed by its package; problems join ``errors``."""
    parsed: dict[str, Any] = {}
    for name, value in found.items():
        parser = section_parser(name)
        if parser is None:  # pragma: no cover - registered_sections() named it
            continue
        try:
            parsed[name] = parse_section(name, parser, value, source)
        except ConfigError as exc:
            errors.extend(e for e in exc.errors if e not in errors)
    return parsed


def _interpolate(value: Any, path: str, errors: list[str], source: str) -> Any:
    """``value`` with ``${VAR}`` replaced in every string, recursively; unset names reported."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            errors.append(
                f"{source}: {path or '<root>'}: environment variable {name} is not set "
                f"(use ${{{name}:-default}} for a fallback)"
            )
            return m.group(0)

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), errors, source)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", errors, source) for i, v in enumerate(value)]
    return value
