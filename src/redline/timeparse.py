"""Parse the times users type: epoch seconds, ISO 8601 with offsets, and ``2h``-style ages.

The peer dropped time zones from ``--since``; here an offset is honoured, a naive ISO time is UTC,
and everything becomes epoch seconds (UTC) before it reaches a store.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timezone

__all__ = ["parse_time"]

_UNIT = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "wk": 604800,
    "week": 604800,
}
# Built from the table, so every unit the grammar admits has a length (a missing key was a
# KeyError for "2 hours"). Longest names first: the alternation must not stop at "m" in "min".
_AGE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*("
    + "|".join(sorted(_UNIT, key=len, reverse=True))
    + r")s?(?:\s+ago)?\s*$",
    re.I,
)


def parse_time(value: str | float | datetime | None, *, now: float) -> float | None:
    """Epoch seconds for ``value``; ``None`` passes through.

    Accepts a number (epoch seconds), a ``datetime`` (naive = UTC), an ISO 8601 string
    (``2026-11-21T10:00:00+01:00``, ``2026-11-21``, a trailing ``Z``), ``now``, or an age such as
    ``90s``, ``15m``, ``2h``, ``1d``, ``2w`` (meaning that long before ``now``).
    Raises ``ValueError`` with the accepted forms when nothing fits.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    text = value.strip()
    if text.lower() == "now":
        return now
    m = _AGE.match(text)
    if m:
        return now - float(m.group(1)) * _UNIT[m.group(2).lower()]
    with contextlib.suppress(ValueError):
        return float(text)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"cannot read {value!r} as a time: use ISO 8601 (2026-11-21T10:00:00+01:00), "
            "epoch seconds, or an age like 30m, 2h, 1d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
