"""Budgets (issue 14): reserved before the call, held under concurrency, across processes.

The races run real processes against one real SQLite file and one real PostgreSQL schema; the
periods run on a manual clock; the crash is a SIGKILL.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import PG_DSN
from redline import (
    AgentEvent,
    AgentKilledError,
    AgentStoppedError,
    BudgetExceededError,
    ConfigError,
    Monitor,
    load_config,
    parse_config,
)
from redline.testing import ManualClock

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def _monitor(
    budgets: list[dict[str, Any]], clock: ManualClock | None = None, **cfg: Any
) -> Monitor:
    return Monitor(parse_config({"budgets": budgets, **cfg}), clock=clock or ManualClock(NOW))


def _decisions(monitor: Monitor) -> list[str]:
    monitor.flush()
    return [s.event.data["decision"] for s in monitor.events(event_type="budget", order="asc")]


# -- configuration -------------------------------------------------------------------------


def test_every_problem_in_the_section_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "budgets:\n"
        "  - {name: a, limit_usd: -1, period: fortnight}\n"
        "  - {name: b, limit_usd: 5, scope: galaxy, timezone: Mars/Olympus}\n"
        "  - {name: a, limit_usd: 5, warn_at: [1.5], surprise: 1}\n"
        "  - {name: c, limit_usd: 5, scope: fleet, match: 'x-*'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    for needle in (
        "budgets[0] (a).limit_usd",
        "budgets[0] (a).period",
        "budgets[1]",
        "scope",
        "budgets[2]",
        "surprise",
        "budgets[3] (c).match",
    ):
        assert needle in text, (needle, text)
    assert str(path) in text


def test_a_valid_section_parses_with_its_defaults() -> None:
    [b] = parse_config({"budgets": [{"name": "x", "limit_usd": 2}]}).section("budgets")
    assert (b.scope, b.match, b.period, b.timezone, b.action) == (
        "agent",
        "*",
        "day",
        "UTC",
        "deny",
    )


# -- reservations --------------------------------------------------------------------------


def test_a_reservation_is_refused_when_spend_plus_holds_would_pass_the_limit() -> None:
    monitor = _monitor([{"name": "daily", "limit_usd": 1.0}])
    held = monitor.reserve("a", estimate_usd=0.6)
    with pytest.raises(BudgetExceededError) as caught:
        monitor.reserve("a", estimate_usd=0.5)
    err = caught.value
    assert isinstance(err, AgentStoppedError)  # one base for "Redline stopped this step"
    assert (err.budget, err.scope, err.key, err.limit) == ("daily", "agent", "a", 1.0)
    assert (err.spent, err.reserved, err.estimate) == (0.0, pytest.approx(0.6), 0.5)
    monitor.reserve("b", estimate_usd=0.9).release()  # each agent its own budget ("*")
    assert held.commit(0.25) == 0.25
    [state] = [s for s in monitor.budgets() if s.key == "a"]
    assert (state.spent_usd, state.reserved_usd) == (pytest.approx(0.25), 0.0)
    monitor.reserve("a", estimate_usd=0.75).release()  # what was held and not spent is free
    assert _decisions(monitor) == ["admit", "deny", "admit"]
    assert monitor.stats()["budget_denied"] == 1


def test_the_estimate_is_the_price_of_the_prompt_and_max_tokens() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 10}])
    expected = monitor.prices.estimate("gpt-4o", 1000, 500)
    assert expected is not None
    assert expected > 0
    res = monitor.reserve("a", model="gpt-4o", tokens_in=1000, max_tokens_out=500)
    assert res.estimate_usd == pytest.approx(expected)
    # Committed from the usage the call reported, priced the same way as a recorded event.
    spent = res.commit(model="gpt-4o", tokens_in=1000, tokens_out=20)
    assert spent == pytest.approx(monitor.prices.cost("gpt-4o", 1000, 20))


def test_a_context_manager_releases_unless_committed() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1}])
    with monitor.reserve("a", estimate_usd=0.9):
        pass
    with monitor.reserve("a", estimate_usd=0.9) as res:
        res.commit(0.5)
    [state] = monitor.budgets()
    assert (state.spent_usd, state.reserved_usd) == (pytest.approx(0.5), 0.0)


def test_an_event_carrying_the_reservation_is_not_counted_twice() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1}])
    res = monitor.reserve("a", estimate_usd=0.5)
    monitor.record(
        AgentEvent(
            timestamp=NOW,
            agent="a",
            event_type="llm_call",
            cost_usd=0.3,
            data={"reservation_id": res.id},
        )
    )
    assert res.commit() == pytest.approx(0.3)  # what its events cost, not the estimate
    monitor.record(AgentEvent(timestamp=NOW, agent="a", event_type="llm_call", cost_usd=0.2))
    monitor.run_duties()
    [state] = monitor.budgets()
    assert state.spent_usd == pytest.approx(0.5)


def test_recorded_costs_are_spend_and_check_stops_an_exhausted_deny_budget() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1, "scope": "session"}])
    monitor.check("a", "s1")
    for _ in range(4):
        monitor.record(
            AgentEvent(
                timestamp=NOW, agent="a", session_id="s1", event_type="llm_call", cost_usd=0.25
            )
        )
    monitor.run_duties()
    with pytest.raises(BudgetExceededError) as caught:
        monitor.check("a", "s1")
    assert (caught.value.scope, caught.value.key) == ("session", "s1")
    monitor.check("a", "s2")  # another session of the same agent runs on
    with pytest.raises(BudgetExceededError):
        monitor.reserve("a", session_id="s1")  # nothing left, even for a step of unknown cost


def test_guard_reserves_and_commits_what_the_block_recorded() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1}])
    with monitor.guard("a", estimate_usd=0.8):
        assert monitor.budgets()[0].reserved_usd == pytest.approx(0.8)
        monitor.record(AgentEvent(timestamp=NOW, agent="a", event_type="llm_call", cost_usd=0.1))
    [state] = monitor.budgets()
    assert (state.spent_usd, state.reserved_usd) == (pytest.approx(0.1), 0.0)
    with pytest.raises(BudgetExceededError), monitor.guard("a", estimate_usd=0.95):
        pytest.fail("the guarded block must not run")


def test_warn_at_crossings_and_exhaustion_alert_once() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1, "warn_at": [0.5, 0.8], "action": "alert"}])
    seen: list[str] = []
    monitor.on_alert(lambda alert: seen.append(alert.title))
    for _ in range(12):  # an alert budget never refuses: it alerts
        monitor.reserve("a", estimate_usd=0.1).commit()
    assert seen == [
        "Budget 'd' at 50%",
        "Budget 'd' at 80%",
        "Budget 'd' exhausted",
    ]
    monitor.check("a")
    assert _decisions(monitor).count("warn") == 2


def test_a_kill_agent_budget_kills_the_agent_that_ran_out() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1, "action": "kill_agent"}])
    monitor.reserve("a", estimate_usd=1.0).commit()
    with pytest.raises(AgentKilledError) as caught:
        monitor.check("a")
    assert "budget 'd' exhausted" in caught.value.reason
    assert caught.value.actor == "budget"
    monitor.check("b")


def test_ingest_cannot_forge_a_budget_decision() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1}])
    status, reasons = monitor.record_checked(
        {"agent": "a", "event_type": "budget", "data": {"decision": "admit"}}, untrusted=True
    )
    assert status == "rejected"
    assert "cannot be ingested" in reasons[0]


# -- periods -------------------------------------------------------------------------------


def test_a_daily_budget_rolls_over_at_midnight_in_its_time_zone() -> None:
    tz = ZoneInfo("America/New_York")
    evening = datetime(2026, 3, 10, 23, 59, 30, tzinfo=tz).timestamp()
    clock = ManualClock(evening)
    monitor = _monitor([{"name": "d", "limit_usd": 1, "timezone": "America/New_York"}], clock=clock)
    monitor.reserve("a", estimate_usd=1.0).commit()
    monitor.run_duties()
    with pytest.raises(BudgetExceededError):
        monitor.check("a")
    [state] = monitor.budgets()
    assert state.resets_at == datetime(2026, 3, 11, tzinfo=tz).timestamp()
    clock.advance(31)  # 00:00:01 in New York (05:00:01 UTC)
    monitor.run_duties()
    monitor.check("a")
    [state] = monitor.budgets()
    assert state.spent_usd == 0.0
    assert state.period_start == datetime(2026, 3, 11, tzinfo=tz).timestamp()
    assert "rollover" in _decisions(monitor)


def test_a_rolling_window_forgets_spend_older_than_its_length() -> None:
    clock = ManualClock(NOW)
    monitor = _monitor([{"name": "r", "limit_usd": 1, "period": 600}], clock=clock)
    monitor.reserve("a", estimate_usd=0.7).commit()
    clock.advance(300)
    monitor.reserve("a", estimate_usd=0.3).commit()
    with pytest.raises(BudgetExceededError):
        monitor.reserve("a", estimate_usd=0.1)
    clock.advance(301)  # the first 0.7 is now more than 600 s old
    assert monitor.budgets()[0].spent_usd == pytest.approx(0.3)
    monitor.reserve("a", estimate_usd=0.7).release()


def test_an_abandoned_reservation_expires_after_its_ttl() -> None:
    clock = ManualClock(NOW)
    monitor = _monitor([{"name": "d", "limit_usd": 1}], clock=clock)
    monitor.reserve("a", estimate_usd=1.0, ttl_seconds=30)  # never settled
    with pytest.raises(BudgetExceededError):
        monitor.reserve("a", estimate_usd=0.5)
    clock.advance(31)
    monitor.reserve("a", estimate_usd=0.5).commit()


# -- across processes ----------------------------------------------------------------------

RACER = """
import sys, threading
from redline import Monitor, parse_config, BudgetExceededError
storage, agents = sys.argv[1], sys.argv[2].split(",")
monitor = Monitor(parse_config({
    "storage": __import__("json").loads(storage),
    "budgets": [{"name": "pool", "limit_usd": 1.0, "scope": sys.argv[3]}],
}))
admitted = []
def run(agent):
    go.wait()
    try:
        monitor.reserve(agent, tenant="acme", estimate_usd=0.05).commit(0.05)
        admitted.append(agent)
    except BudgetExceededError:
        pass
go = threading.Event()
threads = [threading.Thread(target=run, args=(agents[i % len(agents)],)) for i in range(4)]
for t in threads: t.start()
print("ready", flush=True)
sys.stdin.readline()
go.set()
for t in threads: t.join()
monitor.close()
print("admitted", len(admitted), flush=True)
"""


def _race(spawn: Any, storage: dict[str, Any], scope: str, agents: list[str]) -> int:
    children = [
        spawn(RACER, json.dumps(storage), ",".join(agents[i::2] or agents), scope) for i in range(6)
    ]
    for child in children:
        child.expect("ready", timeout=60)
    for child in children:
        child.send("go")
    total = 0
    for child in children:
        total += int(child.expect("admitted", timeout=120).split()[1])
        child.wait()
    return total


def _spent(storage: dict[str, Any], scope: str) -> list[Any]:
    budgets = [{"name": "pool", "limit_usd": 1.0, "scope": scope}]
    with Monitor(parse_config({"storage": storage, "budgets": budgets})) as monitor:
        return monitor.budgets()


@pytest.mark.parametrize("scope", ["fleet", "tenant"])
def test_racing_processes_on_sqlite_never_overspend(spawn: Any, tmp_path: Path, scope: str) -> None:
    storage = {"path": str(tmp_path / "events.db")}
    agents = ["sales", "support", "billing"] if scope == "tenant" else ["a"]
    assert _race(spawn, storage, scope, agents) == 20
    [state] = _spent(storage, scope)
    assert state.spent_usd == pytest.approx(1.0, abs=1e-9)
    assert state.reserved_usd == 0.0


@pytest.mark.parametrize("scope", ["fleet", "tenant"])
def test_racing_processes_on_postgresql_never_overspend(
    spawn: Any, pg_schema: str, scope: str
) -> None:
    storage = {"backend": "postgres", "dsn": PG_DSN, "schema": pg_schema}
    agents = ["sales", "support", "billing"] if scope == "tenant" else ["a"]
    assert _race(spawn, storage, scope, agents) == 20
    [state] = _spent(storage, scope)
    assert state.spent_usd == pytest.approx(1.0, abs=1e-9)
    assert state.reserved_usd == 0.0


HOLDER = """
import sys, json
from redline import Monitor, parse_config
monitor = Monitor(parse_config({
    "storage": json.loads(sys.argv[1]),
    "budgets": [{"name": "d", "limit_usd": 1.0}],
}))
res = monitor.reserve("a", estimate_usd=0.9, ttl_seconds=60)
print("held", res.id, flush=True)
sys.stdin.readline()
"""


def test_a_sigkilled_holder_frees_its_reservation_after_the_ttl(spawn: Any, tmp_path: Path) -> None:
    storage = {"path": str(tmp_path / "events.db")}
    child = spawn(HOLDER, json.dumps(storage))
    child.expect("held")
    child.kill()
    budgets = [{"name": "d", "limit_usd": 1.0}]
    clock = ManualClock(time.time())
    with Monitor(parse_config({"storage": storage, "budgets": budgets}), clock=clock) as monitor:
        assert monitor.budgets()[0].reserved_usd == pytest.approx(0.9)
        with pytest.raises(BudgetExceededError):
            monitor.reserve("a", estimate_usd=0.5)
        clock.advance(61)
        assert monitor.budgets() == []  # nothing spent, nothing held: no key to show
        monitor.reserve("a", estimate_usd=0.5).commit()


def test_spend_survives_a_restart(tmp_path: Path) -> None:
    config = {"storage": {"path": str(tmp_path / "events.db")}, "budgets": [
        {"name": "d", "limit_usd": 1.0, "warn_at": [0.5]}]}  # fmt: skip
    with Monitor(parse_config(config)) as first:
        first.reserve("a", estimate_usd=0.5).commit(0.6)
        first.record(AgentEvent(agent="a", event_type="llm_call", cost_usd=0.3))
    with Monitor(parse_config(config)) as second:
        [state] = second.budgets()
        assert state.spent_usd == pytest.approx(0.9)
        with pytest.raises(BudgetExceededError):
            second.reserve("a", estimate_usd=0.2)
        decisions = _decisions(second)
        assert decisions[:2] == ["admit", "warn"]  # the records were stored, chained


def test_threads_in_one_process_share_one_limit() -> None:
    monitor = _monitor([{"name": "d", "limit_usd": 1.0, "scope": "fleet"}])
    admitted: list[int] = []
    go = threading.Barrier(16)

    def run(i: int) -> None:
        go.wait()
        for _ in range(5):
            try:
                monitor.reserve(f"agent-{i}", estimate_usd=0.01).commit()
                admitted.append(i)
            except BudgetExceededError:
                pass

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 80
    monitor.reserve("x", estimate_usd=0.2).commit()
    with pytest.raises(BudgetExceededError):
        monitor.reserve("x", estimate_usd=0.01)


# -- visible -------------------------------------------------------------------------------


def _seeded(tmp_path: Path) -> Path:
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"storage:\n  path: {tmp_path / 'events.db'}\n"
        "budgets:\n"
        "  - {name: sales-daily, scope: agent, match: 'sales-*', limit_usd: 5.0}\n"
        "  - {name: fleet, scope: fleet, limit_usd: 100, period: 3600}\n",
        encoding="utf-8",
    )
    with Monitor(load_config(config)) as monitor:
        monitor.reserve("sales-eu", estimate_usd=1.0).commit(1.25)
        monitor.reserve("sales-us", estimate_usd=0.5, ttl_seconds=600)  # still held
        monitor.reserve("support", estimate_usd=0.5).commit(0.5)
    return config


def test_redline_budgets_prints_every_key_from_the_store(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = _seeded(tmp_path)
    cmd = [sys.executable, "-m", "redline.cli", "-c", str(config), "budgets"]
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    rows = {(r["name"], r["key"]): r for r in json.loads(done.stdout)["budgets"]}
    assert set(rows) == {("fleet", "*"), ("sales-daily", "sales-eu"), ("sales-daily", "sales-us")}
    assert rows[("sales-daily", "sales-eu")]["spent_usd"] == pytest.approx(1.25)
    assert rows[("sales-daily", "sales-us")]["reserved_usd"] == pytest.approx(0.5)
    assert rows[("fleet", "*")]["spent_usd"] == pytest.approx(1.75)
    table = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "160"}
    )
    assert "sales-eu" in table.stdout
    assert "$1.2500" in table.stdout
    unknown = subprocess.run([*cmd, "--name", "nope"], capture_output=True, text=True, check=False)
    assert unknown.returncode != 0
    assert "sales-daily" in unknown.stderr


def test_get_v1_budgets_serves_the_state_to_a_reader(tmp_path: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

    config = _seeded(tmp_path)
    monitor = Monitor(load_config(config))
    read = "read-token-0123456789abcdef"
    app = create_app(
        monitor,
        ServerConfig(port=0, tokens=[TokenConfig(name="dash", role="read", token=read)]),
        admin_token="",
    )
    server = RedlineServer(app, port=0).start()
    try:
        assert httpx.get(f"{server.url}/v1/budgets").status_code == 401
        got = httpx.get(f"{server.url}/v1/budgets", headers={"Authorization": f"Bearer {read}"})
        assert got.status_code == 200
        rows = {(r["name"], r["key"]): r for r in got.json()["budgets"]}
        assert rows[("sales-daily", "sales-eu")]["remaining_usd"] == pytest.approx(3.75)
        assert rows[("fleet", "*")]["limit_usd"] == 100
    finally:
        server.stop()
        monitor.close()


def test_prometheus_exports_spent_reserved_and_limit_per_budget(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    import shutil
    import subprocess

    from prometheus_client.parser import text_string_to_metric_families

    from redline.export.prometheus import RedlineCollector

    with Monitor(load_config(_seeded(tmp_path))) as monitor:
        body, _ = RedlineCollector(monitor).generate()
    samples = {
        (s.name, s.labels.get("budget"), s.labels.get("key")): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }
    assert samples[("redline_budget_spent_usd", "sales-daily", "sales-eu")] == pytest.approx(1.25)
    assert samples[("redline_budget_reserved_usd", "sales-daily", "sales-us")] == 0.5
    assert samples[("redline_budget_limit_usd", "fleet", "*")] == 100
    promtool = shutil.which("promtool")
    if promtool is not None:
        lint = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, check=False
        )
        assert lint.returncode == 0, lint.stderr.decode()
