"""The cost engine (issue 14): an event with a model and tokens but no cost is priced from them.

The expected prices are the genai-prices table's own calculation, so these tests hold Redline's
fast linear path (and its fallback past a tier) to the table, not to numbers copied by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from redline import AgentEvent, ConfigError, Monitor, load_config, parse_config
from redline.pricing import PriceTable, PricingConfig

genai_prices = pytest.importorskip("genai_prices")

NOW = 1_780_000_000.0


def _table_price(model: str, tin: int, tout: int, read: int = 0, write: int = 0) -> float:
    usage = genai_prices.Usage(
        input_tokens=tin, output_tokens=tout, cache_read_tokens=read, cache_write_tokens=write
    )
    return float(genai_prices.calc_price(usage, model).total_price)


@pytest.mark.parametrize(
    ("model", "tokens"),
    [
        ("gpt-4o", (1_000, 500, 200, 0)),  # OpenAI, with cached input
        ("claude-sonnet-4-5", (12_000, 800, 6_000, 2_000)),  # Anthropic: cache read and write
        ("gemini-2.5-pro", (3_000, 1_200, 1_000, 0)),  # Google
        ("gemini-2.5-pro", (250_000, 1_200, 10_000, 0)),  # past the 200K long-context tier
        ("claude-sonnet-4-5", (210_000, 100, 0, 50_000)),
    ],
)
def test_a_computed_cost_is_the_tables_own(model: str, tokens: tuple[int, int, int, int]) -> None:
    monitor = Monitor()
    tin, tout, read, write = tokens
    monitor.record(
        AgentEvent(
            agent="a",
            event_type="llm_call",
            model=model,
            tokens_in=tin,
            tokens_out=tout,
            tokens_cached=read,
            tokens_cache_write=write,
        )
    )
    [stored] = [s.event for s in monitor.events(agent="a")]
    assert stored.cost_usd == pytest.approx(_table_price(model, *tokens), rel=1e-9)
    assert stored.cost_estimated is True
    snap = monitor.get_metrics("a")
    assert snap.cost_total == pytest.approx(_table_price(model, *tokens), rel=1e-9)


def test_a_reported_cost_is_kept_and_not_marked() -> None:
    monitor = Monitor()
    monitor.record(AgentEvent(agent="a", model="gpt-4o", tokens_in=10, tokens_out=10, cost_usd=0.5))
    [stored] = [s.event for s in monitor.events(agent="a")]
    assert (stored.cost_usd, stored.cost_estimated) == (0.5, None)


def test_a_yaml_price_wins_over_the_table_and_wildcards_match(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "pricing:\n"
        "  models:\n"
        "    gpt-4o: {input: 1.0, output: 2.0, cache_read: 0.5}\n"
        '    "ft:acme-*": {input: 10.0, output: 20.0}\n',
        encoding="utf-8",
    )
    monitor = Monitor(load_config(path))
    monitor.record(AgentEvent(agent="a", model="gpt-4o", tokens_in=1_000_000, tokens_out=1_000_000,
                              tokens_cached=500_000))  # fmt: skip
    monitor.record(AgentEvent(agent="b", model="ft:acme-v2", tokens_in=100_000, tokens_out=0))
    [a] = [s.event for s in monitor.events(agent="a")]
    [b] = [s.event for s in monitor.events(agent="b")]
    assert a.cost_usd == pytest.approx(0.5 * 1.0 + 0.5 * 0.5 + 2.0)
    assert b.cost_usd == pytest.approx(1.0)  # cache prices default to the input price


def test_the_pricing_section_works_without_the_table() -> None:
    table = PriceTable(
        parse_config(
            {"pricing": {"table": "none", "models": {"m": {"input": 3, "output": 15}}}}
        ).section("pricing")
    )
    assert table.cost("m", 1_000_000, 0) == pytest.approx(3.0)
    assert table.cost("gpt-4o", 1_000, 0) is None  # the table is off: only the file's models
    assert not table.has_table


def test_an_unknown_model_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    monitor = Monitor()
    with caplog.at_level(logging.WARNING, logger="redline.pricing"):
        for _ in range(3):
            monitor.record(AgentEvent(agent="a", model="acme-llm-9000", tokens_in=5, tokens_out=5))
    events = [s.event for s in monitor.events(agent="a")]
    assert [e.cost_usd for e in events] == [None, None, None]
    stats = monitor.stats()
    assert stats["unpriced"] == 3
    assert stats["unpriced_models"] == {"acme-llm-9000": 3}
    logged = [r.getMessage() for r in caplog.records if "acme-llm-9000" in r.getMessage()]
    assert len(logged) == 1


def test_events_without_tokens_are_not_priced() -> None:
    monitor = Monitor()
    monitor.record(AgentEvent(agent="a", model="gpt-4o"))
    [stored] = [s.event for s in monitor.events(agent="a")]
    assert stored.cost_usd is None
    assert monitor.stats()["unpriced"] == 0


def test_every_pricing_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "pricing:\n"
        "  table: genai\n"
        "  models:\n"
        "    a: {input: -1, output: 2}\n"
        "    b: {input: 1, outptu: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "pricing.table" in text
    assert "pricing.models.a.input" in text
    assert "outptu" in text
    assert str(path) in text


def test_the_estimate_prices_the_prompt_and_the_output_limit() -> None:
    table = PriceTable(PricingConfig())
    assert table.estimate("gpt-4o", 1_000, 500) == pytest.approx(_table_price("gpt-4o", 1_000, 500))
