"""Specification of the ``redline`` command line, run as users run it: a real process on a real store.

Every test starts ``python -m redline.cli`` (the same ``main()`` as the installed ``redline``
script) against a SQLite file that a :class:`~redline.Monitor` in the test filled first. Exit codes
are part of the contract: 0 ok, 1 a problem found (broken chain, killed agent), 2 usage, config or
store error.
"""

from __future__ import annotations

import json
import os
import selectors
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import pytest

from redline import AgentEvent, Monitor, load_config
from redline.metrics.rebuild import rebuild_snapshots
from redline.store.memory import MemoryStore

REDLINE = [sys.executable, "-m", "redline.cli"]
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("REDLINE_CONFIG", "COLUMNS")},
    "USER": "tester",
    "PYTHONUNBUFFERED": "1",
}

SEED_000_YAML = """\
# monitor.yaml
version: "1.0"
metadata:
  name: my-monitor
  description: Production agent monitoring

metrics:
  default_window_seconds: 300

kill_switch:
  enabled: true
  policies:
    - name: auto-kill-on-high-cost
      metric: cost_per_minute
      operator: ">"
      threshold: 5.0
      action: kill_agent
      severity: critical

alerts:
  channels:
    - type: console
"""


def run(cwd: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``redline ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [*REDLINE, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def seed(config: Path, events: Iterable[AgentEvent]) -> None:
    """Record ``events`` with a monitor on the config's store, and close it (all durable)."""
    with Monitor(load_config(config)) as monitor:
        for event in events:
            monitor.record(event)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose store is ``events.db`` in the test's temp dir."""
    path = tmp_path / "monitor.yaml"
    path.write_text(
        f'version: "1.0"\nstorage:\n  path: {tmp_path / "events.db"}\n'
        "metrics:\n  default_window_seconds: 300\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def redline(config: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``redline(*args)``: run ``redline -c monitor.yaml ARGS`` next to the config."""

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run(config.parent, "-c", str(config), *args)

    return call


@pytest.fixture
def sales(config: Path) -> float:
    """Four ``sales-agent`` events and one ``ops-agent`` error in the last minute; returns now."""
    now = time.time()
    seed(
        config,
        [
            AgentEvent(timestamp=now - 50, agent="sales-agent", session_id="s-1", cost_usd=0.5,
                       latency_ms=100.0, tool="search"),
            AgentEvent(timestamp=now - 40, agent="sales-agent", session_id="s-1", cost_usd=0.5,
                       latency_ms=200.0, tool="search"),
            AgentEvent(timestamp=now - 30, agent="sales-agent", session_id="s-2", cost_usd=0.5,
                       latency_ms=300.0, model="gpt-4"),
            AgentEvent(timestamp=now - 20, agent="sales-agent", event_type="denial",
                       session_id="s-2", data={"rule": "block-injection"}),
            AgentEvent(timestamp=now - 10, agent="ops-agent", event_type="error",
                       data={"error_type": "TimeoutError"}),
        ],
    )
    return now


def readline(stream: IO[str], timeout: float) -> str:
    """One line from a child's pipe, or ``""`` once ``timeout`` seconds have passed."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return stream.readline()


# --- validate and inspect -----------------------------------------------------------------


def test_validate_prints_ok_with_what_the_file_holds(tmp_path: Path) -> None:
    """``validate`` prints ``OK: <file> (N policies, M rules, K channels)`` and exits 0."""
    (tmp_path / "monitor.yaml").write_text(SEED_000_YAML, encoding="utf-8")
    result = run(tmp_path, "-c", "monitor.yaml", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK: monitor.yaml (1 policy, 0 rules, 1 channel)"


def test_validate_bad_config_exits_2_naming_the_key_path(tmp_path: Path) -> None:
    """A wrong value exits 2 with the file, the key path and what was expected."""
    bad = SEED_000_YAML.replace("threshold: 5.0", "threshold: high")
    (tmp_path / "monitor.yaml").write_text(bad, encoding="utf-8")
    result = run(tmp_path, "-c", "monitor.yaml", "validate")
    assert result.returncode == 2
    assert "monitor.yaml: kill_switch.policies[0].threshold: expected a number" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """``-c`` naming a file that does not exist is a usage error, not a traceback."""
    result = run(tmp_path, "-c", "nope.yaml", "status")
    assert result.returncode == 2
    assert "config file not found: nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_states_policies_in_words(redline: Any, config: Path) -> None:
    """``inspect`` says what each kill policy does: action, metric, operator, threshold, window."""
    config.write_text(
        config.read_text()
        + "kill_switch:\n  policies:\n"
        + "    - {name: cost, metric: cost_per_minute, operator: '>', threshold: 5.0}\n",
        encoding="utf-8",
    )
    result = redline("inspect")
    assert result.returncode == 0, result.stderr
    assert "kill agent when cost_per_minute > 5 over 300 s" in result.stdout
    assert "sqlite at" in result.stdout


def test_inspect_masks_secrets(redline: Any, config: Path) -> None:
    """Webhook URL secrets, header tokens, HMAC secrets and routing keys are never printed."""
    config.write_text(
        config.read_text()
        + "alerts:\n  channels:\n"
        + "    - type: webhook\n      name: ops\n"
        + "      url: https://hooks.example.com/notify/T0SECRETPATH?token=SECRETQUERY\n"
        + "      headers: {Authorization: Bearer SECRETTOKEN}\n"
        + "      secret: SECRETHMAC\n"
        + "    - type: pagerduty\n      routing_key: SECRETROUTING\n",
        encoding="utf-8",
    )
    for args in (("inspect",), ("inspect", "--json")):
        result = redline(*args)
        assert result.returncode == 0, result.stderr
        assert "hooks.example.com" in result.stdout
        assert "SECRET" not in result.stdout
    assert "token=***" in redline("inspect").stdout


# --- seed 000's command lines -------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "validate",
        "inspect",
        "status --agent sales-agent",
        "events --agent sales-agent --type action",
        'kill sales-agent --reason "Cost spike"',
        "revive sales-agent",
    ],
)
def test_seed_000_cli_lines_work_as_written(tmp_path: Path, line: str) -> None:
    """``agent-monitor -c monitor.yaml ...`` from seed 000 works as ``redline -c monitor.yaml ...``."""
    import shlex

    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(SEED_000_YAML + f"\nstorage:\n  path: {tmp_path / 'events.db'}\n", "utf-8")
    seed(cfg, [AgentEvent(agent="sales-agent", cost_usd=0.007, latency_ms=350.0,
                          data={"model": "gpt-4"})])
    result = run(tmp_path, "-c", "monitor.yaml", *shlex.split(line))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_seed_000_config_as_written_persists_a_cli_kill_beside_itself(tmp_path: Path) -> None:
    """With seed 000's YAML unchanged, a CLI kill lands in ``.redline/events.db`` beside it."""
    config = tmp_path / "monitor.yaml"
    config.write_text(SEED_000_YAML, encoding="utf-8")
    result = run(tmp_path, "-c", "monitor.yaml", "kill", "sales-agent", "--reason", "x")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".redline" / "events.db").exists()
    with Monitor(load_config(config)) as monitor:
        assert monitor.is_killed("sales-agent")


# --- kill, revive, check ------------------------------------------------------------------


def test_check_exit_code_follows_kill_and_revive(redline: Any, sales: float) -> None:
    """``check`` exits 1 while the agent is killed (printing scope, target, reason), 0 after."""
    assert redline("check", "sales-agent").returncode == 0
    killed = redline("kill", "sales-agent", "--reason", "Cost spike")
    assert killed.returncode == 0, killed.stderr
    assert "Killed agent 'sales-agent'" in killed.stdout
    check = redline("check", "sales-agent")
    assert check.returncode == 1
    assert "scope agent" in check.stdout
    assert "'sales-agent'" in check.stdout
    assert "Cost spike" in check.stdout
    assert redline("revive", "sales-agent").returncode == 0
    assert redline("check", "sales-agent").returncode == 0


def test_cli_kill_is_seen_by_a_monitor_opened_afterwards(
    redline: Any, config: Path, sales: float
) -> None:
    """A CLI kill is state in the store (every monitor obeys it) and a ``kill`` event."""
    assert redline("kill", "sales-agent", "--reason", "Cost spike").returncode == 0
    with Monitor(load_config(config)) as monitor:
        assert monitor.is_killed("sales-agent")
        assert not monitor.is_killed("ops-agent")
        kills = monitor.get_events(event_type="kill")
    assert len(kills) == 1
    assert kills[0]["data"]["actor"] == "cli:tester"
    assert kills[0]["data"]["reason"] == "Cost spike"


def test_kill_global_without_agent_stops_every_agent(redline: Any, sales: float) -> None:
    """``kill --global --reason x`` stops agents it never named."""
    assert redline("kill", "--global", "--reason", "incident").returncode == 0
    check = redline("check", "some-other-agent", "--json")
    assert check.returncode == 1
    assert json.loads(check.stdout)["kill"]["scope"] == "global"


def test_kill_session_stops_only_that_session(redline: Any, sales: float) -> None:
    """``kill AGENT --session SID`` stops the session; the agent's other sessions run."""
    assert redline("kill", "sales-agent", "--session", "s-1", "--reason", "x").returncode == 0
    assert redline("check", "sales-agent", "--session", "s-1").returncode == 1
    assert redline("check", "sales-agent", "--session", "s-2").returncode == 0


def test_kill_without_a_target_exits_2(redline: Any, sales: float) -> None:
    """``kill`` with no AGENT, --session or --global is a usage error."""
    result = redline("kill", "--reason", "x")
    assert result.returncode == 2
    assert "--global" in result.stderr


# --- verify -------------------------------------------------------------------------------


def test_verify_ok_on_an_intact_store(redline: Any, sales: float) -> None:
    """An untouched store verifies: exit 0 and ``OK: N events, K checkpoints, A anchors``."""
    result = redline("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 5 events, 1 checkpoint, 0 anchors")


def test_verify_finds_an_edited_payload(redline: Any, config: Path, sales: float) -> None:
    """A payload changed behind Redline's back: exit 1, damage ``edited`` at its seq."""
    db = sqlite3.connect(config.parent / "events.db")
    with db:
        payload = db.execute("SELECT payload FROM events WHERE seq = 2").fetchone()[0]
        db.execute(
            "UPDATE events SET payload = ? WHERE seq = 2", (payload.replace(b"0.5", b"0.1"),)
        )
    db.close()
    result = redline("verify")
    assert result.returncode == 1
    assert "first bad seq 2" in result.stdout
    assert "edited" in result.stdout
    report = json.loads(redline("verify", "--json").stdout)
    assert (report["ok"], report["first_bad_seq"], report["damage"]) == (False, 2, "edited")


# --- events, tail, replay -----------------------------------------------------------------


def test_events_json_lines_parse_with_seq(redline: Any, sales: float) -> None:
    """``events --json`` prints one JSON object per line, each with its ``seq``, filters applied."""
    result = redline("events", "--agent", "sales-agent", "--type", "action", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [3, 2, 1]
    assert {r["agent"] for r in rows} == {"sales-agent"}


def test_events_since_accepts_an_age_and_an_iso_offset(redline: Any, sales: float) -> None:
    """``--since 35s`` and the same instant as ISO 8601 with a +01:00 offset select alike."""
    from datetime import datetime, timedelta, timezone

    at = datetime.fromtimestamp(sales - 35, tz=timezone(timedelta(hours=1))).isoformat()
    by_age = redline("events", "--since", "35s", "--json").stdout.splitlines()
    by_iso = redline("events", "--since", at, "--json").stdout.splitlines()
    assert len(by_iso) == 3
    assert len(by_age) == 3


def test_events_bad_since_exits_2_with_the_accepted_forms(redline: Any, sales: float) -> None:
    """An unreadable ``--since`` exits 2 and lists ISO 8601, epoch seconds and ages."""
    result = redline("events", "--since", "yesterday-ish")
    assert result.returncode == 2
    assert "--since" in result.stderr
    assert "use ISO 8601 (2026-11-21T10:00:00+01:00), epoch seconds, or an age" in result.stderr


def test_tail_prints_the_last_n_oldest_first(redline: Any, sales: float) -> None:
    """``tail -n 2`` prints the two newest events, the older first."""
    result = redline("tail", "-n", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [4, 5]


def test_tail_follow_picks_up_an_event_written_after_it_started(
    config: Path, sales: float
) -> None:
    """``tail -f`` prints an event committed by another process after it began following."""
    proc = subprocess.Popen(
        [*REDLINE, "-c", str(config), "tail", "-f", "-n", "0", "--json",
         "--max-events", "1", "--timeout", "10"],
        cwd=config.parent,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert "following" in readline(proc.stderr, 15)
        seed(config, [AgentEvent(agent="late-agent", event_type="tool_call", tool="lookup")])
        line = readline(proc.stdout, 15)
        assert json.loads(line)["agent"] == "late-agent"
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=15)


def test_replay_prints_a_session_in_time_order(redline: Any, config: Path) -> None:
    """``replay SID`` prints the session's events by time, whatever order they were written in."""
    now = time.time()
    seed(
        config,
        [
            AgentEvent(timestamp=now - 1, agent="a", session_id="s-9", tool="third"),
            AgentEvent(timestamp=now - 3, agent="a", session_id="s-9", tool="first"),
            AgentEvent(timestamp=now - 2, agent="a", session_id="s-9", tool="second"),
            AgentEvent(timestamp=now - 2, agent="a", session_id="other", tool="elsewhere"),
        ],
    )
    result = redline("replay", "s-9")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split()[3] for line in lines] == ["first", "second", "third"]
    assert lines[0].split()[0].endswith("Z")


# --- status -------------------------------------------------------------------------------


def test_status_json_matches_what_was_recorded(redline: Any, config: Path, sales: float) -> None:
    """``status --json`` rebuilds counts and rates from the store: cost/min = cost ÷ window min."""
    seed(config, [AgentEvent(timestamp=sales - 1000, agent="sales-agent", cost_usd=9.0)])
    result = redline("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["window_seconds"] == 300
    agents = {a["agent"]: a for a in status["agents"]}
    sales_agent = agents["sales-agent"]
    assert sales_agent["event_count"] == 4
    assert sales_agent["cost_per_minute"] == pytest.approx(1.5 / 5)
    assert sales_agent["denial_rate"] == pytest.approx(0.25)
    assert sales_agent["state"] == "running"
    assert agents["ops-agent"]["error_rate"] == pytest.approx(1.0)
    assert status["store"]["events"] == 6
    assert status["kills"] == []


def test_status_shows_a_killed_agent_with_reason_and_actor(redline: Any, sales: float) -> None:
    """A killed agent's row says KILLED with the reason and who did it; kills and alerts listed."""
    assert redline("kill", "sales-agent", "--reason", "Cost spike").returncode == 0
    result = redline("status")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "sales-agent" in line)
    assert "KILLED" in row
    kills = result.stdout.split("Active kills", 1)[1]
    assert "agent sales-agent: KILLED since" in kills
    assert "by cli:tester: Cost spike" in kills
    assert "Killed agent 'sales-agent'" in result.stdout  # the kill's alert, under recent alerts


@pytest.mark.parametrize("columns", [80, 100])
def test_status_fits_the_terminal(config: Path, sales: float, columns: int) -> None:
    """Every line of ``status`` fits an 80- and a 100-column terminal, the kill's sentence too."""
    assert run(config.parent, "-c", str(config), "kill", "sales-agent", "--reason", "x" * 150).returncode == 0
    env = {**ENV, "COLUMNS": str(columns)}
    result = subprocess.run(
        [*REDLINE, "-c", str(config), "status"],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    too_wide = [line for line in result.stdout.splitlines() if len(line) > columns]
    assert too_wide == []
    assert "KILLED" in result.stdout
    assert "x" * 40 in result.stdout  # the reason is wrapped, not cut


def test_status_at_a_past_time(redline: Any, sales: float) -> None:
    """``--at`` shows the fleet as of then: the window ends there, kills made later are absent."""
    assert redline("kill", "sales-agent", "--reason", "later").returncode == 0
    before = json.loads(redline("status", "--json", "--at", str(sales - 25)).stdout)
    agents = {a["agent"]: a for a in before["agents"]}
    assert agents["sales-agent"]["event_count"] == 3  # the events before t-25 s
    assert agents["sales-agent"]["state"] == "running"  # the kill was made after
    assert before["now"] == sales - 25


def test_rebuild_counts_activity_not_governance_or_killed_events() -> None:
    """Rebuilt windows skip anomaly/alert/kill/revive events and events recorded while killed."""
    now = 1_700_000_000.0
    store = MemoryStore()
    store.append(
        [
            AgentEvent(timestamp=now - 5, agent="a", cost_usd=1.0),
            AgentEvent(timestamp=now - 4, agent="a", event_type="kill"),
            AgentEvent(timestamp=now - 3, agent="a", event_type="alert"),
            AgentEvent(timestamp=now - 2, agent="a", cost_usd=5.0, killed_scope="agent"),
            AgentEvent(timestamp=now - 400, agent="a", cost_usd=7.0),
            AgentEvent(timestamp=now - 1, agent="b", event_type="error"),
        ]
    )
    snaps = {s.agent: s for s in rebuild_snapshots(store, window=60, now=now)}
    assert snaps["a"].event_count == 1
    assert snaps["a"].cost_per_minute == pytest.approx(1.0)
    assert snaps["b"].error_count == 1
    assert [s.agent for s in rebuild_snapshots(store, window=60, now=now, agent="b")] == ["b"]


# --- prune and export ---------------------------------------------------------------------


def test_prune_dry_run_counts_without_erasing(redline: Any, config: Path, sales: float) -> None:
    """``prune --dry-run`` reports what retention would erase per category and erases nothing."""
    # Events from 40 days ago are past the default horizon (events.max_age_seconds): lift it,
    # as a user importing an old archive would.
    config.write_text(
        config.read_text(encoding="utf-8") + "events:\n  max_age_seconds: null\n",
        encoding="utf-8",
    )
    seed(
        config,
        [AgentEvent(timestamp=sales - 40 * 86400, agent="old-agent", tool="t") for _ in range(2)],
    )
    result = redline("prune", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["erased"]["action"] == 2
    assert report["dropped_rows"] == 0
    human = redline("prune", "--dry-run")
    assert "would erase" in human.stdout
    assert "rows dropped" in human.stdout
    assert len(redline("events", "--agent", "old-agent", "--json").stdout.splitlines()) == 2


def test_export_streams_a_report_and_prints_its_manifest(
    redline: Any, config: Path, sales: float
) -> None:
    """``export --format soc2`` writes to stdout (manifest on stderr) or to ``--output FILE``."""
    to_stdout = redline("export", "--format", "soc2")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout.strip()
    assert "Exported" in to_stdout.stderr
    out = config.parent / "audit.jsonl"
    to_file = redline("export", "--format", "jsonl", "--output", str(out), "--json")
    assert to_file.returncode == 0, to_file.stderr
    manifest = json.loads(to_file.stdout)
    lines = out.read_text().splitlines()
    assert manifest["count"] == len(lines) - 1 == 5  # the last line is the manifest
    assert json.loads(lines[-1])["manifest"]["sha256"] == manifest["sha256"]
    assert manifest["verification"]["ok"] is True


# --- main() -------------------------------------------------------------------------------


def test_main_returns_the_exit_code(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``redline.cli.main(argv)`` returns 0/2 instead of raising, for embedding and the script."""
    from redline.cli import main

    assert main(["-c", str(config), "validate"]) == 0
    assert main(["-c", str(config), "events", "--order", "sideways"]) == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    "args",
    [["validate", "-c", "monitor.yaml"], ["validate", "--config", "monitor.yaml"],
     ["validate", "--config=monitor.yaml"], ["-c", "monitor.yaml", "validate"]],
)
def test_config_option_works_before_or_after_the_command(
    tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``-c/--config`` is accepted on either side of the command (docs say ``serve -c``)."""
    from redline.cli import main

    (tmp_path / "monitor.yaml").write_text(SEED_000_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDLINE_CONFIG", raising=False)
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == "OK: monitor.yaml (1 policy, 0 rules, 1 channel)"


def test_hoisting_leaves_arguments_after_a_double_dash_alone() -> None:
    """Only options before ``--`` are moved."""
    from redline.cli._app import hoist_config

    assert hoist_config(["events", "-c", "a.yaml", "--", "-c", "x"]) == [
        "-c", "a.yaml", "events", "--", "-c", "x",
    ]


def test_events_of_a_type_never_recorded_says_so_and_lists_the_known_types(
    redline: Callable[..., subprocess.CompletedProcess[str]], sales: float
) -> None:
    """A typo in --type is not "nothing happened": stderr names the type and its neighbour."""
    typo = redline("events", "--type", "llm-call")
    assert typo.returncode == 0
    assert "no event of type 'llm-call' was ever recorded here" in typo.stderr
    assert "did you mean 'llm_call'?" in typo.stderr
    assert "known types: action," in typo.stderr
    # A known type that simply has no match is not a typo: no hint.
    quiet = redline("events", "--type", "approval_request")
    assert "no matching events" in quiet.stderr
    assert "known types" not in quiet.stderr
