"""Strict JSON for request bodies: what a lenient parser would let through is refused.

* duplicate keys in one object (``{"agent": "a", "agent": "b"}``: which one did the sender mean?),
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, and poison for sums),
* nesting deeper than :data:`MAX_DEPTH` levels,
* invalid UTF-8, and trailing garbage.

The whole body is parsed before anything is done with it, so a malformed batch stores nothing.
Errors are :class:`JSONBodyError` with a message a client can act on (line and column included).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

__all__ = ["MAX_DEPTH", "JSONBodyError", "loads_strict", "loads_strict_lines"]

MAX_DEPTH: Final = 32


class JSONBodyError(ValueError):
    """A request body that is not acceptable JSON; the message says where and why."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONBodyError(f"duplicate key {key!r} in an object")
            seen.add(key)
    return out


def _constant(name: str) -> Any:
    raise JSONBodyError(f"{name} is not valid JSON (numbers must be finite)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONBodyError(f"number {text[:40]} is out of range (numbers must be finite)")
    return value


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_finite)


def _depth_ok(raw: bytes, value: Any, limit: int) -> bool:
    """Whether the parsed ``value`` (from ``raw``) nests at most ``limit`` levels.

    A body with at most ``limit`` brackets cannot be deeper (counted in C); otherwise the
    containers are walked with an explicit stack, scalars costing one type test each.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return False
        for child in node.values() if type(node) is dict else node:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, depth + 1))
    return True


def loads_strict(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document strictly; raises :class:`JSONBodyError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONBodyError(f"body is not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value, end = _decoder.raw_decode(text, _skip_ws(text, 0))
    except JSONBodyError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONBodyError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise JSONBodyError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise JSONBodyError(f"invalid JSON: {exc}") from None
    if _skip_ws(text, end) != len(text):
        line = text.count("\n", 0, end) + 1
        raise JSONBodyError(f"invalid JSON at line {line}: extra data after the document")
    if isinstance(value, (dict, list)) and not _depth_ok(raw, value, max_depth):
        raise JSONBodyError(f"JSON nested deeper than {max_depth} levels")
    return value


def loads_strict_lines(raw: bytes, *, max_depth: int = MAX_DEPTH) -> list[Any]:
    """Parse NDJSON (one JSON document per line; blank lines skipped) strictly."""
    out: list[Any] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append(loads_strict(line, max_depth=max_depth))
        except JSONBodyError as exc:
            raise JSONBodyError(f"line {number}: {exc}") from None
    return out


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos
