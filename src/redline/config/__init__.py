"""Configuration: YAML in, typed structs out, and every problem reported, located, in one run.

A config written for the published ``theaios-agent-monitor`` loads unchanged and means the same;
Redline's own sections extend it. Every problem is reported as ``file: key.path: what was
expected`` (``monitor.yaml: kill_switch.policies[0].threshold: expected a number, got 'high'``),
unknown keys get a did-you-mean, and structural and semantic problems in every section come back
together in one :class:`~redline.exceptions.ConfigError` (its ``errors`` list). ``${VAR}``,
``${VAR:-default}`` and ``${VAR:default}`` are replaced in string *values* after parsing (never
in keys), so secrets can live in the environment.

One idea per module:

==================  ===========================================================================
``schema``          the structs, one per section, and the constants their checks use
``loader``          :func:`load_config` (the file, YAML, the default store) and :func:`parse_config`
``errors``          converting while collecting every structural problem, in the config's words
``checks``          the semantic checks (ranges, choices from the registries, clashes)
``sections``        sections a feature package parses itself: :func:`register_section`
==================  ===========================================================================
"""

from __future__ import annotations

from redline.config.loader import load_config, parse_config
from redline.config.schema import (
    DEFAULT_STORE,
    FLEET_METRICS,
    KILL_ACTIONS,
    OPERATORS,
    SEVERITIES,
    AgentTrackConfig,
    AlertChannelConfig,
    AlertConfig,
    AlertRuleConfig,
    AnomalyDetectionConfig,
    AnomalyRuleConfig,
    BaselineConfig,
    CounterConfig,
    DetectorsConfig,
    DriftConfig,
    EventsConfig,
    KillPolicyConfig,
    KillSwitchConfig,
    LoopConfig,
    MetricsEngineConfig,
    MonitorConfig,
    MonitorMetadata,
    RedactionConfig,
    RetentionConfig,
    StorageConfig,
    StuckConfig,
    SuspiciousConfig,
    resolve_backend,
    severity_rank,
)
from redline.config.sections import SECTIONS, SectionParser, register_section

__all__ = [
    "DEFAULT_STORE",
    "FLEET_METRICS",
    "KILL_ACTIONS",
    "OPERATORS",
    "SECTIONS",
    "SEVERITIES",
    "AgentTrackConfig",
    "AlertChannelConfig",
    "AlertConfig",
    "AlertRuleConfig",
    "AnomalyDetectionConfig",
    "AnomalyRuleConfig",
    "BaselineConfig",
    "CounterConfig",
    "DetectorsConfig",
    "DriftConfig",
    "EventsConfig",
    "KillPolicyConfig",
    "KillSwitchConfig",
    "LoopConfig",
    "MetricsEngineConfig",
    "MonitorConfig",
    "MonitorMetadata",
    "RedactionConfig",
    "RetentionConfig",
    "SectionParser",
    "StorageConfig",
    "StuckConfig",
    "SuspiciousConfig",
    "load_config",
    "parse_config",
    "register_section",
    "resolve_backend",
    "severity_rank",
]
