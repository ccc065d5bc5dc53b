"""The ``pricing:`` section: prices a file adds or overrides, in USD per million tokens.

::

    pricing:
      table: genai-prices        # or "none": only the models below are priced
      models:
        my-finetune: {input: 3.0, output: 12.0, cache_read: 0.3, cache_write: 3.75}
        "ft:gpt-4o*": {input: 3.75, output: 15.0}   # a wildcard over model names

An entry here wins over the table. ``cache_read`` and ``cache_write`` default to ``input`` (a
provider without a cache discount bills cached tokens as input); ``reasoning`` tokens are output
tokens and bill at ``output``. The section needs no extra: a file that lists every model it
uses prices them without ``redline[prices]`` installed.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import msgspec

from redline.config.errors import convert_reporting_all
from redline.exceptions import ConfigError

__all__ = ["ModelRates", "PricingConfig", "parse_pricing_config"]

_PER_TOKEN: Final = 1e-6


class ModelRates(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One model's prices in USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def per_token(self) -> tuple[float, float, float, float]:
        """``(input, cache_read, cache_write, output)`` in USD per token."""
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_write is None else self.cache_write
        return (
            self.input * _PER_TOKEN,
            read * _PER_TOKEN,
            write * _PER_TOKEN,
            self.output * _PER_TOKEN,
        )


class PricingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where prices come from: the ``models`` here first, then the table."""

    table: Literal["genai-prices", "none"] = "genai-prices"
    models: dict[str, ModelRates] = msgspec.field(default_factory=dict)


def parse_pricing_config(raw: Any, *, source: str) -> PricingConfig:
    """The section as a :class:`PricingConfig`, with every problem reported at once.

    Each model is converted on its own so a problem is located by the model's name (msgspec
    reports a mapping's entries as ``[...]``) and one bad entry does not hide another's.
    """
    if raw is None:
        return PricingConfig()
    errors: list[str] = []
    models_raw: Any = {}
    if isinstance(raw, dict):
        raw = dict(raw)
        models_raw = raw.pop("models", None) or {}
    base = _convert_or_none(raw, PricingConfig, source, errors, "pricing")
    models: dict[str, ModelRates] = {}
    if not isinstance(models_raw, dict):
        errors.append(f"{source}: pricing.models: expected a mapping of model name to prices")
        models_raw = {}
    for name, entry in models_raw.items():
        where = f"pricing.models.{name}"
        rates = _convert_or_none(entry, ModelRates, source, errors, where)
        if rates is None:
            continue
        for field in ("input", "output", "cache_read", "cache_write"):
            value = getattr(rates, field)
            if value is not None and (not math.isfinite(value) or value < 0):
                errors.append(
                    f"{source}: {where}.{field}: expected a price in USD per million tokens "
                    f"(a number >= 0), got {value!r}"
                )
        models[str(name)] = rates
    if errors or base is None:
        raise ConfigError(errors, file=source)
    return PricingConfig(table=base.table, models=models)


def _convert_or_none(raw: Any, typ: type[Any], source: str, errors: list[str], prefix: str) -> Any:
    try:
        return convert_reporting_all(raw, typ, source=source, errors=errors, prefix=prefix)
    except ConfigError:
        return None  # its problems are in ``errors``
