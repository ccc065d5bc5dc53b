"""The cost engine: every event with a model and tokens gets a cost, reported or computed.

Prices come from the ``pricing:`` section first (see :mod:`redline.pricing.config`), then from
`genai-prices <https://github.com/pydantic/genai-prices>`_ (pydantic's maintained table, shipped
as data inside the package: offline, and automatic updates are never started), installed with
``redline[prices]``. Cache-read and cache-write tokens are billed at their own prices and tiered
prices (a long-context tier above 200K input tokens) are honoured.

The table's own calculation costs ~90 µs, too much for ``record()``'s hot path. Below a model's
first tier its price is linear in the four token kinds, so the table is asked once per model for
the price of each kind alone and an event is priced with four multiplications; the rates are
refreshed hourly (prices with a start date take effect), and an event at or past a tier's start
goes to the table itself. A test holds the two to the same answer.

An unknown model leaves the cost unset: it is counted (``stats()["unpriced"]``) and logged once
with its name, never guessed.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from redline.pricing.config import ModelRates, PricingConfig, parse_pricing_config

__all__ = ["ModelRates", "PriceTable", "PricingConfig", "parse_pricing_config"]

log = logging.getLogger("redline.pricing")

#: How long the rates read from the table are trusted before they are read again.
RATES_TTL_SECONDS: Final = 3600.0
#: Unknown model names remembered (and logged) at most; beyond it they are only counted.
MAX_UNKNOWN: Final = 1000
_PROBE: Final = 1000  # tokens of each kind asked of the table (below every tier start)


class _Rates:
    """A model's price per token of each kind, valid below ``tier_start`` input tokens."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "input",
        "model",
        "output",
        "provider",
        "tier_start",
        "until",
    )

    def __init__(
        self,
        per_token: tuple[float, float, float, float],
        *,
        tier_start: float = math.inf,
        until: float = math.inf,
        model: Any = None,
        provider: Any = None,
    ) -> None:
        self.input, self.cache_read, self.cache_write, self.output = per_token
        self.tier_start = tier_start
        self.until = until
        self.model = model
        self.provider = provider


class PriceTable:
    """Prices model calls from their tokens; one per monitor, safe to share across threads."""

    def __init__(
        self, config: PricingConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        config = config if config is not None else PricingConfig()
        self._now = clock
        self._exact = {name: _Rates(r.per_token()) for name, r in config.models.items()}
        self._patterns = [
            (name, _Rates(r.per_token()))
            for name, r in config.models.items()
            if any(ch in name for ch in "*?[")
        ]
        self._snapshot: Any = None
        self._use_table = config.table == "genai-prices"
        self._table_error = ""
        self._memo: dict[tuple[str | None, str], _Rates | None] = {}
        self._lock = threading.Lock()
        self.unknown: dict[str, int] = {}
        self.unpriced = 0

    @property
    def has_table(self) -> bool:
        """Whether the genai-prices table is in use (the extra is installed and not turned off)."""
        return self._table() is not None

    def _table(self) -> Any:
        """The genai-prices snapshot, loaded on first use (~40 ms; never auto-updated)."""
        if self._snapshot is None and self._use_table:
            self._use_table = False
            try:
                from genai_prices import data_snapshot

                self._snapshot = data_snapshot.get_snapshot()
            except ImportError:
                self._table_error = "install redline[prices] for the genai-prices table"
        return self._snapshot

    # -- pricing --------------------------------------------------------------------------
    def cost(
        self,
        model: str,
        tokens_in: int | None,
        tokens_out: int | None,
        tokens_cached: int | None = None,
        tokens_cache_write: int | None = None,
        *,
        provider: str | None = None,
    ) -> float | None:
        """The cost in USD of a call, or ``None`` when ``model`` has no price (counted).

        Tokens follow the event convention: ``tokens_in`` includes the cached reads and the
        cache writes, ``tokens_out`` includes reasoning.
        """
        rates = self._rates(model, provider)
        if rates is None:
            self._note_unknown(model)
            return None
        total_in = tokens_in or 0
        read = tokens_cached or 0
        write = tokens_cache_write or 0
        out = tokens_out or 0
        if total_in >= rates.tier_start:
            return self._table_cost(rates, total_in, out, read, write)
        plain = max(total_in - read - write, 0)
        return (
            plain * rates.input
            + read * rates.cache_read
            + write * rates.cache_write
            + out * rates.output
        )

    def estimate(
        self, model: str, tokens_in: int | None, max_tokens_out: int | None
    ) -> float | None:
        """What a call may cost at most: ``tokens_in`` uncached plus ``max_tokens_out``."""
        return self.cost(model, tokens_in, max_tokens_out)

    def knows(self, model: str, provider: str | None = None) -> bool:
        """Whether ``model`` has a price (without counting it as unknown when it has none)."""
        return self._rates(model, provider) is not None

    # -- lookup ---------------------------------------------------------------------------
    def _rates(self, model: str, provider: str | None) -> _Rates | None:
        key = (provider, model)
        if key in self._memo:
            rates = self._memo[key]
            if rates is None or rates.until > self._now():
                return rates
        found = self._lookup(model, provider)
        with self._lock:
            if len(self._memo) > 10_000:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _lookup(self, model: str, provider: str | None) -> _Rates | None:
        own = self._exact.get(model)
        if own is not None:
            return own
        for pattern, rates in self._patterns:
            if fnmatch.fnmatchcase(model, pattern):
                return rates
        if self._table() is None:
            return None
        return self._from_table(model, provider)

    def _from_table(self, model: str, provider: str | None) -> _Rates | None:
        from datetime import UTC, datetime

        from genai_prices import Usage
        from genai_prices.types import TieredPrices

        try:
            prov, info = self._snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            if provider is None:
                return None
            try:  # a provider name the table spells differently: let it choose
                prov, info = self._snapshot.find_provider_model(model, None, None, None)
            except LookupError:
                return None
        now = self._now()
        at = datetime.fromtimestamp(now, tz=UTC)

        def per_token(**usage: int) -> float:
            calc = info.calc_price(Usage(**usage), prov, genai_request_timestamp=at)
            return float(calc.total_price) / _PROBE

        prices = info.get_prices(at)
        starts = [
            tier.start
            for value in vars(prices).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        ]
        return _Rates(
            (
                per_token(input_tokens=_PROBE),
                per_token(input_tokens=_PROBE, cache_read_tokens=_PROBE),
                per_token(input_tokens=_PROBE, cache_write_tokens=_PROBE),
                per_token(output_tokens=_PROBE),
            ),
            tier_start=float(min(starts)) if starts else math.inf,
            until=now + RATES_TTL_SECONDS,
            model=info,
            provider=prov,
        )

    def _table_cost(self, rates: _Rates, tokens_in: int, out: int, read: int, write: int) -> float:
        """Past a tier's start: the table's own calculation (rare: 200K-token prompts)."""
        from datetime import UTC, datetime

        from genai_prices import Usage

        usage = Usage(
            input_tokens=tokens_in,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=write,
        )
        at = datetime.fromtimestamp(self._now(), tz=UTC)
        calc = rates.model.calc_price(usage, rates.provider, genai_request_timestamp=at)
        return float(calc.total_price)

    def _note_unknown(self, model: str) -> None:
        self.unpriced += 1
        seen = self.unknown.get(model)
        if seen is not None:
            self.unknown[model] = seen + 1
            return
        if len(self.unknown) >= MAX_UNKNOWN:
            return
        self.unknown[model] = 1
        log.warning(
            "redline: no price for model %r: its calls are recorded without a cost (add it under "
            "pricing.models%s)",
            model,
            f"; {self._table_error}" if self._table_error else "",
        )
