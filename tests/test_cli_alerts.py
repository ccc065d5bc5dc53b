"""``redline alerts`` and ``redline ack`` through the real entry point on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from redline import AgentEvent, Monitor, load_config

CONFIG = """\
version: "1.0"
storage:
  path: {db}
alerts:
  rules:
    - name: errors
      metric: error_rate
      warning: 0.1
      window_seconds: 60
"""


def redline(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "redline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _firing(tmp_path: Path) -> tuple[Path, str]:
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "events.db"), encoding="utf-8")
    with Monitor(load_config(config)) as m:
        now = time.time()
        for i in range(10):
            m.record(
                AgentEvent(timestamp=now, agent="a", event_type="error" if i < 3 else "action")
            )
        fired = m.evaluate_alerts()
    return config, fired[0].id


def test_alerts_lists_the_firing_alert(tmp_path: Path) -> None:
    """``redline alerts --json`` shows the alert a monitor raised, with its state."""
    config, alert_id = _firing(tmp_path)
    result = redline(tmp_path, "-c", str(config), "alerts", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["id"], r["state"], r["severity"]) for r in rows] == [(alert_id, "firing", "warning")]


def test_ack_acknowledges_and_the_list_shows_who(tmp_path: Path) -> None:
    """``redline ack ID --by NAME`` records the acknowledgement; ``alerts`` then shows it."""
    config, alert_id = _firing(tmp_path)
    result = redline(tmp_path, "-c", str(config), "ack", alert_id, "--by", "alice")
    assert result.returncode == 0, result.stderr
    assert "alice" in result.stdout
    rows = json.loads(redline(tmp_path, "-c", str(config), "alerts", "--json").stdout)
    assert rows[0]["state"] == "acknowledged"
    assert rows[0]["details"]["acknowledged_by"] == "alice"


def test_ack_of_an_unknown_alert_exits_1(tmp_path: Path) -> None:
    """Acknowledging an id no firing alert has is reported, exit code 1."""
    config, _ = _firing(tmp_path)
    result = redline(tmp_path, "-c", str(config), "ack", "al-unknown", "--by", "alice")
    assert result.returncode == 1
    assert "no firing alert" in result.stderr


def test_alerts_table_on_a_store_without_alerts(tmp_path: Path) -> None:
    """With nothing firing, ``alerts`` says so and exits 0."""
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "events.db"), encoding="utf-8")
    with Monitor(load_config(config)) as m:
        m.record(AgentEvent(agent="a"))
    result = redline(tmp_path, "-c", str(config), "alerts")
    assert result.returncode == 0, result.stderr
    assert "No active alerts" in result.stdout


def _grouped(tmp_path: Path) -> Path:
    """300 send_email calls from `mailer` and 2 from `other`, each agent's one alert group."""
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "events.db"), encoding="utf-8")
    with Monitor(load_config(config)) as m:
        now = time.time()
        for agent, n in (("mailer", 300), ("other", 2)):
            for _ in range(n):
                m.record(
                    AgentEvent(
                        timestamp=now, agent=agent, event_type="tool_call", tool="send_email"
                    )
                )
        m.run_duties()  # the groups' counts, stored
    return config


def test_alerts_shows_groups_with_their_counts(tmp_path: Path) -> None:
    """One row per group, with the count of what it folded, in JSON and in the table."""
    config = _grouped(tmp_path)
    rows = json.loads(redline(tmp_path, "-c", str(config), "alerts", "--json").stdout)
    counts = sorted((r["agent"], r["kind"], r["count"]) for r in rows)
    # The stuck detector fires once (its own cooldown); the suspicious one on every call.
    assert counts == [
        ("mailer", "stuck", 1),
        ("mailer", "suspicious", 300),
        ("other", "suspicious", 2),
    ]
    table = redline(tmp_path, "-c", str(config), "alerts").stdout
    assert "count" in table
    assert " 300 " in table
    limited = redline(tmp_path, "-c", str(config), "alerts", "--limit", "1").stdout
    assert "2 more: raise --limit" in limited


def test_ack_all_of_a_filter(tmp_path: Path) -> None:
    """``ack --all --agent mailer`` acknowledges that agent's alerts and no one else's."""
    config = _grouped(tmp_path)
    result = redline(
        tmp_path, "-c", str(config), "ack", "--all", "--agent", "mailer", "--by", "bob"
    )
    assert result.returncode == 0, result.stderr
    assert "Acknowledged 2 alert(s) by bob" in result.stdout
    rows = json.loads(redline(tmp_path, "-c", str(config), "alerts", "--json").stdout)
    assert sorted((r["agent"], r["state"]) for r in rows) == [
        ("mailer", "acknowledged"),
        ("mailer", "acknowledged"),
        ("other", "firing"),
    ]
    everything = redline(tmp_path, "-c", str(config), "ack", "--all", "--json")
    assert [r["agent"] for r in json.loads(everything.stdout)] == ["other"]
    both = redline(tmp_path, "-c", str(config), "ack", "al-1", "--all")
    assert both.returncode != 0
    assert "alert id, or --all" in both.stderr
