"""Budget periods: where the current one starts, when it resets, which spend bucket a cost is in.

A calendar period (hour, day, week from Monday, month) starts at midnight (or the hour) in the
budget's time zone, daylight-saving changes included; all of its spend is one bucket. A rolling
period of N seconds sums buckets of ``max(1, N / 60)`` seconds whose start is within the last N
seconds, so the window slides in sixtieths of itself and each (budget, key) keeps at most ~61
buckets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from redline.control.budgets.config import BudgetConfig

__all__ = ["Window", "window_of"]


class Window(NamedTuple):
    """Spend counts from buckets ``>= since``; a cost at this moment goes to ``bucket``."""

    since: float
    bucket: float
    resets_at: float


def window_of(budget: BudgetConfig, now: float) -> Window:
    """The window of ``budget`` at ``now`` (seconds since the epoch)."""
    rolling = budget.rolling_seconds
    if rolling is not None:
        width = max(1.0, rolling / 60.0)
        bucket = now - now % width
        return Window(since=bucket - rolling + width, bucket=bucket, resets_at=bucket + width)
    tz = ZoneInfo(budget.timezone)
    local = datetime.fromtimestamp(now, tz)
    if budget.period == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif budget.period == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif budget.period == "week":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:  # month
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    # Aware arithmetic within one zone is wall-clock: the next midnight, even across a DST change.
    return Window(since=start.timestamp(), bucket=start.timestamp(), resets_at=end.timestamp())
