"""A small, safe expression language for rule conditions, compiled once into closures.

Anomaly rules and policies carry conditions such as ``hour >= 9 and hour < 17`` or
``tool in ["shell", "http"] and not user.is_admin``. They come from configuration files, so
they must never reach ``eval``, and they run on every evaluated event, so they are parsed once
by :func:`compile_condition` into nested closures that evaluate with no parsing and no lookups
of operator names.

The language is the one of ``theaios-agent-monitor``'s anomaly-rule ``condition`` strings, so
its rules work unchanged::

    expression  -> or_expr
    or_expr     -> and_expr ("or" and_expr)*
    and_expr    -> not_expr ("and" not_expr)*
    not_expr    -> "not" not_expr | comparison
    comparison  -> primary (comp_op primary)?
    comp_op     -> "==" | "!=" | ">" | "<" | ">=" | "<=" | "matches" | "contains"
                 | "starts_with" | "ends_with" | "in" | "not" "in"
    primary     -> STRING | NUMBER | BOOL | NULL | variable | field | list | "(" expression ")"
    variable    -> "$" IDENTIFIER ("." IDENTIFIER)*
    field       -> IDENTIFIER ("." IDENTIFIER)*
    list        -> "[" (expression ("," expression)*)? "]"

Keywords are case-insensitive (``True``, ``None``, ``AND``), as in the peer. Strings take single
or double quotes; ``\\n``, ``\\t``, ``\\r``, ``\\\\`` and an escaped quote are escapes, and any
other backslash is kept, so ``"\\d+"`` is the regular expression ``\\d+``. Numbers may be negative.

Where Redline differs from the peer it is on purpose: ``matches`` takes a regular expression
(``re.search``) rather than a named matcher; an ordering between mismatched types (``"a" > 1``)
is False instead of comparing their strings; ``contains`` also tests membership in a list, set
or mapping; a missing ``$variable`` is None instead of an error; and field paths also read
object attributes (never ones starting with ``_``).

Evaluation never raises for data it did not expect: a missing field is None, and every
comparison with None other than ``==`` / ``!=`` is False. ``not in`` is exactly ``not (… in …)``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from redline.exceptions import RedlineError

__all__ = ["Condition", "ConditionError", "compile_condition"]

_Eval = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
_Predicate = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
_Test = Callable[[Any, Any], bool]

_NO_VARIABLES: Mapping[str, Any] = {}


class ConditionError(RedlineError, ValueError):
    """A condition does not parse. The message quotes it with a caret under the problem.

    ``text`` is the condition, ``position`` the 0-based offset of the problem, ``line`` and
    ``column`` its 1-based location.
    """

    def __init__(self, reason: str, text: str, position: int) -> None:
        line_start = text.rfind("\n", 0, position) + 1
        line_end = text.find("\n", position)
        shown = text[line_start : len(text) if line_end < 0 else line_end]
        self.reason = reason
        self.text = text
        self.position = position
        self.line = text.count("\n", 0, position) + 1
        self.column = position - line_start + 1
        where = f"column {self.column}"
        if "\n" in text:
            where = f"line {self.line}, {where}"
        pad = "".join(c if c == "\t" else " " for c in shown[: position - line_start])
        super().__init__(f"{reason} at {where}\n    {shown}\n    {pad}^")


# --- tokens -------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "str", "num", "const", "name", "eof", or the operator / keyword itself
    value: Any
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>==|!=|>=|<=|[<>()\[\],.$])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "matches", "contains", "starts_with", "ends_with"})
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None, "none": None}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _unescape(match: re.Match[str]) -> str:
    return _ESCAPES.get(match.group(1), match.group(0))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            problem = "unterminated string" if text[pos] in "'\"" else f"unexpected {text[pos]!r}"
            raise ConditionError(problem, text, pos)
        kind, raw = match.lastgroup, match.group()
        if kind == "str":
            tokens.append(_Token("str", _ESCAPE.sub(_unescape, raw[1:-1]), pos))
        elif kind == "num":
            tokens.append(_Token("num", float(raw) if "." in raw else int(raw), pos))
        elif kind == "op":
            tokens.append(_Token(raw, raw, pos))
        elif kind == "name":
            word = raw.lower()
            if word in _CONSTANTS:
                tokens.append(_Token("const", _CONSTANTS[word], pos))
            else:
                tokens.append(_Token(word if word in _KEYWORDS else "name", raw, pos))
        pos = match.end()
    tokens.append(_Token("eof", "", pos))
    return tokens


# --- evaluation helpers (all total: they return False rather than raise) ------------------


def _member(value: Any, name: str) -> Any:
    """``value[name]`` for a mapping, ``value.name`` otherwise, None when missing or private."""
    if isinstance(value, (dict, Mapping)):  # dict first: a C check, Mapping an ABC one
        return value.get(name)
    if value is None or name.startswith("_"):
        return None
    return getattr(value, name, None)


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except (TypeError, ValueError):  # e.g. an array whose truth is ambiguous
        return False


def _equal(left: Any, right: Any) -> bool:
    try:
        return bool(left == right)
    except (TypeError, ValueError):
        return False


def _not_equal(left: Any, right: Any) -> bool:
    return not _equal(left, right)


def _ordering(compare: Callable[[Any, Any], Any]) -> _Test:
    def test(left: Any, right: Any) -> bool:
        if left is None or right is None:
            return False
        try:
            return bool(compare(left, right))
        except (TypeError, ValueError):  # "a" > 1, or values with no order
            return False

    return test


def _holds(container: Any, item: Any) -> bool:
    """Substring for two strings, membership for a list, tuple, set or mapping's keys."""
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, Collection):
        try:
            return item in container
        except (TypeError, ValueError):
            return False
    return False


def _starts_with(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left.startswith(right)


def _ends_with(left: Any, right: Any) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left.endswith(right)


def _search(regex: re.Pattern[str], value: Any) -> bool:
    if value is None:
        return False
    return regex.search(value if isinstance(value, str) else str(value)) is not None


def _matches(value: Any, pattern: Any) -> bool:
    """``matches`` with a pattern known only at evaluation (``re`` caches its compilations)."""
    if not isinstance(pattern, str):
        return False
    try:
        regex = re.compile(pattern)
    except re.error:
        return False
    return _search(regex, value)


_TESTS: dict[str, _Test] = {
    "==": _equal,
    "!=": _not_equal,
    ">": _ordering(operator.gt),
    "<": _ordering(operator.lt),
    ">=": _ordering(operator.ge),
    "<=": _ordering(operator.le),
    "matches": _matches,
    "contains": _holds,
    "starts_with": _starts_with,
    "ends_with": _ends_with,
    "in": lambda left, right: _holds(right, left),
    "not in": lambda left, right: not _holds(right, left),
}


# --- closures: one factory per construct, so each closure binds its own operands --------


@dataclass(frozen=True, slots=True)
class _Expr:
    """A compiled sub-expression, with what the parent needs to know to specialise itself."""

    evaluate: _Eval
    pos: int
    is_bool: bool = False  # evaluate() always returns a bool
    is_literal: bool = False  # evaluate() always returns ``value``
    value: Any = None


def _literal(value: Any, pos: int) -> _Expr:
    return _Expr(lambda c, v: value, pos, isinstance(value, bool), True, value)


def _as_test(expr: _Expr) -> _Predicate:
    """The expression's truth value as a closure, skipping ``bool()`` when already a bool."""
    if expr.is_bool:
        return expr.evaluate
    evaluate = expr.evaluate
    return lambda c, v: _truthy(evaluate(c, v))


def _either(left: _Expr, right: _Expr) -> _Expr:
    first, second = _as_test(left), _as_test(right)
    return _Expr(lambda c, v: first(c, v) or second(c, v), left.pos, is_bool=True)


def _both(left: _Expr, right: _Expr) -> _Expr:
    first, second = _as_test(left), _as_test(right)
    return _Expr(lambda c, v: first(c, v) and second(c, v), left.pos, is_bool=True)


def _negation(operand: _Expr, pos: int) -> _Expr:
    test = _as_test(operand)
    return _Expr(lambda c, v: not test(c, v), pos, is_bool=True)


def _comparison(test: _Test, left: _Expr, right: _Expr) -> _Expr:
    first, second = left.evaluate, right.evaluate
    if right.is_literal:
        constant = right.value
        return _Expr(lambda c, v: test(first(c, v), constant), left.pos, is_bool=True)
    return _Expr(lambda c, v: test(first(c, v), second(c, v)), left.pos, is_bool=True)


def _lookup(name: str, rest: tuple[str, ...], in_variables: bool, pos: int) -> _Expr:
    """A field (``in_variables=False``) or ``$variable``, walking ``rest`` through members."""
    if not rest:
        if in_variables:
            return _Expr(lambda c, v: v.get(name), pos)
        return _Expr(lambda c, v: c.get(name), pos)

    def walk(context: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        value = (variables if in_variables else context).get(name)
        for part in rest:
            value = _member(value, part)
        return value

    return _Expr(walk, pos)


def _list(items: list[_Expr], pos: int) -> _Expr:
    if all(item.is_literal for item in items):
        values = [item.value for item in items]
        return _Expr(lambda c, v: values, pos, is_literal=True, value=values)
    parts = [item.evaluate for item in items]
    return _Expr(lambda c, v: [part(c, v) for part in parts], pos)


def _membership(values: list[Any], negate: bool) -> _Test:
    """``in`` / ``not in`` a literal list: a set lookup when every item is hashable."""
    try:
        members = frozenset(values)
    except TypeError:  # a literal list holding a list: keep the linear scan
        return _TESTS["not in" if negate else "in"]

    def test(item: Any, _: Any) -> bool:
        try:
            return (item in members) != negate
        except TypeError:  # an unhashable item, such as a list field
            return (item in values) != negate

    return test


def _regex(pattern: Any, text: str, pos: int) -> _Test:
    """``matches`` a literal pattern, compiled now so a bad pattern fails at load."""
    if not isinstance(pattern, str):
        raise ConditionError("'matches' needs a string pattern", text, pos)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConditionError(f"invalid regular expression: {exc.msg}", text, pos) from exc
    return lambda value, _: _search(regex, value)


# --- parser: recursive descent straight to closures ---------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.fields: set[str] = set()

    def fail(self, reason: str, token: _Token) -> NoReturn:
        raise ConditionError(reason, self.text, token.pos)

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(f"expected {what}, found {_describe(token)}", token)
        return self.advance()

    def parse(self) -> _Expr:
        expr = self.or_expr()
        token = self.peek()
        if token.kind != "eof":
            self.fail(f"unexpected {_describe(token)}", token)
        return expr

    def or_expr(self) -> _Expr:
        expr = self.and_expr()
        while self.peek().kind == "or":
            self.advance()
            expr = _either(expr, self.and_expr())
        return expr

    def and_expr(self) -> _Expr:
        expr = self.not_expr()
        while self.peek().kind == "and":
            self.advance()
            expr = _both(expr, self.not_expr())
        return expr

    def not_expr(self) -> _Expr:
        if self.peek().kind != "not":
            return self.comparison()
        token = self.advance()
        return _negation(self.not_expr(), token.pos)

    def comparison(self) -> _Expr:
        left = self.primary()
        token = self.peek()
        if token.kind in _TESTS:
            op = self.advance().kind
        elif token.kind == "not" and self.peek(1).kind == "in":
            self.index += 2
            op = "not in"
        else:
            return left
        right = self.primary()
        test = _TESTS[op]
        if right.is_literal and op == "matches":
            test = _regex(right.value, self.text, right.pos)
        elif right.is_literal and op in ("in", "not in") and isinstance(right.value, list):
            test = _membership(right.value, negate=op == "not in")
        return _comparison(test, left, right)

    def primary(self) -> _Expr:
        token = self.peek()
        if token.kind in ("str", "num", "const"):
            self.advance()
            return _literal(token.value, token.pos)
        if token.kind == "$":
            self.advance()
            name = self.expect("name", "a variable name after '$'").value
            return _lookup(name, self.dotted(), True, token.pos)
        if token.kind == "name":
            self.advance()
            self.fields.add(token.value)
            return _lookup(token.value, self.dotted(), False, token.pos)
        if token.kind == "(":
            self.advance()
            inner = self.or_expr()
            self.expect(")", "')'")
            return inner
        if token.kind == "[":
            return self.list_literal()
        self.fail(f"expected a value, found {_describe(token)}", token)

    def dotted(self) -> tuple[str, ...]:
        parts: list[str] = []
        while self.peek().kind == ".":
            self.advance()
            parts.append(self.expect("name", "a field name after '.'").value)
        return tuple(parts)

    def list_literal(self) -> _Expr:
        start = self.advance()
        items: list[_Expr] = []
        if self.peek().kind != "]":
            items.append(self.or_expr())
            while self.peek().kind == ",":
                self.advance()
                items.append(self.or_expr())
        self.expect("]", "',' or ']'")
        return _list(items, start.pos)


def _describe(token: _Token) -> str:
    return "end of condition" if token.kind == "eof" else repr(token.value)


# --- public API ----------------------------------------------------------------------------


class Condition:
    """A compiled condition: call it with a context (and variables) to get a bool.

    ``source`` is the text it was compiled from; ``fields`` the top-level context keys it
    reads, so a caller can tell which events a rule depends on. A blank text is always True.
    """

    __slots__ = ("_test", "fields", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        if not source.strip():
            self.fields: frozenset[str] = frozenset()
            self._test: _Predicate = lambda c, v: True
            return
        parser = _Parser(source)
        try:
            expr = parser.parse()
        except RecursionError:
            raise ConditionError("condition nested too deeply", source, 0) from None
        self.fields = frozenset(parser.fields)
        self._test = _as_test(expr)

    def __call__(
        self, context: Mapping[str, Any], variables: Mapping[str, Any] | None = None
    ) -> bool:
        return self._test(context, _NO_VARIABLES if variables is None else variables)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def compile_condition(text: str) -> Condition:
    """Compile ``text`` once; raise :class:`ConditionError` pointing at any syntax error."""
    return Condition(text)
