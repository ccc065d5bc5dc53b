"""Specification of the times users type: epoch seconds, ISO 8601 with offsets, ``2h`` ages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from redline.timeparse import parse_time

NOW = 1_700_000_040.0
UTC_10AM = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc).timestamp()


def test_none_passes_through() -> None:
    """No time given stays no time."""
    assert parse_time(None, now=NOW) is None


@pytest.mark.parametrize("value", [1_700_000_000, 1_700_000_000.5, "1700000000.5"])
def test_epoch_seconds(value: object) -> None:
    """Numbers, and numeric strings, are epoch seconds."""
    assert parse_time(value, now=NOW) == float(value)  # type: ignore[arg-type]


def test_iso_offsets_are_honoured() -> None:
    """``10:00+01:00`` is 09:00 UTC: the offset is applied, not dropped (the peer's bug)."""
    assert parse_time("2026-11-21T10:00:00+01:00", now=NOW) == UTC_10AM - 3600
    assert parse_time("2026-11-21T05:00:00-05:00", now=NOW) == UTC_10AM


@pytest.mark.parametrize("text", ["2026-11-21T10:00:00Z", "2026-11-21T10:00:00z",
                                  "2026-11-21T10:00:00", "2026-11-21 10:00:00"])
def test_z_and_naive_iso_times_are_utc(text: str) -> None:
    """A trailing ``Z`` means UTC, and so does an ISO time without an offset."""
    assert parse_time(text, now=NOW) == UTC_10AM


def test_a_date_alone_is_midnight_utc() -> None:
    """``2026-11-21`` is the start of that day in UTC."""
    assert parse_time("2026-11-21", now=NOW) == UTC_10AM - 10 * 3600


def test_fractional_seconds() -> None:
    """ISO times keep their fractions of a second."""
    assert parse_time("2026-11-21T10:00:00.250+00:00", now=NOW) == UTC_10AM + 0.25


def test_datetimes_are_accepted() -> None:
    """A ``datetime`` is converted; a naive one is taken as UTC."""
    aware = datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert parse_time(aware, now=NOW) == UTC_10AM
    assert parse_time(datetime(2026, 11, 21, 10, 0), now=NOW) == UTC_10AM


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("2w", 1_209_600),
     ("30 min", 1800), ("3 days", 259_200), ("2h ago", 7200), ("1.5h", 5400), ("2H", 7200),
     ("10 secs", 10), ("4hrs", 14_400)],
)
def test_ages_count_back_from_now(text: str, seconds: float) -> None:
    """An age such as ``2h`` means that long before now."""
    assert parse_time(text, now=NOW) == NOW - seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2 hours", 7200), ("30 minutes", 1800), ("1 week", 604_800), ("10 seconds ago", 10),
     ("1hour", 3600), ("5 mins", 300), ("2 weeks ago", 1_209_600), ("1 second", 1),
     ("3 wks", 1_814_400), ("1 day ago", 86400), ("7 MINUTE", 420)],
)
def test_every_unit_the_grammar_admits_parses(text: str, seconds: float) -> None:
    """Every spelled-out unit, singular or plural, with or without ``ago``, is an age (no KeyError)."""
    assert parse_time(text, now=NOW) == NOW - seconds


def test_now() -> None:
    """``now`` is the given now."""
    assert parse_time(" now ", now=NOW) == NOW


@pytest.mark.parametrize("bad", ["yesterday-ish", "2026-13-45", "", "5 fortnights", "2 hoursago", "h2", "2 hourss"])
def test_unreadable_times_say_what_is_accepted(bad: str) -> None:
    """Text that is no time raises ``ValueError`` listing the accepted forms."""
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time(bad, now=NOW)


def test_booleans_are_not_times() -> None:
    """``True`` is not epoch second 1."""
    with pytest.raises(ValueError, match="not a time"):
        parse_time(True, now=NOW)
