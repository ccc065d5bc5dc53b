"""The checks a type cannot express: ranges, choices, names that must exist, settings that clash.

Run on what :mod:`redline.config.errors` could convert (a file with a type error still has its
other values checked), and every problem is returned, never only the first. Choice lists come from
where the choices are defined: store backends from :data:`redline.store.registry.STORE_BACKENDS`,
channel types from :data:`redline.alerts.channels.CHANNEL_CLASSES`, metrics from
:data:`redline.metrics.snapshot.METRIC_NAMES`, so a new backend or channel needs no edit here.
"""

from __future__ import annotations

import os
import re
from typing import Any

from redline.config.errors import did_you_mean
from redline.config.schema import (
    FLEET_METRICS,
    KILL_ACTIONS,
    OPERATORS,
    SEVERITIES,
    MonitorConfig,
    resolve_backend,
)
from redline.server.config import server_config_errors

__all__ = ["semantic_errors"]


def semantic_errors(config: MonitorConfig, source: str) -> list[str]:
    """Every problem in ``config`` that its types cannot express, as ``file: key.path: ...``."""
    # Imported here, not at the top: the condition language, the snapshot and the registries
    # import the config schema themselves (a module-level import would be a circle), and
    # ``import redline.config`` stays cheap for code that never validates a file.
    from redline.alerts.channels import CHANNEL_CLASSES
    from redline.alerts.rules import check_template, resolve_metric
    from redline.detect.conditions import ConditionError, compile_condition
    from redline.metrics.snapshot import METRIC_NAMES
    from redline.store.registry import STORE_BACKENDS

    errors: list[str] = []

    def err(path: str, message: str) -> None:
        errors.append(f"{source}: {path}: {message}")

    def check_choice(path: str, value: str, allowed: Any, what: str = "one of") -> None:
        if value not in allowed:
            extra = did_you_mean(value, allowed)
            err(path, f"expected {what} {', '.join(map(repr, allowed))}, got {value!r}{extra}")

    def check_metric(path: str, metric: str) -> None:
        if metric not in METRIC_NAMES:
            err(path, f"unknown metric {metric!r}{did_you_mean(metric, sorted(METRIC_NAMES))}")

    if config.version not in ("1", "1.0"):
        err("version", f"expected '1.0', got {config.version!r}")

    m = config.metrics
    if m.default_window_seconds <= 0:
        err("metrics.default_window_seconds", "expected a positive number of seconds")
    if m.max_window_seconds < m.default_window_seconds:
        err("metrics.max_window_seconds", "must be at least default_window_seconds")
    for i, w in enumerate(m.windows):
        if w <= 0 or w > m.max_window_seconds:
            err(f"metrics.windows[{i}]", f"expected 1..{m.max_window_seconds} seconds, got {w}")
    if m.max_agents < 1:
        err("metrics.max_agents", "expected at least 1")

    b = config.baselines
    check_choice("baselines.method", b.method, ("welford", "ewma"))
    if b.interval_seconds <= 0:
        err("baselines.interval_seconds", "expected a positive number of seconds")
    if b.min_samples < 2:
        err("baselines.min_samples", "expected at least 2 (a deviation needs two samples)")
    if not 0.0 < b.ewma_alpha <= 1.0:
        err("baselines.ewma_alpha", f"expected a number in (0, 1], got {b.ewma_alpha}")
    for i, name in enumerate(b.metrics):
        check_metric(f"baselines.metrics[{i}]", name)

    event_metrics = ("latency_ms", "cost_usd", "tokens_in", "tokens_out", "tokens_cached")
    for i, rule in enumerate(config.anomaly_detection.rules):
        p = f"anomaly_detection.rules[{i}]"
        check_choice(f"{p}.per", rule.per, ("interval", "event"))
        if rule.per == "event":
            check_choice(f"{p}.metric", rule.metric, event_metrics, "a per-event field:")
        else:
            check_metric(f"{p}.metric", rule.metric)
        check_choice(f"{p}.severity", rule.severity, tuple(SEVERITIES))
        check_choice(f"{p}.direction", rule.direction, ("both", "up", "down"))
        check_choice(f"{p}.action", rule.action, KILL_ACTIONS)
        if rule.z_threshold <= 0:
            err(f"{p}.z_threshold", "expected a positive number")
        if rule.min_samples is not None and rule.min_samples < 2:
            err(f"{p}.min_samples", "expected at least 2")
        try:
            compile_condition(rule.condition)
        except ConditionError as exc:
            err(f"{p}.condition", str(exc))

    names: set[str] = set()
    for i, pol in enumerate(config.kill_switch.policies):
        p = f"kill_switch.policies[{i}]"
        if pol.name in names:
            err(f"{p}.name", f"duplicate policy name {pol.name!r}")
        names.add(pol.name)
        check_metric(f"{p}.metric", pol.metric)
        check_choice(f"{p}.operator", pol.operator, OPERATORS)
        check_choice(f"{p}.action", pol.action, KILL_ACTIONS)
        check_choice(f"{p}.severity", pol.severity, tuple(SEVERITIES))
        if pol.window_seconds is not None and not 0 < pol.window_seconds <= m.max_window_seconds:
            err(f"{p}.window_seconds", f"expected 1..{m.max_window_seconds} seconds")
        if pol.ttl_seconds is not None and pol.ttl_seconds <= 0:
            err(f"{p}.ttl_seconds", "expected a positive number of seconds")
        check_choice(f"{p}.scope", pol.scope, ("agent", "fleet"))
        if pol.scope == "fleet":
            check_choice(
                f"{p}.action", pol.action, ("kill_global", "alert"), "for a fleet policy, one of"
            )
            check_choice(f"{p}.metric", pol.metric, FLEET_METRICS, "for a fleet policy, one of")

    d = config.detectors
    for name in ("loop", "stuck", "suspicious", "drift"):
        det = getattr(d, name)
        check_choice(f"detectors.{name}.severity", det.severity, tuple(SEVERITIES))
        check_choice(f"detectors.{name}.action", det.action, KILL_ACTIONS)
    if d.loop.repeats < 2:
        err("detectors.loop.repeats", "expected at least 2")
    if d.stuck.repeats < 2:
        err("detectors.stuck.repeats", "expected at least 2")
    if not 0.0 < d.drift.threshold <= 1.0:
        err("detectors.drift.threshold", "expected a number in (0, 1]")

    for i, ch in enumerate(config.alerts.channels):
        p = f"alerts.channels[{i}]"
        check_choice(f"{p}.type", ch.type, tuple(CHANNEL_CLASSES))
        check_choice(f"{p}.min_severity", ch.min_severity, tuple(SEVERITIES))
        if ch.type in ("file", "jsonl") and not ch.path:
            err(f"{p}.path", f"a {ch.type} channel needs a path")
        if ch.type in ("webhook", "slack") and not ch.url:
            err(f"{p}.url", f"a {ch.type} channel needs a url")

    for name, counter in m.counters.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            err(f"metrics.counters.{name}", "expected a name of letters, digits and _")
        if name in METRIC_NAMES:
            err(f"metrics.counters.{name}", "this name is already a snapshot field")
        try:
            compile_condition(counter.where)
        except ConditionError as exc:
            err(f"metrics.counters.{name}.where", str(exc))

    rule_names: set[str] = set()
    for i, ar in enumerate(config.alerts.rules):
        p = f"alerts.rules[{i}]"
        if ar.name in rule_names:
            err(f"{p}.name", f"duplicate rule name {ar.name!r}")
        rule_names.add(ar.name)
        try:
            resolve_metric(ar.metric, m.counters)
        except KeyError as exc:
            known = sorted(METRIC_NAMES | set(m.counters))
            extra = did_you_mean(str(exc.args[0]), known)
            err(f"{p}.metric", f"unknown metric or counter {exc.args[0]!r}{extra}")
        check_choice(f"{p}.operator", ar.operator, OPERATORS)
        check_choice(f"{p}.scope", ar.scope, ("agent", "fleet"))
        if ar.warning is None and ar.critical is None:
            err(p, "a rule needs a warning or a critical threshold (or both)")
        if ar.window_seconds is not None and not 0 < ar.window_seconds <= m.max_window_seconds:
            err(f"{p}.window_seconds", f"expected 1..{m.max_window_seconds} seconds")
        if ar.for_seconds < 0 or ar.cooldown_seconds < 0:
            err(p, "for_seconds and cooldown_seconds cannot be negative")
        problem = check_template(ar.message)
        if problem:
            err(f"{p}.message", f"invalid template: {problem}")
        names = {c.name or c.type for c in config.alerts.channels}
        for j, channel in enumerate(ar.channels):
            if channel not in names:
                err(f"{p}.channels[{j}]", f"no channel named {channel!r} (known: {sorted(names)})")
    if config.alerts.evaluation_interval_seconds <= 0:
        err("alerts.evaluation_interval_seconds", "expected a positive number of seconds")

    for name, rx in config.redaction.patterns.items():
        try:
            re.compile(rx)
        except re.error as exc:
            err(f"redaction.patterns.{name}", f"invalid regular expression: {exc}")

    s = config.storage
    if s.backend is not None:
        check_choice("storage.backend", s.backend, tuple(STORE_BACKENDS))
    check_choice(
        "storage.full_policy", s.full_policy, ("drop_oldest", "drop_newest", "block", "spill")
    )
    check_choice("storage.durability", s.durability, ("group", "sync"))
    if s.full_policy == "spill" and not s.spill_path:
        err("storage.spill_path", "the 'spill' policy needs a spill_path")
    check_choice("storage.synchronous", s.synchronous.lower(), ("normal", "full"))
    if s.schema and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", s.schema):
        err("storage.schema", f"expected a lower-case SQL identifier, got {s.schema!r}")
    check_choice("storage.partition", s.partition, ("daily", "monthly"))
    if s.partitions_ahead < 0:
        err("storage.partitions_ahead", "expected 0 or more")
    if config.events.max_age_seconds is not None and config.events.max_age_seconds <= 0:
        err("events.max_age_seconds", "expected a positive number of seconds, or null for none")
    ksc = config.kill_switch
    check_choice("kill_switch.fail_mode", ksc.fail_mode, ("open", "closed"))
    if ksc.stale_after_seconds <= 0:
        err("kill_switch.stale_after_seconds", "expected a positive number of seconds")
    if ksc.reread_interval_seconds <= 0:
        err("kill_switch.reread_interval_seconds", "expected a positive number of seconds")
    if ksc.poll_interval_seconds <= 0:
        err("kill_switch.poll_interval_seconds", "expected a positive number of seconds")
    if ksc.fail_mode == "closed":
        if s.backend == "memory" or resolve_backend(s) == "jsonl":
            err(
                "kill_switch.fail_mode",
                "'closed' needs kill state shared through a sqlite or postgres store "
                f"(storage backend is {resolve_backend(s)!r}); it would never fail closed",
            )
        fresh_every = max(ksc.reread_interval_seconds, ksc.poll_interval_seconds)
        if 0 < ksc.stale_after_seconds <= fresh_every:
            err(
                "kill_switch.stale_after_seconds",
                f"expected more than the re-read interval ({fresh_every:g} s): at or below it "
                "a healthy store reads as stale and check() fails closed between reads",
            )
    if s.checkpoint_every < 1:
        err("storage.checkpoint_every", "expected at least 1")
    if s.backend is None and s.path and resolve_backend(s) == "memory":
        err(
            "storage.path",
            f"cannot tell the backend from {s.path!r}: end it in .db/.sqlite (sqlite) or "
            ".jsonl (jsonl), or set storage.backend",
        )
    if s.backend in ("sqlite", "jsonl") and not s.path:
        err("storage.path", f"the {s.backend} backend needs a path")
    if s.backend == "postgres" and not (s.dsn or os.environ.get("REDLINE_PG_DSN")):
        err("storage.dsn", "the postgres backend needs a dsn (or REDLINE_PG_DSN)")
    for name in ("action", "decision", "error", "security", "performance", "user"):
        days = getattr(config.retention, name)
        if days is not None and days <= 0:
            err(f"retention.{name}", "expected a positive number of days, or null to keep forever")
    if s.queue_size < 1:
        err("storage.queue_size", "expected at least 1")
    if s.batch_size < 1:
        err("storage.batch_size", "expected at least 1")
    if s.max_events < 1:
        err("storage.max_events", "expected at least 1")
    if s.retention_days < 1:
        err("storage.retention_days", "expected a positive number of days")
    if s.max_memory_bytes < 65_536:
        err("storage.max_memory_bytes", "expected at least 65536 (64 KiB)")
    if s.flush_interval_seconds <= 0:
        err("storage.flush_interval_seconds", "expected a positive number of seconds")
    errors.extend(server_config_errors(config.server, source))
    if config.events.max_data_bytes < 256:
        err("events.max_data_bytes", "expected at least 256")
    return errors
