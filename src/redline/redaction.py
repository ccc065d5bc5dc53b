"""Scrub secrets and personal data from event payloads before anything sees them.

Two kinds of rule, both decided once when the monitor is built:

* **Secret keys.** A key whose name looks like a credential (``password``, ``api_key``,
  ``Authorization``, ``client_secret`` ...) has its value replaced by ``"[REDACTED]"``, at any depth.
  Key names repeat endlessly, so each distinct name is judged once and remembered (bounded).
* **Value patterns.** Strings matching a pattern (emails, payment-card numbers that pass the Luhn
  check, the well-known credential formats in :data:`CREDENTIAL_PATTERNS`, and any configured
  regex) have the match replaced by ``"[REDACTED:<name>]"``. Short strings repeat too (model names,
  statuses), so their verdict is remembered as well.

Every built-in pattern is **linear in the text's length**: a match may only start where a token
starts (a look-behind refuses the middle of a run) and every repeat is bounded or stops at a
character the next part needs. An unanchored ``[A-Za-z0-9._%+-]+@`` tried at each of 20,000
positions of a hex string was a second of CPU on the agent's thread; anchored, it is one pass.
Configured patterns are the user's: they are compiled as written.

The user's dict is never mutated: a payload with nothing to scrub is returned as is, one that
needs scrubbing is copied along the path that changed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["CREDENTIAL_PATTERNS", "DEFAULT_SECRET_KEY_PARTS", "REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"
#: What replaces a container nested deeper than the scrubber looks (32 levels).
REDACTED_DEPTH: Final = "[REDACTED:depth]"

#: Substrings of a normalised key name (lower case, ``-``/`` `` → ``_``) that mark a secret.
DEFAULT_SECRET_KEY_PARTS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
    "authorization",
    "auth_header",
    "cookie",
    "session_key",
    "bearer",
    "signature",
)
#: Whole key names that are secrets although no part above matches.
_SECRET_EXACT: Final = frozenset({"key", "auth", "pin", "ssn", "cvv", "cvc"})
#: Keys that contain a secret-looking part but are counters, not secrets.
_NOT_SECRET: Final = frozenset(
    {
        "tokens",
        "tokens_in",
        "tokens_out",
        "tokens_cached",
        "tokens_cache_write",
        "tokens_reasoning",
        "token_count",
        "max_tokens",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "token_usage",
        "key_count",
    }
)

# A local part starts at a token boundary and is at most 64 characters (RFC 5321), the domain at
# most 255: both bounds and the look-behind keep the scan linear.
_EMAIL = (
    r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z]))"
)
_CARD = r"(?P<card>(?<![0-9])(?:\d[ -]?){12,18}\d(?![0-9]))"

#: The credential formats recognised in any string, by the name that replaces them
#: (``[REDACTED:<name>]``). A pattern with a ``<name>_v`` group keeps what precedes that group
#: (``Bearer ``, ``password=``, ``postgres://user:``) so the text still reads.
CREDENTIAL_PATTERNS: Final[dict[str, str]] = {
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-) and the many keys shaped like them.
    "api_key": r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}",
    "jwt": r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    "bearer": r"(?<![A-Za-z0-9])[Bb][Ee][Aa][Rr][Ee][Rr][ \t]{1,8}(?P<bearer_v>[A-Za-z0-9._~+/-]{8,}=*)",
    "aws_access_key": r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![0-9A-Z])",
    "github_token": (
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"
    ),
    "gitlab_token": r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}",
    "slack_token": r"(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,}",
    "slack_webhook": r"hooks\.slack\.com/services/[A-Za-z0-9/]{20,}",
    "private_key": (
        r"-----BEGIN [A-Z ]{0,24}PRIVATE KEY-----[A-Za-z0-9+/=\s]{0,16384}"
        r"(?:-----END [A-Z ]{0,24}PRIVATE KEY-----)?"
    ),
    # scheme://user:password@host: the password goes, the rest stays.
    "url_password": (
        r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,19}://[^/\s:@]{0,256}:"
        r"(?P<url_password_v>[^/\s@]{1,256})@"
    ),
    # password=..., AWS_SECRET_ACCESS_KEY=..., api_key: ... in connection strings and env dumps.
    "assignment": (
        r"(?<![A-Za-z0-9])(?i:password|passwd|pwd|secret|secret_access_key|api_key|apikey"
        r"|access_token|auth_token|client_secret)[ \t]{0,4}[=:][ \t]{0,4}"
        r"(?P<assignment_v>[^\s;&,'\"]{4,256})"
    ),
}
_MEMO_LIMIT: Final = 8_192
_MEMO_MAX_LEN: Final = 256
#: The shortest text the card pattern can match (13 digits) and the shortest credential match
#: (``pwd=abcd``); shorter text without an ``@`` cannot match a built-in pattern, so it skips the
#: regex and the memo (tool arguments are often short and unique: remembering them would only
#: churn the memo).
_CARD_MIN_LEN: Final = 13
_CREDENTIAL_MIN_LEN: Final = 8
_MAX_DEPTH: Final = 32
#: Lower-case substrings one of which every credential pattern's match contains.
_CREDENTIAL_MARKERS: Final = (
    "sk-",
    "eyj",
    "bearer",
    "akia",
    "asia",
    "abia",
    "acca",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "hooks.slack.com",
    "private key",
    "://",
    "pass",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "token",
)
#: Credential patterns whose replacement keeps the label in front of the secret.
_KEEPS_PREFIX: Final = frozenset({"bearer", "url_password", "assignment"})


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Redactor:
    """Decides what to scrub once, then scrubs payloads cheaply.

    ``patterns`` maps a name to a regex for extra value patterns; ``emails``, ``cards`` and
    ``credentials`` switch the built-in ones. ``extra_keys`` adds key-name parts to treat as
    secrets; ``allow_keys`` names keys whose values are kept as written (an allow-list for fields
    such as a document id that looks like a card number).
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        extra_keys: Iterable[str] = (),
        emails: bool = True,
        cards: bool = True,
        credentials: bool = True,
        patterns: dict[str, str] | None = None,
        allow_keys: Iterable[str] = (),
    ) -> None:
        self.enabled = enabled
        self._key_parts = tuple(DEFAULT_SECRET_KEY_PARTS) + tuple(_normalise(k) for k in extra_keys)
        parts = []
        if emails:
            parts.append(_EMAIL)
        if cards:
            parts.append(_CARD)
        self._allow = frozenset(allow_keys)
        self._names: list[str] = []
        for name, rx in (patterns or {}).items():
            group = f"p_{len(self._names)}"
            self._names.append(name)
            parts.append(f"(?P<{group}>{rx})")
        self._value_rx = re.compile("|".join(parts)) if parts else None
        # Credentials are a second pass behind a substring prefilter: their alternatives cost
        # 4x the rest at every position, and almost no text holds any of their markers.
        self._cred_rx = (
            re.compile("|".join(f"(?P<{n}>{rx})" for n, rx in CREDENTIAL_PATTERNS.items()))
            if credentials
            else None
        )
        # Custom patterns can match anything: then every new string goes through the regex.
        floor = sys.maxsize
        if cards:
            floor = _CARD_MIN_LEN
        if credentials:
            floor = min(floor, _CREDENTIAL_MIN_LEN)
        self._plain_below = 0 if patterns else floor
        self._key_memo: dict[str, bool] = {}
        self._value_memo: dict[str, str | None] = {}
        self.redacted_count = 0

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are scrubbed whole."""
        verdict = self._key_memo.get(key)
        if verdict is None:
            norm = _normalise(key)
            verdict = norm not in _NOT_SECRET and (
                norm in _SECRET_EXACT or any(p in norm for p in self._key_parts)
            )
            if len(self._key_memo) < _MEMO_LIMIT:
                self._key_memo[key] = verdict
        return verdict

    def scrub_text(self, text: str) -> str:
        """``text`` with every pattern match replaced by ``[REDACTED:<name>]``."""
        rx = self._value_rx
        cred = self._cred_rx
        if (rx is None and cred is None) or (len(text) < self._plain_below and "@" not in text):
            return text
        short = len(text) <= _MEMO_MAX_LEN
        if short:
            memo = self._value_memo.get(text, text)
            if memo is None:
                return text
            if memo is not text:
                return memo
        result = text if rx is None else rx.sub(self._replace, text)
        if cred is not None:
            lowered = result.lower()
            if any(marker in lowered for marker in _CREDENTIAL_MARKERS):
                result = cred.sub(self._replace, result)
        if short:
            if len(self._value_memo) >= _MEMO_LIMIT:
                # Full: start again rather than stop remembering (unique arguments would
                # otherwise push every later string through the regex).
                self._value_memo.clear()
            self._value_memo[text] = None if result == text else result
        return result

    def _replace(self, m: re.Match[str]) -> str:
        kind = m.lastgroup or "value"
        if kind == "card":
            digits = re.sub(r"\D", "", m.group(0))
            if not _luhn_ok(digits):
                return m.group(0)
        elif kind.startswith("p_"):
            kind = self._names[int(kind[2:])]
        elif kind in _KEEPS_PREFIX:
            # Keep the label (``Bearer ``, ``password=``, ``scheme://user:``) and what follows.
            start = m.start(kind + "_v") - m.start()
            end = m.end(kind + "_v") - m.start()
            whole = m.group(0)
            return f"{whole[:start]}[REDACTED:{kind}]{whole[end:]}"
        return f"[REDACTED:{kind}]"

    def scrub(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with secrets scrubbed; the same object when nothing needed scrubbing."""
        if not self.enabled or not data:
            return data
        # Fast path: every key already judged harmless, every value a scalar or a short string
        # already judged clean. Most payloads repeat their keys and many their values.
        key_memo = self._key_memo
        value_memo = self._value_memo
        plain_below = self._plain_below
        for key, value in data.items():
            if key_memo.get(key, True):
                break
            cls = type(value)
            if cls is str:
                if value_memo.get(value, 0) is not None and (
                    len(value) >= plain_below or "@" in value
                ):
                    break
            elif not (value is None or cls is int or cls is float or cls is bool):
                break
        else:
            return data
        result = self._scrub_dict(data, 0)
        if result is not data:
            self.redacted_count += 1
        return result

    def _scrub_dict(self, data: dict[str, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for key, value in data.items():
            new = value
            if isinstance(key, str) and key in self._allow:
                continue
            if isinstance(key, str) and self.is_secret_key(key):
                if value is not None and value != REDACTED:
                    new = REDACTED
            else:
                new = self._scrub_value(value, depth)
            if new is not value:
                if out is None:
                    out = dict(data)
                out[key] = new
        return data if out is None else out

    def _scrub_value(self, value: Any, depth: int) -> Any:
        cls = type(value)
        if cls is str:
            return self.scrub_text(value)
        if value is None or cls is int or cls is float or cls is bool:
            return value
        if isinstance(value, str):
            # A str subclass (StrEnum, a user's marker type) is text too: scrub it as plain str.
            text = str.__str__(value)
            new_text = self.scrub_text(text)
            return value if new_text is text else new_text
        if isinstance(value, (dict, list, tuple, set, frozenset)) and depth >= _MAX_DEPTH:
            # Deeper than anything scanned: what cannot be looked at is not let through.
            return REDACTED_DEPTH
        if isinstance(value, dict):
            # Subclasses (OrderedDict, defaultdict) become plain dicts when anything changed.
            return self._scrub_dict(value if cls is dict else dict(value), depth + 1)
        if isinstance(value, (list, tuple)):
            out: list[Any] | None = None
            for i, item in enumerate(value):
                new = self._scrub_value(item, depth + 1)
                if new is not item:
                    if out is None:
                        out = list(value)
                    out[i] = new
            return value if out is None else out
        if isinstance(value, (set, frozenset)):
            items = list(value)
            scrubbed = [self._scrub_value(item, depth + 1) for item in items]
            if all(a is b for a, b in zip(items, scrubbed, strict=True)):
                return value
            return scrubbed
        return value


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_").replace(" ", "_")
