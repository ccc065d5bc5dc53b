"""Every problem in a config, each as ``file: key.path: what was expected``, in one run.

msgspec stops at the first problem it meets. A user fixing a file should see them all at once, so
:func:`convert_reporting_all` reports a problem, sets the offending key (or list item, or object
missing a required key) aside, and converts again until nothing is left to report. The messages
are msgspec's, rewritten in the config's own words: key paths as written in YAML (a mapping's
entry by its key, not ``[...]``), "expected an integer, got 'soon'", and a did-you-mean for an
unknown key.

The functions take the struct type to convert to and a key-path prefix, so a section a feature
package registers (:func:`redline.config.register_section`) reports its problems exactly as the
core sections do: ``monitor.yaml: budgets.daily_usd: expected a number, got 'lots'``.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable
from typing import Any, Final, TypeVar

import msgspec

from redline.exceptions import ConfigError

__all__ = [
    "MAX_STRUCTURAL",
    "convert_reporting_all",
    "did_you_mean",
    "join_path",
    "kind_of",
]

T = TypeVar("T")

#: Structural problems reported in one run before giving up (a file of nothing but errors).
MAX_STRUCTURAL: Final = 50

_MSG: Final = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_PART: Final = re.compile(r"[^.\[\]]+|\[\d+\]")
_EXPECTED: Final = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}
_SCALARS: Final[dict[type, type]] = {
    msgspec.inspect.StrType: str,
    msgspec.inspect.IntType: int,
    msgspec.inspect.FloatType: float,
    msgspec.inspect.BoolType: bool,
}


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``choices``, or ``""`` when none is near."""
    hint = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def join_path(prefix: str, path: str) -> str:
    """``prefix`` and a relative key path as one path (``budgets`` + ``[0].x``)."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def kind_of(value: Any) -> str:
    """What a YAML value is, in the words of an error message (``a list``, ``a string``)."""
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def convert_reporting_all(
    raw: Any,
    typ: type[T],
    *,
    source: str,
    errors: list[str],
    prefix: str = "",
    extra_keys: Iterable[str] = (),
) -> T:
    """``raw`` as ``typ``, appending every structural problem to ``errors``.

    What remains once the problems are set aside is returned, so the semantic checks see it too;
    ``ConfigError`` (with every problem so far) only when nothing convertible is left. Lax: a
    number or boolean written as a string (``threshold: "${MAX_COST}"`` after interpolation, or
    ``"300"`` as the peer's int()/float() accepted) is converted. ``prefix`` is where ``raw``
    sits in the file; ``extra_keys`` are further keys allowed at its top (offered as
    did-you-mean).
    """
    work: Any = None
    for _ in range(MAX_STRUCTURAL):
        try:
            return msgspec.convert(raw if work is None else work, typ, strict=False)
        except msgspec.ValidationError as exc:
            if work is None:
                work = copy.deepcopy(raw)
            message = str(exc)
            errors.append(_explain(message, work, typ, source, prefix, tuple(extra_keys)))
            if not _set_aside(message, work):
                break
    raise ConfigError(errors, file=source)


def _set_aside(message: str, work: Any) -> bool:
    """Remove what ``message`` (a msgspec error) points at from ``work``; False if it cannot."""
    m = _MSG.match(message)
    if m is None:
        return False
    msg, path = m.group("msg"), m.group("path") or ""
    parts: list[str | int] = [
        int(idx) if idx else key for key, idx in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path)
    ]
    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        parts.append(unknown.group(1))
    if not parts:
        return False
    parent: Any = work
    for part in parts[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = parts[-1]
    try:
        if isinstance(parent, list) and isinstance(last, int):
            parent.pop(last)
        elif isinstance(parent, dict) and last in parent:
            del parent[last]
        else:
            return False
    except (IndexError, TypeError):
        return False
    return True


def _explain(
    message: str, raw: Any, root: type, source: str, prefix: str, extra_keys: tuple[str, ...]
) -> str:
    """Turn a msgspec validation message into ``file: key.path: expected ..., got ...``."""
    m = _MSG.match(message)
    assert m is not None
    msg, path = m.group("msg"), (m.group("path") or "")
    path = path.lstrip(".")
    path = _resolve_keys(path, raw, root)
    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        field = unknown.group(1)
        allowed = _fields_at(root, path) + (list(extra_keys) if not path else [])
        hint = did_you_mean(field, allowed)
        where = join_path(prefix, f"{path}.{field}" if path else field)
        known = f" (known keys: {', '.join(sorted(allowed))})" if allowed and not hint else ""
        return f"{source}: {where}: unknown key{hint}{known}"
    missing = re.match(r"Object missing required field `(.+)`", msg)
    if missing:
        where = join_path(prefix, f"{path}.{missing.group(1)}" if path else missing.group(1))
        return f"{source}: {where}: required key is missing"
    at = join_path(prefix, path) or "<root>"
    expected = re.match(r"Expected `(.+?)`, got `(.+?)`", msg)
    if expected:
        want = " or ".join(
            _EXPECTED.get(p.strip(), p.strip()) for p in expected.group(1).split("|")
        )
        return f"{source}: {at}: expected {want}, got {_value_at(raw, path)!r}"
    return f"{source}: {at}: {msg[0].lower() + msg[1:] if msg else 'invalid'}"


def _type_at(root: type, path: str) -> Any:
    """The type at ``path`` under ``root``: a struct class, a ``msgspec.inspect`` type, or None."""
    typ: Any = root
    for part in _PART.findall(path):
        if typ is None:
            return None
        if part.startswith("["):
            typ = _inner(typ, list)
            continue
        info = typ if isinstance(typ, msgspec.inspect.Type) else msgspec.inspect.type_info(typ)
        fields = getattr(info, "fields", ())
        match = next((f for f in fields if f.encode_name == part), None)
        typ = _inner(typ, dict) if match is None else _unwrap(match.type)
    return _unwrap(typ)


def _fields_at(root: type, path: str) -> list[str]:
    """The keys allowed at ``path`` (walks the struct types)."""
    typ = _type_at(root, path)
    if typ is None:
        return []
    fields = getattr(msgspec.inspect.type_info(typ) if isinstance(typ, type) else typ, "fields", ())
    return [f.encode_name for f in fields if not f.encode_name.startswith("__")]


def _resolve_keys(path: str, raw: Any, root: type) -> str:
    """msgspec names a mapping's value ``[...]``; put the key of the value that fails there."""
    while "[...]" in path:
        head, _, tail = path.partition("[...]")
        node = _value_at(raw, head)
        at = _type_at(root, head)
        inner = _inner(at, dict) if at is not None else None
        target = inner if isinstance(inner, type) else _SCALARS.get(type(inner))
        if not isinstance(node, dict) or target is None:
            return path
        bad = None
        for key, value in node.items():
            try:
                msgspec.convert(value, target, strict=False)
            except msgspec.ValidationError:
                bad = key
                break
        if bad is None:
            return path
        path = f"{head}.{bad}{tail}"
    return path


def _unwrap(typ: Any) -> Any:
    if isinstance(typ, msgspec.inspect.StructType):
        return typ.cls
    return typ


def _inner(typ: Any, container: type) -> Any:
    info = typ if isinstance(typ, msgspec.inspect.Type) else msgspec.inspect.type_info(typ)
    if container is list and isinstance(info, msgspec.inspect.ListType):
        return _unwrap(info.item_type)
    if container is dict and isinstance(info, msgspec.inspect.DictType):
        return _unwrap(info.value_type)
    if isinstance(info, msgspec.inspect.StructType):
        return info.cls
    return None


def _value_at(raw: Any, path: str) -> Any:
    node = raw
    for part in _PART.findall(path):
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return node
