"""Specification of configuration: peer configs load unchanged; errors say file, key path, fix."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import msgspec
import pytest

from redline import AgentEvent, ConfigError, Monitor, MonitorConfig, load_config, parse_config
from redline.testing import ManualClock

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "monitor.yaml"
NOW = 1_700_000_040.0


def write(tmp_path: Path, text: str, name: str = "monitor.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="monitor.yaml")
    return info.value.errors


# --- loading --------------------------------------------------------------------------------


def test_seed_quick_start_config_loads() -> None:
    """Seed 000's ``monitor.yaml`` loads and means what it says."""
    config = load_config(EXAMPLE)
    assert config.metadata.name == "my-monitor"
    assert config.metrics.default_window_seconds == 300
    (policy,) = config.kill_switch.policies
    assert (policy.metric, policy.operator, policy.threshold, policy.action) == (
        "cost_per_minute", ">", 5.0, "kill_agent",
    )
    assert [c.type for c in config.alerts.channels] == ["console"]


PEER_CONFIG = """\
version: "1.0"
metadata:
  name: acme-monitor
  description: Production agent monitoring
  author: platform-team
variables:
  business_start: 9
  business_end: 17
agents:
  sales-agent:
    enabled: true
    event_types: [action, denial, cost, error]
    tags: [sales, tier-1]
  legacy-bot:
    enabled: false
    event_types: []
    tags: []
storage:
  retention_days: 30
metrics:
  default_window_seconds: 300
  max_window_seconds: 3600
baselines:
  enabled: true
  min_samples: 30
  metrics: [denial_rate, error_count, cost_per_minute, avg_latency_ms]
  storage_path: "${DATA_DIR}/baselines.json"
anomaly_detection:
  enabled: true
  rules:
    - name: high-denial-rate
      metric: denial_rate
      z_threshold: 3.0
      severity: high
      cooldown_seconds: 300
      condition: "hour >= $business_start and hour < $business_end"
    - name: cost-spike
      metric: cost_per_minute
      z_threshold: 2.5
      severity: critical
      cooldown_seconds: 600
      condition: ""
kill_switch:
  enabled: true
  policies:
    - name: auto-kill-on-high-cost
      metric: cost_per_minute
      operator: ">"
      threshold: 5.0
      action: kill_agent
      severity: critical
      message: Cost limit exceeded
    - name: emergency-shutdown
      metric: event_count
      operator: ">="
      threshold: 10000
      action: kill_global
      severity: critical
      message: ""
  state_path: "${DATA_DIR:/var/lib/agent-monitor}/kill_state.json"
alerts:
  channels:
    - type: console
      enabled: true
      min_severity: high
    - type: file
      enabled: true
      path: "${DATA_DIR}/alerts.jsonl"
      min_severity: low
    - type: webhook
      enabled: false
      url: https://hooks.example.com/services/T000
      min_severity: critical
      headers:
        Content-Type: application/json
"""


def test_peer_config_with_every_section_loads_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config using every key of the peer's schema loads as written, values intact."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    config = load_config(write(tmp_path, PEER_CONFIG))
    assert config.metadata.author == "platform-team"
    assert config.variables == {"business_start": 9, "business_end": 17}
    assert config.agents["sales-agent"].tags == ["sales", "tier-1"]
    assert config.agents["legacy-bot"].enabled is False
    assert config.storage.retention_days == 30
    # Its one number is every category's retention (no `retention:` section in this file).
    assert set(msgspec.structs.asdict(config.retention).values()) == {30}
    assert config.baselines.storage_path == f"{tmp_path}/baselines.json"
    assert [r.name for r in config.anomaly_detection.rules] == ["high-denial-rate", "cost-spike"]
    assert config.kill_switch.policies[1].action == "kill_global"
    assert config.kill_switch.state_path == f"{tmp_path}/kill_state.json"
    assert config.alerts.channels[2].headers == {"Content-Type": "application/json"}


def test_peer_config_drives_a_monitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer's config means the same in Redline: tracking filters and the cost kill apply."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    clock = ManualClock(NOW)
    with Monitor(load_config(write(tmp_path, PEER_CONFIG)), clock=clock) as m:
        m.record(AgentEvent(timestamp=NOW, agent="legacy-bot"))
        m.record(AgentEvent(timestamp=NOW, agent="sales-agent", event_type="llm_call"))
        for _ in range(26):
            m.record(AgentEvent(timestamp=NOW, agent="sales-agent", cost_usd=1.0))
        assert m.stats()["filtered"] == 2
        assert m.is_killed("sales-agent")
        m.record(AgentEvent(timestamp=NOW, agent="support-agent"))
        clock.advance(120)
        m.record(AgentEvent(timestamp=clock.time(), agent="support-agent"))
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any(a["kind"] == "kill" and a["message"] == "Cost limit exceeded" for a in alerts)
    assert (tmp_path / "baselines.json").exists()


def test_unquoted_version_is_accepted(tmp_path: Path) -> None:
    """``version: 1.0`` without quotes (a YAML float) loads as the peer accepted it."""
    assert load_config(write(tmp_path, "version: 1.0\n")).version == "1.0"


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    """An empty file is a valid config with every default, storing beside itself."""
    path = write(tmp_path, "")
    loaded = load_config(path)
    assert loaded.storage.path == str(tmp_path.resolve() / ".redline" / "events.db")
    loaded.storage.path = None
    assert loaded == parse_config({}, source=str(path))


def test_source_records_the_file(tmp_path: Path) -> None:
    """A loaded config remembers which file it came from."""
    path = write(tmp_path, "version: '1.0'\n")
    assert load_config(path).source == str(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    """A config path that does not exist raises ``FileNotFoundError`` naming it, as the peer."""
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_default_path_is_monitor_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``load_config()`` with no argument reads ``monitor.yaml`` in the working directory."""
    write(tmp_path, "metadata: {name: here}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config().metadata.name == "here"


def test_anomaly_is_an_alias_of_anomaly_detection() -> None:
    """The short section name ``anomaly`` is accepted for ``anomaly_detection``."""
    config = parse_config({"anomaly": {"rules": [{"name": "r", "metric": "error_count"}]}})
    assert config.anomaly_detection.rules[0].name == "r"


def test_giving_both_anomaly_sections_is_an_error() -> None:
    """``anomaly`` and ``anomaly_detection`` together are ambiguous and rejected."""
    (message,) = errors_of({"anomaly": {}, "anomaly_detection": {}})
    assert "either 'anomaly' or 'anomaly_detection'" in message


def test_numbers_written_as_strings_are_converted() -> None:
    """A number in quotes (``"300"``) is read as the number, as the peer's int()/float() did."""
    config = parse_config({"metrics": {"default_window_seconds": "300"},
                           "kill_switch": {"policies": [{"name": "p", "metric": "event_count",
                                                         "threshold": "5.5"}]}})
    assert config.metrics.default_window_seconds == 300
    assert config.kill_switch.policies[0].threshold == 5.5


# --- error messages -------------------------------------------------------------------------


def test_type_error_names_file_key_path_and_expectation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong type is reported as ``file: key.path: expected X, got Y``."""
    write(tmp_path, """\
        kill_switch:
          policies:
            - name: p
              metric: cost_per_minute
              threshold: high
    """)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("monitor.yaml")
    assert str(info.value) == (
        "monitor.yaml: kill_switch.policies[0].threshold: expected a number, got 'high'"
    )
    assert info.value.file == "monitor.yaml"


def test_config_error_is_a_redline_error() -> None:
    """``ConfigError`` is part of the one hierarchy (``RedlineError``)."""
    from redline import RedlineError

    assert issubclass(ConfigError, RedlineError)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"metrcs": {}}, "monitor.yaml: metrcs: unknown key; did you mean 'metrics'?"),
        ({"kill_switch": {"polices": []}},
         "monitor.yaml: kill_switch.polices: unknown key; did you mean 'policies'?"),
        ({"kill_switch": {"policies": [{"name": "p", "metric": "event_count", "treshold": 1}]}},
         "monitor.yaml: kill_switch.policies[0].treshold: unknown key; did you mean 'threshold'?"),
        ({"alerts": {"channels": [{"type": "console", "min_severty": "low"}]}},
         "monitor.yaml: alerts.channels[0].min_severty: unknown key; "
         "did you mean 'min_severity'?"),
        ({"agents": {"sales": {"enabld": True}}},
         "monitor.yaml: agents.sales.enabld: unknown key; did you mean 'enabled'?"),
        ({"baselines": {"min_sample": 5}},
         "monitor.yaml: baselines.min_sample: unknown key; did you mean 'min_samples'?"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(raw: dict[str, object], expected: str) -> None:
    """A misspelt key anywhere is an error naming its full path and the likely intended key."""
    assert errors_of(raw) == [expected]


def test_unknown_key_with_no_near_match_lists_the_known_keys() -> None:
    """When nothing is close, the error lists the keys that are allowed there."""
    (message,) = errors_of({"metadata": {"zzz": 1}})
    assert message == (
        "monitor.yaml: metadata.zzz: unknown key (known keys: author, description, name)"
    )


def test_missing_required_key_is_named() -> None:
    """A policy without a name says which key is missing, and where."""
    assert errors_of({"kill_switch": {"policies": [{"metric": "event_count"}]}}) == [
        "monitor.yaml: kill_switch.policies[0].name: required key is missing"
    ]


def test_wrong_type_inside_a_named_map_names_the_entry() -> None:
    """An error under ``agents.NAME`` names the agent, not a placeholder."""
    assert errors_of({"agents": {"ok": {"enabled": True}, "sales": {"enabled": "maybe"}}}) == [
        "monitor.yaml: agents.sales.enabled: expected true or false, got 'maybe'"
    ]


def test_top_level_must_be_a_mapping() -> None:
    """A file whose top level is a list is rejected with what was found."""
    assert errors_of([1, 2]) == ["monitor.yaml: expected a mapping at the top level, got a list"]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    """Broken YAML is a ``ConfigError`` with the file, line and column."""
    path = write(tmp_path, "metrics:\n  default_window_seconds: [300\n")
    where = rf"{re.escape(str(path))}: line \d+, column \d+: invalid YAML"
    with pytest.raises(ConfigError, match=where):
        load_config(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"kill_switch": {"policies": [{"name": "p", "metric": "cost_per_minut"}]}},
         "monitor.yaml: kill_switch.policies[0].metric: unknown metric 'cost_per_minut'; "
         "did you mean 'cost_per_minute'?"),
        ({"anomaly_detection": {"rules": [{"name": "r", "metric": "eror_count"}]}},
         "monitor.yaml: anomaly_detection.rules[0].metric: unknown metric 'eror_count'; "
         "did you mean 'error_count'?"),
        ({"baselines": {"metrics": ["denial_rate", "cost_per_min"]}},
         "monitor.yaml: baselines.metrics[1]: unknown metric 'cost_per_min'; "
         "did you mean 'cost_per_minute'?"),
    ],
)
def test_unknown_metrics_are_rejected_at_load(raw: dict[str, object], expected: str) -> None:
    """A rule, policy or baseline naming a metric that does not exist fails at load, not never."""
    assert errors_of(raw) == [expected]


def test_per_event_rules_need_a_per_event_field() -> None:
    """``per: event`` rules score an event's own value, so the metric must be such a field."""
    (message,) = errors_of(
        {"anomaly_detection": {"rules": [{"name": "r", "metric": "denial_rate", "per": "event"}]}}
    )
    assert message.startswith("monitor.yaml: anomaly_detection.rules[0].metric: expected a")
    assert "'latency_ms'" in message


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"kill_switch": {"policies": [{"name": "p", "metric": "event_count",
                                        "operator": "=>"}]}}, "kill_switch.policies[0].operator"),
        ({"kill_switch": {"policies": [{"name": "p", "metric": "event_count",
                                        "action": "kill_everyone"}]}},
         "kill_switch.policies[0].action"),
        ({"kill_switch": {"policies": [{"name": "p", "metric": "event_count",
                                        "severity": "urgent"}]}},
         "kill_switch.policies[0].severity"),
        ({"alerts": {"channels": [{"type": "console"}, {"type": "sms"}]}},
         "alerts.channels[1].type"),
        ({"alerts": {"channels": [{"type": "file"}]}}, "alerts.channels[0].path"),
        ({"alerts": {"channels": [{"type": "webhook"}]}}, "alerts.channels[0].url"),
        ({"version": "2.0"}, "version"),
        ({"metrics": {"default_window_seconds": 0}}, "metrics.default_window_seconds"),
        ({"metrics": {"default_window_seconds": 600, "max_window_seconds": 300}},
         "metrics.max_window_seconds"),
        ({"baselines": {"min_samples": 1}}, "baselines.min_samples"),
        ({"anomaly_detection": {"rules": [{"name": "r", "metric": "error_count",
                                           "z_threshold": 0}]}},
         "anomaly_detection.rules[0].z_threshold"),
        ({"redaction": {"patterns": {"bad": "([unclosed"}}}, "redaction.patterns.bad"),
        ({"storage": {"backend": "mongodb"}}, "storage.backend"),
    ],
)
def test_bad_values_name_their_key_path(raw: dict[str, object], path: str) -> None:
    """Every semantic problem is reported as ``file: key.path: ...``."""
    (message,) = errors_of(raw)
    assert message.startswith(f"monitor.yaml: {path}: ")


def test_bad_operator_suggests_the_nearest() -> None:
    """A mistyped operator lists the valid ones and suggests one."""
    (message,) = errors_of(
        {"kill_switch": {"policies": [{"name": "p", "metric": "event_count", "operator": "=>"}]}}
    )
    assert "expected one of '>', '>=', '<', '<=', '==', '!='" in message
    assert "did you mean" in message


def test_duplicate_policy_names_are_rejected() -> None:
    """Two policies with one name are an error on the second."""
    (message,) = errors_of({"kill_switch": {"policies": [
        {"name": "p", "metric": "event_count"}, {"name": "p", "metric": "error_count"},
    ]}})
    assert message == "monitor.yaml: kill_switch.policies[1].name: duplicate policy name 'p'"


def test_bad_condition_is_located() -> None:
    """A rule condition that does not parse is reported with a caret under the problem."""
    (message,) = errors_of({"anomaly_detection": {"rules": [
        {"name": "r", "metric": "error_count", "condition": "hour >= "},
    ]}})
    assert message.startswith("monitor.yaml: anomaly_detection.rules[0].condition: ")
    assert "^" in message


def test_all_semantic_problems_are_reported_together() -> None:
    """Several mistakes are listed in one error so they can be fixed in one edit."""
    errors = errors_of({
        "kill_switch": {"policies": [{"name": "p", "metric": "nope", "operator": "~"}]},
        "alerts": {"channels": [{"type": "pager"}]},
    })
    assert len(errors) == 3
    assert all(e.startswith("monitor.yaml: ") for e in errors)


# --- environment interpolation --------------------------------------------------------------


def test_env_variables_are_interpolated_in_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${VAR}`` in a string value is replaced by the environment variable."""
    monkeypatch.setenv("ALERT_DIR", "/var/alerts")
    path = write(tmp_path, """\
        alerts:
          channels:
            - type: file
              path: ${ALERT_DIR}/alerts.jsonl
    """)
    assert load_config(path).alerts.channels[0].path == "/var/alerts/alerts.jsonl"


def test_interpolated_numbers_are_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole numeric value may come from the environment (``threshold: ${MAX_COST}``)."""
    monkeypatch.setenv("MAX_COST", "7.5")
    path = write(tmp_path, """\
        kill_switch:
          policies:
            - {name: p, metric: cost_per_minute, threshold: "${MAX_COST}"}
    """)
    assert load_config(path).kill_switch.policies[0].threshold == 7.5


@pytest.mark.parametrize("form", ["${NOT_SET_ANYWHERE:-fallback}", "${NOT_SET_ANYWHERE:fallback}"])
def test_unset_variables_take_their_default(monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    """``${VAR:-default}`` and the peer's ``${VAR:default}`` fall back when VAR is unset."""
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    assert parse_config({"metadata": {"name": form}}).metadata.name == "fallback"


def test_set_variables_win_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the variable is set, its value is used, not the default."""
    monkeypatch.setenv("MON_NAME", "prod")
    assert parse_config({"metadata": {"name": "${MON_NAME:-dev}"}}).metadata.name == "prod"


def test_unset_variable_without_default_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable with no default is an error naming the variable and the key path."""
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    (message,) = errors_of({"alerts": {"channels": [{"type": "webhook",
                                                      "url": "${NOT_SET_ANYWHERE}"}]}})
    assert message.startswith("monitor.yaml: alerts.channels[0].url: environment variable "
                              "NOT_SET_ANYWHERE is not set")


def test_keys_are_never_interpolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only values are interpolated: a ``${...}`` in a key stays as written."""
    monkeypatch.setenv("AGENT", "sales")
    config = parse_config({"agents": {"${AGENT}": {"enabled": False}}})
    assert list(config.agents) == ["${AGENT}"]


def test_interpolation_reaches_lists_and_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values inside lists and nested mappings are interpolated too."""
    monkeypatch.setenv("TOKEN", "abc")
    config = parse_config({"alerts": {"channels": [
        {"type": "webhook", "url": "https://h.example", "headers": {"Authorization": "Bearer ${TOKEN}"}},
    ]}})
    assert config.alerts.channels[0].headers == {"Authorization": "Bearer abc"}


def test_defaults_without_a_file() -> None:
    """``MonitorConfig()`` is the same as an empty file: five-minute windows, no policies."""
    config = MonitorConfig()
    assert config.metrics.default_window_seconds == 300
    assert config.kill_switch.policies == []


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    """Type errors, unknown keys and semantic problems all come back at once, each with the
    file, the key path and what was expected."""
    from redline import ConfigError, load_config

    path = tmp_path / "monitor.yaml"
    path.write_text(
        "metrics:\n  default_window_seconds: soon\n"
        "kill_switch:\n  policies:\n"
        "    - {name: a, metric: cost_per_minute, operator: '>', threshold: high}\n"
        "    - {name: b, metric: cost_per_minute, operator: '=~', threshold: 1}\n"
        "alerts:\n  channels:\n    - {type: console, colour: red}\n"
        "storag: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "\n".join(info.value.errors)
    assert "metrics.default_window_seconds: expected an integer" in text
    assert "kill_switch.policies[0].threshold: expected a number" in text
    assert "kill_switch.policies[1].operator" in text
    assert "alerts.channels[0].colour: unknown key" in text
    assert "storag: unknown key; did you mean 'storage'?" in text
    assert all(line.startswith(str(path)) for line in info.value.errors)
    assert len(info.value.errors) == 5


def test_a_retention_section_takes_precedence_over_storage_retention_days() -> None:
    config = parse_config({"storage": {"retention_days": 7}, "retention": {"action": 3}})
    assert config.retention.action == 3
    assert config.retention.security == 730  # the section's defaults, not the one number
    assert parse_config({}).retention.security == 730  # unset: the per-category defaults
    with pytest.raises(ConfigError, match=r"storage\.retention_days: expected a positive"):
        parse_config({"storage": {"retention_days": 0}})
