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


# --- linear time and credential formats ------------------------------------------------------


def _scrub_seconds(redactor: Redactor, text: str) -> float:
    import time

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        redactor.scrub_text(text)
        best = min(best, time.perf_counter() - start)
    return best


def test_redaction_is_linear_in_a_long_unbroken_token() -> None:
    """A 20 KB hex string costs about ten times a 2 KB one, not a hundred (measured in one run)."""
    redactor = Redactor()
    small = _scrub_seconds(redactor, "a1b2c3d4e5" * 200)
    large = _scrub_seconds(redactor, "a1b2c3d4e5" * 2_000)
    # Linear is 10x; quadratic was ~100x (2 KB 16 ms, 20 KB 1.2 s). 40x leaves room for noise.
    assert large < max(small, 1e-5) * 40


@pytest.mark.parametrize(
    "text",
    ["x@" * 5_000, "a." * 10_000, "1 " * 10_000, "eyJ" * 7_000, "sk-" * 7_000,
     "Bearer " * 3_000, "a://b:" * 3_000, "password=" * 2_000, "-----BEGIN PRIVATE KEY-----" * 700],
)
def test_adversarial_shapes_stay_linear(text: str) -> None:
    """Repeated fragments of every pattern cost the same order as plain text of that length."""
    redactor = Redactor()
    plain = _scrub_seconds(redactor, "q" * len(text))
    assert _scrub_seconds(redactor, text) < max(plain, 1e-4) * 200


SECRETS = {
    "api_key": "calling the API with key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "anthropic": "key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx-yz0123456789",
    "bearer": "Authorization: Bearer abcdefghijklmnop.qrstuvwx",
    "jwt": "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "aws_access_key": "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
    "github_token": "push with ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "gitlab_token": "glpat-AbCdEfGhIjKlMnOpQrSt",
    "slack_token": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack_webhook": "post to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
    "url_password": "connect to postgres://admin:hunter2hunter2@db.internal:5432/app",
    "assignment": "Server=db;User Id=sa;Password=Sup3rS3cret!;",
}
LEAKS = {
    "api_key": "AbCdEfGhIjKl", "anthropic": "AbCdEfGhIjKl", "bearer": "abcdefghijklmnop",
    "jwt": "eyJzdWIi", "aws_access_key": "AKIAIOSFODNN7EXAMPLE", "aws_secret": "wJalrXUtnFEMI",
    "github_token": "ghp_AbCd", "github_pat": "github_pat_11", "gitlab_token": "glpat-AbCd",
    "slack_token": "xoxb-1234", "slack_webhook": "XXXXXXXXXXXX", "private_key": "MIIEpAIB",
    "url_password": "hunter2", "assignment": "Sup3rS3cret",
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_credentials_in_free_text_are_redacted(name: str) -> None:
    """Each well-known credential format is found inside ordinary text and replaced."""
    out = Redactor().scrub_text(SECRETS[name])
    assert LEAKS[name] not in out
    assert "[REDACTED:" in out


def test_labels_around_a_credential_stay_readable() -> None:
    """``Bearer``, ``password=`` and ``scheme://user:`` stay, so the text still says what it was."""
    r = Redactor()
    assert r.scrub_text("Bearer abcdefghijklmnop") == "Bearer [REDACTED:bearer]"
    assert r.scrub_text("postgres://admin:pw123456@db/x") == (
        "postgres://admin:[REDACTED:url_password]@db/x"
    )
    assert r.scrub_text("password=hunter22 next") == "password=[REDACTED:assignment] next"


def test_ordinary_text_is_left_alone() -> None:
    """Prose, model names, paths and hashes without a credential shape are not touched."""
    r = Redactor()
    for text in ["gpt-4o-mini", "the sky is blue", "/usr/local/bin", "a1b2c3" * 10,
                 "https://example.com/path?q=1", "skeleton-key-lore", "token count: 42"]:
        assert r.scrub_text(text) == text


def test_credentials_can_be_switched_off_and_fields_allow_listed() -> None:
    """``credentials: false`` keeps the formats; ``allow_keys`` keeps a field as written."""
    assert Redactor(credentials=False).scrub_text(SECRETS["api_key"]) == SECRETS["api_key"]
    r = Redactor(allow_keys=["doc_id"])
    assert r.scrub({"doc_id": "4111 1111 1111 1111"}) == {"doc_id": "4111 1111 1111 1111"}


# --- structures that used to escape ----------------------------------------------------------


def test_dict_subclasses_sets_and_str_enums_are_scrubbed() -> None:
    """OrderedDict, defaultdict, sets, frozensets and StrEnum values are scrubbed like the rest."""
    import enum
    from collections import OrderedDict, defaultdict

    class Mail(enum.StrEnum):
        BOSS = "boss@example.com"

    dd: defaultdict[str, str] = defaultdict(str, {"password": "p"})
    out = Redactor().scrub({
        "od": OrderedDict(api_key="k"),
        "dd": dd,
        "set": {"alice@example.com"},
        "fs": frozenset({"bob@example.com"}),
        "enum": Mail.BOSS,
    })
    assert out["od"] == {"api_key": REDACTED}
    assert out["dd"] == {"password": REDACTED}
    assert out["set"] == ["[REDACTED:email]"]
    assert out["fs"] == ["[REDACTED:email]"]
    assert out["enum"] == "[REDACTED:email]"


def test_values_nested_deeper_than_the_scan_are_not_let_through() -> None:
    """Past 32 levels a container is replaced whole instead of stored unscanned."""
    deep: Any = {"password": "p"}
    for _ in range(40):
        deep = {"n": deep}
    out = Redactor().scrub(deep)
    assert "'p'" not in repr(out)
    assert "[REDACTED:depth]" in repr(out)


def test_tool_status_tags_and_kill_reasons_are_scrubbed() -> None:
    """Fields that become labels and alert text go through the same redaction as ``data``."""
    clock = ManualClock(NOW)
    sub = RecordingSubscriber()
    with Monitor(parse_config({}), clock=clock) as m:
        m.subscribe(sub)
        m.record(AgentEvent(timestamp=NOW, event_type="tool_call", agent="a",
                            tool="send to eve@example.com", status="key sk-proj-AbCdEfGhIjKlMnOpQrStUv",
                            tags=["owner:alice@example.com"]))
        rec = m.kill_agent("a", reason="leaked password=hunter22 in logs")
        ev = sub.events[0]
        assert ev.tool == "send to [REDACTED:email]"
        assert "AbCdEf" not in (ev.status or "")
        assert ev.tags == ["owner:[REDACTED:email]"]
        assert "hunter22" not in rec.reason
