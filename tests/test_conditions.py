"""Specification of the rule-condition language: syntax, semantics, safety and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from redline.detect.conditions import Condition, ConditionError, compile_condition
from redline.exceptions import RedlineError


def check(text: str, context: dict[str, Any] | None = None, **variables: Any) -> bool:
    return compile_condition(text)(context or {}, variables)


# --- the peer's typical conditions --------------------------------------------------------


@pytest.mark.parametrize(("hour", "expected"), [(8, False), (9, True), (16, True), (17, False)])
def test_business_hours(hour: int, expected: bool) -> None:
    """``hour >= 9 and hour < 17`` holds from 9:00 up to, not including, 17:00."""
    assert check("hour >= 9 and hour < 17", {"hour": hour}) is expected


@pytest.mark.parametrize(("day", "expected"), [(4, False), (5, True), (6, True)])
def test_weekend(day: int, expected: bool) -> None:
    """``day_of_week in [5, 6]`` holds on Saturday and Sunday only."""
    assert check("day_of_week in [5, 6]", {"day_of_week": day}) is expected


# --- operators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n == 3", True),
        ("n == 4", False),
        ("n != 4", True),
        ("n != 3", False),
        ("n > 2", True),
        ("n > 3", False),
        ("n < 4", True),
        ("n < 3", False),
        ("n >= 3", True),
        ("n >= 4", False),
        ("n <= 3", True),
        ("n <= 2", False),
        ("n == 3.0", True),
        ("n > -1", True),
        ("n < 3.5", True),
    ],
)
def test_numeric_comparisons(text: str, expected: bool) -> None:
    """The six comparisons work on ints and floats, including negative literals."""
    assert check(text, {"n": 3}) is expected


def test_string_comparisons_are_lexicographic() -> None:
    """Strings order like Python strings."""
    assert check('name < "bob"', {"name": "alice"})
    assert not check('name > "bob"', {"name": "alice"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('tool contains "sh"', True),
        ('tool contains "xx"', False),
        ('tool starts_with "sh"', True),
        ('tool starts_with "ll"', False),
        ('tool ends_with "ll"', True),
        ('tool ends_with "sh"', False),
        ('"hel" in tool', True),
        ('"xx" in tool', False),
        ('"xx" not in tool', True),
    ],
)
def test_string_operators(text: str, expected: bool) -> None:
    """``contains``, ``starts_with``, ``ends_with`` and ``in`` test substrings of strings."""
    assert check(text, {"tool": "shell"}) is expected


def test_contains_tests_list_membership() -> None:
    """``contains`` on a list field asks whether the list holds the value."""
    assert check('tags contains "pii"', {"tags": ["pii", "eu"]})
    assert not check('tags contains "us"', {"tags": ["pii", "eu"]})


def test_in_a_mapping_tests_its_keys() -> None:
    """``in`` a mapping asks whether it has that key."""
    assert check('"eu" in regions', {"regions": {"eu": 1}})


@pytest.mark.parametrize(
    ("tool", "expected"), [("shell", True), ("http", True), ("sql", False), (None, False)]
)
def test_in_a_literal_list(tool: str | None, expected: bool) -> None:
    """``in [..]`` is membership in the list; a missing value is in no list."""
    assert check('tool in ["shell", "http"]', {"tool": tool}) is expected


@pytest.mark.parametrize(
    ("tool", "expected"), [("shell", False), ("http", False), ("sql", True), (None, True)]
)
def test_not_in_a_literal_list(tool: str | None, expected: bool) -> None:
    """``not in`` is exactly the negation of ``in``."""
    assert check('tool not in ["shell", "http"]', {"tool": tool}) is expected


def test_in_a_list_of_fields() -> None:
    """List items are expressions, evaluated against the context."""
    assert check("owner in [author, reviewer]", {"owner": "b", "author": "a", "reviewer": "b"})


def test_in_a_list_field() -> None:
    """The right side of ``in`` may be a list read from the context."""
    assert check("user in allowed", {"user": "bob", "allowed": ["alice", "bob"]})


def test_unhashable_value_in_a_literal_list() -> None:
    """A list value tested against a literal list compares items, without raising."""
    assert check("pair in [[1, 2], 3]", {"pair": [1, 2]})
    assert not check("pair in [5, 6]", {"pair": [5]})


def test_empty_list() -> None:
    """Nothing is in the empty list."""
    assert not check("x in []", {"x": 1})


def test_equality_with_a_list() -> None:
    """A literal list equals a list field with the same items."""
    assert check('tags == ["a", "b"]', {"tags": ["a", "b"]})


def test_matches_searches_a_regular_expression() -> None:
    """``matches`` is ``re.search``: it finds the pattern anywhere unless anchored."""
    assert check(r'email matches "@example\.com$"', {"email": "bob@example.com"})
    assert not check(r'email matches "^example"', {"email": "bob@example.com"})


def test_matches_keeps_unknown_backslashes() -> None:
    """``"\\d+"`` reaches the regex engine as ``\\d+``, so regex classes need no doubling."""
    assert check(r'code matches "^E\d+$"', {"code": "E42"})


def test_matches_a_number_as_text() -> None:
    """A number is matched through its decimal text."""
    assert check('status matches "^5"', {"status": 503})


def test_matches_a_pattern_from_a_variable() -> None:
    """The pattern may come from a variable; a bad one there is simply no match."""
    assert check("host matches $allowed", {"host": "api.internal"}, allowed=r"\.internal$")
    assert not check("host matches $allowed", {"host": "api.internal"}, allowed="(")


# --- literals -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["flag == true", "flag == True", "flag == TRUE", "flag"])
def test_true_literals(text: str) -> None:
    """``true`` is spelled in any case, and a bare field is tested for truth."""
    assert check(text, {"flag": True})


@pytest.mark.parametrize("text", ["x == null", "x == none", "x == None"])
def test_null_literals(text: str) -> None:
    """``null`` and ``none`` are None, in any case."""
    assert check(text, {"x": None})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r"'it\'s'", "it's"),
        (r'"tab\there"', "tab\there"),
        (r'"line\nbreak"', "line\nbreak"),
        (r'"back\\slash"', "back\\slash"),
        ("'say \"hi\"'", 'say "hi"'),
    ],
)
def test_string_escapes(text: str, value: str) -> None:
    """Both quote styles work, with backslash escapes for quotes, tab, newline and backslash."""
    assert check(f"s == {text}", {"s": value})


def test_keywords_are_case_insensitive() -> None:
    """``AND``, ``Or`` and ``NOT`` work like their lower-case forms, as in the peer."""
    assert check("a AND NOT b Or c", {"a": True, "b": False, "c": False})


# --- logic and precedence -----------------------------------------------------------------


def test_not_binds_tighter_than_and() -> None:
    """``not a and b`` is ``(not a) and b``."""
    assert check("not a and b", {"a": False, "b": True})
    assert not check("not a and b", {"a": True, "b": False})


def test_and_binds_tighter_than_or() -> None:
    """``a or b and c`` is ``a or (b and c)``."""
    assert check("a or b and c", {"a": True, "b": False, "c": False})


def test_not_applies_to_a_whole_comparison() -> None:
    """``not x == 1`` negates the comparison, not ``x``."""
    assert check("not x == 1", {"x": 2})


def test_parentheses_override_precedence() -> None:
    """``(a or b) and c`` groups the ``or`` first."""
    assert not check("(a or b) and c", {"a": True, "b": False, "c": False})


def test_double_negation() -> None:
    """``not not x`` is the truth of ``x``."""
    assert check("not not x", {"x": 1})


def test_and_or_chains() -> None:
    """Chains of three or more operands evaluate every link."""
    assert check("a and b and c", {"a": 1, "b": 1, "c": 1})
    assert not check("a and b and c", {"a": 1, "b": 1, "c": 0})
    assert check("a or b or c", {"c": 1})


def test_or_short_circuits() -> None:
    """The right side of a satisfied ``or`` is not evaluated."""

    class Explodes:
        @property
        def value(self) -> int:
            raise AssertionError("evaluated")

    assert check("ok or thing.value == 1", {"ok": True, "thing": Explodes()})


# --- fields and variables -----------------------------------------------------------------


def test_nested_fields_walk_mappings() -> None:
    """``a.b.c`` reads nested mappings."""
    assert check('request.user.role == "admin"', {"request": {"user": {"role": "admin"}}})


def test_nested_fields_read_attributes() -> None:
    """Field paths also read attributes of objects, such as dataclasses."""

    @dataclass
    class User:
        role: str

    assert check('user.role == "admin"', {"user": User("admin")})


def test_private_attributes_are_not_readable() -> None:
    """Attributes starting with ``_`` read as None, so conditions cannot walk into internals."""
    assert check("user.__class__ == null", {"user": object()})


def test_missing_fields_are_none() -> None:
    """A missing field, or a path through a missing or scalar value, is None."""
    assert check("missing == null")
    assert check("a.b.c == null", {"a": {}})
    assert check("a.b == null", {"a": 3})


def test_variables_are_substituted() -> None:
    """``$name`` reads the variables passed at evaluation."""
    condition = compile_condition("domain != $company_domain")
    assert condition({"domain": "evil.com"}, {"company_domain": "acme.com"})
    assert not condition({"domain": "acme.com"}, {"company_domain": "acme.com"})


def test_variables_take_dotted_paths() -> None:
    """``$limits.cost`` walks into a variable like a field."""
    assert check("cost > $limits.cost", {"cost": 5}, limits={"cost": 2})


def test_unknown_variable_is_none() -> None:
    """An unknown variable is None, never an error."""
    assert compile_condition("$nope == null")({})
    assert not compile_condition("x > $nope")({"x": 1})


def test_fields_lists_top_level_names_read() -> None:
    """``fields`` names the top-level context keys read, not variables or nested parts."""
    condition = compile_condition('user.role == "a" and (cost > $max or tool in [x, 1])')
    assert condition.fields == frozenset({"user", "cost", "tool", "x"})


# --- safety -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'x > "a"',
        "s > 1",
        "s >= 1",
        "s < 1",
        "s <= 1",
        "lst > 1",
        "missing > 1",
        "missing < 1",
        "1 <= missing",
        "missing contains 1",
        "missing starts_with 'a'",
        "missing ends_with 'a'",
        "missing matches 'a'",
        "x in 5",
        "x in missing",
        "x contains 1",
        "s starts_with 1",
        "s matches $missing",
        "d > d",
    ],
)
def test_type_mismatches_are_false(text: str) -> None:
    """Comparing values of unrelated types, or with None, is False and never raises."""
    context = {"x": 1, "s": "a", "lst": [1], "d": {"k": 1}}
    assert check(text, context) is False


def test_values_that_refuse_comparison_are_false() -> None:
    """A value whose ``==`` or truth test raises makes the comparison False."""

    class Ambiguous:
        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")

        def __bool__(self) -> bool:
            raise ValueError("ambiguous")

        __hash__ = object.__hash__

    assert not check("v == 1", {"v": Ambiguous()})
    assert not check("v", {"v": Ambiguous()})


def test_blank_condition_is_always_true() -> None:
    """An empty or blank condition holds for every context."""
    assert compile_condition("")({})
    assert compile_condition("  \n ")({"x": 0})
    assert compile_condition("").fields == frozenset()


def test_result_is_always_a_bool() -> None:
    """Calling a condition returns True or False, even for a bare non-bool field."""
    assert compile_condition("name")({"name": "bob"}) is True
    assert compile_condition("a or b")({"a": 0, "b": ""}) is False


def test_no_code_execution() -> None:
    """Python syntax is rejected, not executed."""
    with pytest.raises(ConditionError):
        compile_condition("__import__('os').system('true')")


def test_conditions_are_reusable() -> None:
    """A compiled condition evaluates many contexts, and shows its source."""
    condition = compile_condition("x > 1")
    assert [condition({"x": n}) for n in range(4)] == [False, False, True, True]
    assert condition.source == "x > 1"
    assert isinstance(condition, Condition)
    assert repr(condition) == "Condition('x > 1')"


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("hour >= ", "expected a value, found end of condition", 9),
        ("a == )", "expected a value, found ')'", 6),
        ("a and or b", "expected a value, found 'or'", 7),
        ("a == 1 b", "unexpected 'b'", 8),
        ("a == 1 == 2", "unexpected '=='", 8),
        ("'abc", "unterminated string", 1),
        ("a ~ b", "unexpected '~'", 3),
        ("(a", "expected ')', found end of condition", 3),
        ("[1, 2", "expected ',' or ']', found end of condition", 6),
        ("$ 1", "expected a variable name after '$', found 1", 3),
        ("a.", "expected a field name after '.', found end of condition", 3),
        ("x matches '('", "invalid regular expression", 11),
        ("x matches 5", "'matches' needs a string pattern", 11),
        ("x in not", "expected a value, found 'not'", 6),
    ],
)
def test_syntax_errors_name_the_column(text: str, reason: str, column: int) -> None:
    """A syntax error says what is wrong and at which 1-based column."""
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert str(caught.value).startswith(reason)
    assert f"at column {column}\n" in str(caught.value)
    assert caught.value.column == column


def test_error_message_has_a_caret_under_the_problem() -> None:
    """The message quotes the condition with a caret line under the offending character."""
    with pytest.raises(ConditionError) as caught:
        compile_condition("a == )")
    _, quoted, caret = str(caught.value).split("\n")
    assert quoted.endswith("a == )")
    assert caret.index("^") == quoted.index(")")


def test_error_in_multi_line_condition_names_the_line() -> None:
    """For a condition spread over lines, the error gives line and column and quotes that line."""
    with pytest.raises(ConditionError) as caught:
        compile_condition("a == 1\n  and )")
    error = caught.value
    assert (error.line, error.column) == (2, 7)
    _, quoted, caret = str(error).split("\n")
    assert quoted.endswith("  and )")
    assert caret.index("^") == quoted.index(")")


def test_condition_error_is_a_value_error() -> None:
    """``ConditionError`` is both a ``ValueError`` and a ``RedlineError``."""
    with pytest.raises(ValueError, match="unexpected"):
        compile_condition("a b")
    assert issubclass(ConditionError, RedlineError)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    """Absurdly deep parentheses raise ``ConditionError`` instead of ``RecursionError``."""
    with pytest.raises(ConditionError, match="nested too deeply"):
        compile_condition("(" * 5000 + "x" + ")" * 5000)
