"""The ``budgets:`` section: spending limits that are checked before a call, not after.

::

    budgets:
      - name: sales-daily
        scope: agent          # agent | session | user | tenant | model | fleet
        match: "sales-*"      # wildcard over the scope's key ("*": each key its own budget)
        limit_usd: 5.0
        period: day           # hour | day | week | month (calendar, in timezone) or seconds
        timezone: UTC
        action: deny          # deny | kill_agent | kill_session | alert
        warn_at: [0.5, 0.8]   # alerts as spend crosses these fractions of the limit

Every problem in the section is reported in one run, each located by the budget's position and
name (``budgets[1] (sales-daily).period: ...``).
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from redline.config.errors import convert_reporting_all
from redline.exceptions import ConfigError

__all__ = ["ACTIONS", "CALENDAR_PERIODS", "SCOPES", "BudgetConfig", "parse_budgets_config"]

SCOPES: Final = ("agent", "session", "user", "tenant", "model", "fleet")
ACTIONS: Final = ("deny", "kill_agent", "kill_session", "alert")
CALENDAR_PERIODS: Final = ("hour", "day", "week", "month")


class BudgetConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One budget as written in the file."""

    name: str
    limit_usd: float
    scope: Literal["agent", "session", "user", "tenant", "model", "fleet"] = "agent"
    match: str = "*"
    period: str | float = "day"
    timezone: str = "UTC"
    action: Literal["deny", "kill_agent", "kill_session", "alert"] = "deny"
    warn_at: list[float] = msgspec.field(default_factory=list)

    @property
    def rolling_seconds(self) -> float | None:
        """The window of a rolling budget (``period`` a number of seconds), else ``None``."""
        return None if isinstance(self.period, str) else float(self.period)


def parse_budgets_config(raw: Any, *, source: str) -> tuple[BudgetConfig, ...]:
    """The section as budgets, every structural and semantic problem reported at once."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError([f"{source}: budgets: expected a list of budgets"], file=source)
    errors: list[str] = []
    budgets: list[BudgetConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        label = f"budgets[{i}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']})"
        try:
            budget = convert_reporting_all(
                entry, BudgetConfig, source=source, errors=errors, prefix=f"budgets[{i}]"
            )
        except ConfigError:
            continue
        problems = _semantic(budget)
        if budget.name in seen:
            problems.append(("name", f"another budget is named {budget.name!r}; names are unique"))
        seen.add(budget.name)
        errors.extend(f"{source}: {label}.{key}: {what}" for key, what in problems)
        if not problems:
            budgets.append(budget)
    if errors:
        raise ConfigError(errors, file=source)
    return tuple(budgets)


def _semantic(b: BudgetConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not b.name.strip():
        problems.append(("name", "expected a non-empty name"))
    if not (math.isfinite(b.limit_usd) and b.limit_usd > 0):
        problems.append(("limit_usd", f"expected an amount in USD > 0, got {b.limit_usd!r}"))
    if isinstance(b.period, str):
        if b.period not in CALENDAR_PERIODS:
            problems.append(
                (
                    "period",
                    f"expected one of {', '.join(CALENDAR_PERIODS)} or a number of seconds, "
                    f"got {b.period!r}",
                )
            )
    elif not (math.isfinite(b.period) and b.period >= 1):
        problems.append(("period", f"expected a number of seconds >= 1, got {b.period!r}"))
    try:
        ZoneInfo(b.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("timezone", f"expected an IANA time zone such as UTC, got {b.timezone!r}"))
    for fraction in b.warn_at:
        if not 0 < fraction < 1:
            problems.append(
                ("warn_at", f"expected fractions of the limit between 0 and 1, got {fraction!r}")
            )
    if b.scope == "fleet" and b.match != "*":
        problems.append(("match", "a fleet budget has one key ('*'); match does not apply"))
    if b.action == "kill_session" and b.scope not in ("session",):
        problems.append(
            ("action", "kill_session needs scope: session (the session that overspent)")
        )
    return problems
