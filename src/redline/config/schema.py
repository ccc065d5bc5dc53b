"""The config's shape: one msgspec struct per section, defaults as the peer documented them.

Nothing here reads a file or checks a value against another: loading is
:mod:`redline.config.loader`, locating problems :mod:`redline.config.errors`, and the checks a
type cannot express :mod:`redline.config.checks`. Structs reject unknown keys, so a typo is a
located error, not a silently ignored setting.

Sections a feature package owns (registered with :func:`redline.config.register_section`) are
not fields here: they are parsed by their package and kept in :attr:`MonitorConfig.sections`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from redline.export.config import ExportersConfig
from redline.server.config import ServerConfig

__all__ = [
    "DEFAULT_STORE",
    "FLEET_METRICS",
    "KILL_ACTIONS",
    "OPERATORS",
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
    "StorageConfig",
    "StuckConfig",
    "SuspiciousConfig",
    "resolve_backend",
    "severity_rank",
]

#: Severities from least to most urgent; ``medium`` and ``warning`` rank the same.
SEVERITIES: Final[dict[str, int]] = {
    "info": 0,
    "low": 1,
    "medium": 2,
    "warning": 2,
    "high": 3,
    "critical": 4,
}
OPERATORS: Final = (">", ">=", "<", "<=", "==", "!=")
KILL_ACTIONS: Final = ("kill_agent", "kill_session", "kill_global", "alert")
#: Metrics a fleet policy may use: those every store can total across all writers.
FLEET_METRICS: Final = (
    "event_count",
    "action_count",
    "denial_count",
    "error_count",
    "llm_call_count",
    "tool_call_count",
    "cost_total",
    "cost_per_minute",
    "events_per_minute",
    "denial_rate",
    "error_rate",
    "avg_latency_ms",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
)

#: Where a config file's events go when it names no storage (relative to the file).
DEFAULT_STORE: Final = ".redline/events.db"


def severity_rank(severity: str) -> int:
    """Rank of a severity for comparisons (unknown names rank as ``medium``)."""
    return SEVERITIES.get(severity, 2)


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Config structs reject unknown keys so typos are caught at load."""


class MonitorMetadata(_Base):
    """Who the config belongs to; shown by ``redline inspect``."""

    name: str = ""
    description: str = ""
    author: str = ""


class AgentTrackConfig(_Base):
    """Per-agent tracking (the peer's ``agents.NAME``): turn an agent off or keep some types."""

    name: str = ""
    enabled: bool = True
    event_types: list[str] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)


class StorageConfig(_Base):
    """Where events go. ``backend`` is inferred from ``path`` when omitted; no path → memory."""

    backend: str | None = None
    path: str | None = None
    dsn: str | None = None
    retention_days: int = 90
    max_events: int = 1_000_000
    #: The memory store's byte bound (an estimate of what its events hold): 256 MiB.
    max_memory_bytes: int = 268_435_456
    queue_size: int = 100_000
    batch_size: int = 1_000
    flush_interval_seconds: float = 0.2
    full_policy: str = "drop_oldest"
    block_timeout_seconds: float = 0.05
    spill_path: str = ""
    sync_types: list[str] = msgspec.field(
        default_factory=lambda: ["kill", "revive", "denial", "security", "alert"]
    )
    #: ``group``: a ``sync_types`` event wakes the writer to commit at once and ``record()``
    #: never waits; ``sync``: ``record()`` waits for that commit (see docs/storage.md).
    durability: str = "group"
    synchronous: str = "normal"
    signing_key_path: str = ""
    anchor_path: str = ""
    checkpoint_every: int = 10_000
    checkpoint_interval_seconds: float = 60.0
    flush_on_sigterm: bool = True
    schema: str = ""
    partition: str = "daily"
    partitions_ahead: int = 3


class RetentionConfig(_Base):
    """Days to keep each category (seed 001's table); ``null`` keeps forever."""

    action: int | None = 30
    decision: int | None = 90
    error: int | None = 365
    security: int | None = 730
    performance: int | None = 30
    user: int | None = 90


class CounterConfig(_Base):
    """A derived counter: events of ``event_type`` for which ``where`` holds (over ``data``
    and the event's own fields, in the condition language), counted in every window."""

    event_type: str
    where: str = ""


class MetricsEngineConfig(_Base):
    """Rolling windows: the default one, the longest ad-hoc one, and extra windows kept live."""

    default_window_seconds: int = 300
    max_window_seconds: int = 3600
    windows: list[int] = msgspec.field(default_factory=list)
    max_agents: int = 10_000
    counters: dict[str, CounterConfig] = msgspec.field(default_factory=dict)


class BaselineConfig(_Base):
    """Statistical baselines per (agent, metric); ``interval_seconds`` is the sampling period."""

    enabled: bool = True
    min_samples: int = 30
    metrics: list[str] = msgspec.field(
        default_factory=lambda: ["denial_rate", "error_count", "cost_per_minute", "avg_latency_ms"]
    )
    storage_path: str = ""
    interval_seconds: int = 60
    method: str = "welford"
    ewma_alpha: float = 0.1


class AnomalyRuleConfig(_Base):
    """A z-score rule: fire when ``metric`` is ``z_threshold`` deviations from its baseline.

    ``per: interval`` scores the metric over each closed baseline interval; ``per: event`` scores
    each event's own value (``latency_ms``, ``cost_usd``, ``tokens_in``, ``tokens_out``).
    """

    name: str
    metric: str
    z_threshold: float = 3.0
    severity: str = "high"
    cooldown_seconds: float = 300
    condition: str = ""
    agent: str = "*"
    per: str = "interval"
    direction: str = "both"
    min_samples: int | None = None
    action: str = "alert"


class AnomalyDetectionConfig(_Base):
    """The peer's ``anomaly_detection`` section (``anomaly`` is accepted as an alias)."""

    enabled: bool = True
    rules: list[AnomalyRuleConfig] = msgspec.field(default_factory=list)


class LoopConfig(_Base):
    """The same tool with the same arguments ``repeats`` times within ``window_seconds``."""

    enabled: bool = True
    repeats: int = 5
    window_seconds: float = 60.0
    severity: str = "high"
    cooldown_seconds: float = 60.0
    action: str = "alert"


class StuckConfig(_Base):
    """The same action ``repeats`` times in a row with nothing else in between."""

    enabled: bool = True
    repeats: int = 20
    severity: str = "medium"
    cooldown_seconds: float = 300.0
    action: str = "alert"


class SuspiciousConfig(_Base):
    """Actions whose name contains a risky word: a require-approval signal."""

    enabled: bool = True
    patterns: list[str] = msgspec.field(
        default_factory=lambda: [
            "delete",
            "remove",
            "drop",
            "truncate",
            "send_email",
            "transfer",
            "payment",
        ]
    )
    severity: str = "medium"
    cooldown_seconds: float = 0.0
    action: str = "alert"


class DriftConfig(_Base):
    """An agent's mix of event types drifting from its learned profile (total variation)."""

    enabled: bool = True
    threshold: float = 0.5
    min_intervals: int = 10
    alpha: float = 0.1
    min_events: int = 20
    severity: str = "medium"
    cooldown_seconds: float = 600.0
    action: str = "alert"


class DetectorsConfig(_Base):
    """Pattern detectors beyond z-scores (seed 001)."""

    loop: LoopConfig = msgspec.field(default_factory=LoopConfig)
    stuck: StuckConfig = msgspec.field(default_factory=StuckConfig)
    suspicious: SuspiciousConfig = msgspec.field(default_factory=SuspiciousConfig)
    drift: DriftConfig = msgspec.field(default_factory=DriftConfig)


class KillPolicyConfig(_Base):
    """An automatic kill: when ``metric operator threshold`` holds for an agent, act."""

    name: str
    metric: str
    operator: str = ">"
    threshold: float = 0.0
    action: str = "kill_agent"
    severity: str = "critical"
    message: str = ""
    agent: str = "*"
    window_seconds: int | None = None
    min_events: int = 1
    ttl_seconds: float | None = None
    scope: str = "agent"


class KillSwitchConfig(_Base):
    """Kill switches: automatic policies and how long a kill lasts by default."""

    enabled: bool = True
    policies: list[KillPolicyConfig] = msgspec.field(default_factory=list)
    state_path: str = ""
    default_ttl_seconds: float | None = None
    poll_interval_seconds: float = 0.05
    fail_mode: str = "open"
    stale_after_seconds: float = 10.0
    reread_interval_seconds: float = 2.0


class AlertChannelConfig(_Base):
    """One alert channel. Keys per type are in DESIGN.md's interfaces section."""

    type: str
    name: str = ""
    enabled: bool = True
    min_severity: str = "low"
    path: str = ""
    url: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    secret: str = ""
    routing_key: str = ""
    api_key: str = ""
    host: str = ""
    port: int = 0
    username: str = ""
    password: str = ""
    starttls: bool = True
    from_: str = msgspec.field(default="", name="from")
    to: list[str] = msgspec.field(default_factory=list)
    timeout_seconds: float = 5.0


class AlertRuleConfig(_Base):
    """A metric over a window with warning/critical thresholds (see ``redline.alerts.rules``).

    ``metric`` is a snapshot field, a ``metrics.counters`` name, or ``A / B`` of two of them.
    ``scope`` is ``agent`` (each agent matching ``agent``) or ``fleet`` (all agents together).
    """

    name: str
    metric: str
    operator: str = ">"
    warning: float | None = None
    critical: float | None = None
    window_seconds: int | None = None
    scope: str = "agent"
    agent: str = "*"
    for_seconds: float = 0.0
    cooldown_seconds: float = 300.0
    min_events: int = 1
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    message: str = ""
    description: str = ""
    channels: list[str] = msgspec.field(default_factory=list)


class AlertConfig(_Base):
    """Where alerts go, which rules raise them, and how delivery retries."""

    channels: list[AlertChannelConfig] = msgspec.field(default_factory=list)
    rules: list[AlertRuleConfig] = msgspec.field(default_factory=list)
    evaluation_interval_seconds: float = 1.0
    dead_letter_path: str = ""
    queue_size: int = 1000
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    breaker_threshold: int = 5
    breaker_reset_seconds: float = 30.0
    #: Alert groups (:mod:`redline.alerts.groups`): an open group notifies again after this
    #: long (Alertmanager's repeat_interval), and resolves after this long without a repeat.
    group_repeat_seconds: float = 3600.0
    group_quiet_seconds: float = 300.0


class RedactionConfig(_Base):
    """What is scrubbed from ``data`` before anything sees an event."""

    enabled: bool = True
    keys: list[str] = msgspec.field(default_factory=list)
    emails: bool = True
    cards: bool = True
    #: The well-known credential formats in any string (see ``redline.redaction``).
    credentials: bool = True
    patterns: dict[str, str] = msgspec.field(default_factory=dict)
    #: Keys whose values are stored as written (an allow-list; secret-looking keys included).
    allow_keys: list[str] = msgspec.field(default_factory=list)


class EventsConfig(_Base):
    """The bad-input policy (see :mod:`redline.validation`)."""

    strict: bool = False
    max_data_bytes: int = 65_536
    max_clock_skew_seconds: float = 300.0
    #: The past horizon: older timestamps are set to now (the original kept); ``null``: none.
    max_age_seconds: float | None = 30 * 86_400.0


class MonitorConfig(_Base):
    """Top-level configuration: maps 1:1 to ``monitor.yaml``."""

    version: str = "1.0"
    metadata: MonitorMetadata = msgspec.field(default_factory=MonitorMetadata)
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    agents: dict[str, AgentTrackConfig] = msgspec.field(default_factory=dict)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    metrics: MetricsEngineConfig = msgspec.field(default_factory=MetricsEngineConfig)
    baselines: BaselineConfig = msgspec.field(default_factory=BaselineConfig)
    anomaly_detection: AnomalyDetectionConfig = msgspec.field(
        default_factory=AnomalyDetectionConfig
    )
    detectors: DetectorsConfig = msgspec.field(default_factory=DetectorsConfig)
    kill_switch: KillSwitchConfig = msgspec.field(default_factory=KillSwitchConfig)
    alerts: AlertConfig = msgspec.field(default_factory=AlertConfig)
    redaction: RedactionConfig = msgspec.field(default_factory=RedactionConfig)
    events: EventsConfig = msgspec.field(default_factory=EventsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    exporters: ExportersConfig = msgspec.field(default_factory=ExportersConfig)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    source: str = msgspec.field(default="", name="__source__")
    #: Registered sections (``register_section``), parsed by their own package: name → value.
    sections: dict[str, Any] = msgspec.field(default_factory=dict, name="__sections__")

    def section(self, name: str) -> Any:
        """The parsed value of registered section ``name`` (its defaults when the file omits it).

        Raises ``KeyError`` for a name no package registered.
        """
        if name not in self.sections:
            from redline.config.sections import default_section

            self.sections[name] = default_section(name, self.source or "<config>")
        return self.sections[name]


def resolve_backend(storage: StorageConfig) -> str:
    """The storage backend: explicit, else inferred from the path's suffix, else memory."""
    if storage.backend is not None:
        return storage.backend
    path = storage.path or ""
    if path.endswith((".db", ".sqlite", ".sqlite3")):
        return "sqlite"
    if path.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "memory"
