"""Every ``redline`` command the README and docs show parses against the real CLI.

Docs drift from flags silently (``serve -c`` was documented before it worked). This reads each
fenced code block in README.md and docs/*.md, takes every line that runs ``redline`` (after an
optional ``$`` prompt, ``.venv/bin/`` or environment assignments) and every inline ```redline
...``` in prose, and parses it with the CLI's
own click commands: an unknown command, option or choice, a missing argument or a bad value
fails here with the file and line.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from redline.cli._app import app, hoist_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELLS = {"", "bash", "sh", "console", "shell"}
_START = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?redline(?:\s|$)")
# Inline code in prose: `redline ...`, unless it shows optional parts as [--like this].
_INLINE = re.compile(r"`((?:\.venv/bin/)?redline(?: [^`\[]*)?)`")

_SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "<", "&"}


def _commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in DOCS:
        fence: str | None = None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = _FENCE.match(line.strip())
            if m:
                fence = m.group(1) if fence is None else None
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            if fence is None:
                found.extend((where, span) for span in _INLINE.findall(line))
            elif fence in _SHELLS and _START.match(line.strip()):
                found.append((where, line.strip()))
    return found


COMMANDS = _commands()


def _argv(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    if words and words[0] == "$":
        words = words[1:]
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]  # FOO=bar redline ...
    assert words[0].endswith("redline"), line
    words = words[1:]
    cut = next((i for i, w in enumerate(words) if w in _SHELL_OPERATORS), len(words))
    return hoist_config(words[:cut])


def _parse(command: Any, name: str, args: list[str], parent: Any) -> None:
    ctx = command.make_context(name, list(args), parent=parent)
    if hasattr(command, "resolve_command"):  # a group (Typer may vendor its own click)
        # The subcommand's name (click 8.2 keeps it in _protected_args, older ones publicly).
        head = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []
        rest = [*head, *ctx.args]
        if not rest:
            assert parent is not None, "`redline` alone prints its help"
            return
        sub_name, sub, sub_args = command.resolve_command(ctx, rest)
        assert sub is not None
        assert sub_name is not None
        _parse(sub, sub_name, sub_args, ctx)


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 50  # the scan itself works


@pytest.mark.parametrize(
    "line",
    [
        "redline serve --nope",
        "redline tail -n lots",  # not an integer
        "redline kill sales-agent --reason",  # no value
        "redline evnts",
        "$ redline db",
    ],
)
def test_a_command_that_drifted_is_caught(line: str) -> None:
    """The check itself: a wrong flag, command or value is a failure, not a pass."""
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        test_documented_command_parses("here", line)


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where: str, line: str) -> None:
    root = typer.main.get_command(app)
    args = _argv(line)
    if not args:
        return  # the program's name in prose
    try:
        _parse(root, "redline", args, None)
    except typer.Exit:
        pass  # --help, --version
    except Exception as exc:
        if not hasattr(exc, "format_message"):  # not a usage error: a bug here, show it
            raise
        pytest.fail(f"{where}: `{line}` does not parse: {exc.format_message()}")
