"""Specification of redaction: secrets and personal data never leave ``record()`` in ``data``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.redaction import REDACTED, Redactor
from redline.testing import ManualClock, RecordingSubscriber

NOW = 1_700_000_040.0


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


# --- secret keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["password", "api_key", "API-Key", "X-Api-Key", "Authorization", "client_secret",
     "access_token", "refresh_token", "db_passwd", "private_key", "cookie", "Set-Cookie",
     "aws_access_key_id", "credentials", "key", "pin", "ssn", "cvv", "bearer"],
)
def test_secret_keys_are_redacted(redactor: Redactor, key: str) -> None:
    """A key that names a credential has its whole value replaced by ``[REDACTED]``."""
    assert redactor.scrub({key: "s3cr3t"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    ["tokens", "tokens_in", "max_tokens", "prompt_tokens", "completion_tokens", "total_tokens",
     "key_count", "monkey", "model", "turkey"],
)
def test_counters_and_lookalikes_are_not_secrets(redactor: Redactor, key: str) -> None:
    """Token counters and words that merely contain ``key`` keep their values."""
    assert redactor.scrub({key: 42}) == {key: 42}


def test_secret_keys_are_found_at_any_depth(redactor: Redactor) -> None:
    """Secrets nested in dicts and lists are redacted wherever they sit."""
    data = {
        "request": {"headers": {"Authorization": "Bearer abc", "Accept": "json"}},
        "calls": [{"args": {"password": "p"}}, {"args": {"q": "weather"}}],
    }
    assert redactor.scrub(data) == {
        "request": {"headers": {"Authorization": REDACTED, "Accept": "json"}},
        "calls": [{"args": {"password": REDACTED}}, {"args": {"q": "weather"}}],
    }


def test_secret_values_of_any_type_are_redacted(redactor: Redactor) -> None:
    """A secret that is a number, a list or a dict is redacted whole; ``None`` stays ``None``."""
    out = redactor.scrub({"pin": 1234, "api_key": ["a", "b"], "secret": {"k": 1}, "token": None})
    assert out == {"pin": REDACTED, "api_key": REDACTED, "secret": REDACTED, "token": None}


def test_extra_secret_keys_can_be_configured() -> None:
    """``redaction.keys`` adds key names to treat as secrets."""
    r = Redactor(extra_keys=["Account-Number"])
    assert r.scrub({"account_number": "12", "account": "x"}) == {
        "account_number": REDACTED, "account": "x",
    }


# --- value patterns -------------------------------------------------------------------------


def test_emails_in_text_are_redacted(redactor: Redactor) -> None:
    """Email addresses inside free text are replaced, the rest of the text kept."""
    out = redactor.scrub({"msg": "write to Bob.Smith+x@example.co.uk today"})
    assert out == {"msg": "write to [REDACTED:email] today"}


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4242-4242-4242-4242", "5555555555554444"])
def test_card_numbers_are_redacted(redactor: Redactor, card: str) -> None:
    """Payment-card numbers that pass the Luhn check are redacted, spaced or not."""
    assert redactor.scrub({"note": f"card {card} ok"}) == {"note": "card [REDACTED:card] ok"}


def test_digit_runs_failing_luhn_are_kept(redactor: Redactor) -> None:
    """Order numbers and ids that are not card numbers (Luhn fails) stay readable."""
    text = "order 1234567812345678 and 4111-1111-1111-1112"
    assert redactor.scrub({"note": text}) == {"note": text}


def test_values_in_lists_are_scrubbed(redactor: Redactor) -> None:
    """Strings inside lists and tuples are scrubbed too."""
    out = redactor.scrub({"to": ["a@b.io", "plain"], "pair": ("x", "c@d.io")})
    assert out == {"to": ["[REDACTED:email]", "plain"], "pair": ["x", "[REDACTED:email]"]}


def test_custom_patterns_are_named_in_the_marker() -> None:
    """A configured pattern replaces its matches with ``[REDACTED:<name>]``."""
    r = Redactor(patterns={"ticket": r"TKT-\d{4}"})
    assert r.scrub({"m": "see TKT-1234 now"}) == {"m": "see [REDACTED:ticket] now"}


def test_builtin_patterns_can_be_switched_off() -> None:
    """``emails: false`` and ``cards: false`` leave those values alone."""
    r = Redactor(emails=False, cards=False)
    data = {"m": "a@b.io 4111111111111111"}
    assert r.scrub(data) == data


def test_repeated_values_are_scrubbed_the_same_way(redactor: Redactor) -> None:
    """Scrubbing is deterministic: the same text gives the same result every time."""
    first = redactor.scrub({"m": "x@y.io"})
    second = redactor.scrub({"m": "x@y.io"})
    assert first == second == {"m": "[REDACTED:email]"}


# --- never surprising -----------------------------------------------------------------------


def test_the_callers_dict_is_never_mutated(redactor: Redactor) -> None:
    """Scrubbing copies what it changes; the agent's own dict is left as it was."""
    data: dict[str, Any] = {"password": "p", "nested": {"to": ["a@b.io"]}, "n": 1}
    before = copy.deepcopy(data)
    redactor.scrub(data)
    assert data == before


def test_clean_data_is_returned_as_is(redactor: Redactor) -> None:
    """A payload with nothing to scrub comes back as the same object, uncounted."""
    data = {"model": "gpt-4", "n": 3, "tags": ["a"], "nested": {"ok": True}}
    assert redactor.scrub(data) is data
    assert redactor.redacted_count == 0


def test_disabled_redactor_changes_nothing() -> None:
    """``enabled=False`` passes every payload through untouched."""
    data = {"password": "p"}
    assert Redactor(enabled=False).scrub(data) is data


# --- in the monitor -------------------------------------------------------------------------


def _monitor(raw: dict[str, Any] | None = None) -> Monitor:
    return Monitor(parse_config(raw or {}), clock=ManualClock(NOW))


def test_stored_events_are_redacted() -> None:
    """What reaches the store has secrets and emails scrubbed."""
    m = _monitor()
    m.record(AgentEvent(timestamp=NOW, agent="a", data={"api_key": "k", "to": "x@y.io"}))
    (stored,) = m.get_events()
    m.close()
    assert stored["data"] == {"api_key": REDACTED, "to": "[REDACTED:email]"}


def test_subscribers_only_see_redacted_data() -> None:
    """Bus subscribers (exporters, hooks) receive the scrubbed event, never the secret."""
    m = _monitor()
    seen = RecordingSubscriber()
    m.subscribe(seen)
    m.record(AgentEvent(timestamp=NOW, agent="a", data={"password": "hunter2"}))
    m.close()
    assert seen.events[0].data == {"password": REDACTED}


def test_redactions_are_counted_in_stats() -> None:
    """``stats()["redacted"]`` counts the events that needed scrubbing."""
    m = _monitor()
    m.record(AgentEvent(timestamp=NOW, agent="a", data={"token": "t"}))
    m.record(AgentEvent(timestamp=NOW, agent="a", data={"fine": "value"}))
    m.close()
    assert m.stats()["redacted"] == 1


def test_redaction_is_configured_from_yaml_keys() -> None:
    """The ``redaction`` section's keys, patterns and switches reach the monitor."""
    m = _monitor({"redaction": {"keys": ["customer_id"], "emails": False,
                                "patterns": {"ticket": r"TKT-\d+"}}})
    m.record(AgentEvent(timestamp=NOW, agent="a",
                        data={"customer_id": "c-9", "m": "a@b.io TKT-77"}))
    (stored,) = m.get_events()
    m.close()
    assert stored["data"] == {"customer_id": REDACTED, "m": "a@b.io [REDACTED:ticket]"}


def test_redaction_can_be_turned_off() -> None:
    """``redaction.enabled: false`` stores ``data`` as the agent gave it."""
    m = _monitor({"redaction": {"enabled": False}})
    m.record(AgentEvent(timestamp=NOW, agent="a", data={"password": "p"}))
    (stored,) = m.get_events()
    m.close()
    assert stored["data"] == {"password": "p"}


def test_short_text_skips_the_regex_but_short_secrets_are_still_caught() -> None:
    """Short text without ``@`` cannot hold a built-in match and skips the regex; a short email
    still does not, and a custom pattern applies to text of any length."""
    r = Redactor()
    assert r.scrub({"args": "q-12"}) == {"args": "q-12"}
    assert r.scrub({"args": "a@b.io"}) == {"args": "[REDACTED:email]"}
    assert r.scrub_text("q-12") == "q-12"
    custom = Redactor(patterns={"key": r"sk-[a-z]{3}"})
    assert custom.scrub({"args": "sk-abc"}) == {"args": "[REDACTED:key]"}
    assert custom.scrub_text("sk-abc") == "[REDACTED:key]"
