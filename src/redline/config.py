"""Configuration: YAML in, typed structs out, and errors that say where and what.

A config written for the published peer (``theaios-agent-monitor``) loads unchanged and means the
same; Redline's own sections extend it. Every problem is reported as
``file: key.path: what was expected`` (``monitor.yaml: kill_switch.policies[0].threshold: expected
a number, got 'high'``), unknown keys get a did-you-mean, and all semantic problems found are
reported together. ``${VAR}``, ``${VAR:-default}`` and the peer's ``${VAR:default}`` are replaced
in string *values* after parsing (never in keys), so secrets can live in the environment.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from redline.exceptions import ConfigError
from redline.export.config import ExportersConfig
from redline.server.config import ServerConfig, server_config_errors

__all__ = [
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
    "load_config",
    "parse_config",
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
CHANNEL_TYPES: Final = (
    "console",
    "file",
    "jsonl",
    "webhook",
    "slack",
    "pagerduty",
    "opsgenie",
    "email",
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


# -- loading ------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str] = "monitor.yaml") -> MonitorConfig:
    """Read, interpolate and validate a YAML config file.

    A file without a ``storage`` path stores events in ``.redline/events.db`` beside it (the
    audited SQLite store); ``parse_config`` and ``MonitorConfig()`` keep the in-memory default.

    Raises ``FileNotFoundError`` when the file does not exist (as the peer) and
    :class:`ConfigError` for anything wrong inside it.
    """
    file = str(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"Monitor config file not found: {file}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: {where}invalid YAML: {problem}"], file=file) from None
    config = parse_config(raw if raw is not None else {}, source=file)
    storage = config.storage
    if storage.backend is None and storage.path is None:
        # A config file persists by default, as the peer's did (it wrote a JSONL log): the
        # audited SQLite store, beside the file, so every process and the CLI find it.
        storage.path = str(Path(file).resolve().parent / DEFAULT_STORE)
    return config


def parse_config(raw: Any, *, source: str = "<config>") -> MonitorConfig:
    """Validate an already-parsed mapping (from YAML, JSON or code) into a :class:`MonitorConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{source}: expected a mapping at the top level, got {_kind(raw)}"], file=source
        )
    raw = dict(raw)
    if "anomaly" in raw:
        if "anomaly_detection" in raw:
            raise ConfigError(
                [f"{source}: anomaly: give either 'anomaly' or 'anomaly_detection', not both"],
                file=source,
            )
        raw["anomaly_detection"] = raw.pop("anomaly")
    version = raw.get("version")
    if isinstance(version, (int, float)) and not isinstance(version, bool):
        raw["version"] = str(version)  # unquoted ``version: 1.0`` in YAML, as the peer accepts
    errors: list[str] = []
    raw = _interpolate(raw, "", errors, source)
    if errors:
        raise ConfigError(errors, file=source)
    config = _convert_reporting_all(raw, source, errors)
    config.source = source
    errors.extend(e for e in _semantic_errors(config, source) if e not in errors)
    if errors:
        raise ConfigError(errors, file=source)
    return config


#: Structural problems reported in one run before giving up (a file of nothing but errors).
_MAX_STRUCTURAL = 50


def _convert_reporting_all(raw: dict[str, Any], source: str, errors: list[str]) -> MonitorConfig:
    """``raw`` as a :class:`MonitorConfig`, collecting every structural problem into ``errors``.

    msgspec stops at the first problem; a user fixing a file should see them all in one run.
    So each problem is reported, the offending key (or list item, or object missing a required
    key) is set aside, and conversion is tried again; what remains is checked semantically too.
    Lax: a number or boolean written as a string (``threshold: "${MAX_COST}"`` after
    interpolation, or ``"300"`` as the peer's int()/float() accepted) is converted.
    """
    work: Any = None
    for _ in range(_MAX_STRUCTURAL):
        try:
            return msgspec.convert(raw if work is None else work, MonitorConfig, strict=False)
        except msgspec.ValidationError as exc:
            if work is None:
                work = copy.deepcopy(raw)
            message = str(exc)
            errors.append(_explain(message, work, source))
            if not _set_aside(message, work):
                break
    raise ConfigError(errors, file=source)


def _set_aside(message: str, work: dict[str, Any]) -> bool:
    """Remove what ``message`` (a msgspec error) points at from ``work``; False if it cannot."""
    m = _MSG.match(message)
    if m is None:
        return False
    msg, path = m.group("msg"), m.group("path") or ""
    parts: list[str | int] = [
        int(idx) if idx else key for key, idx in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path)
    ]
    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        parts.append(unknown.group(1))
    if not parts:
        return False
    parent: Any = work
    for part in parts[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = parts[-1]
    try:
        if isinstance(parent, list) and isinstance(last, int):
            parent.pop(last)
        elif isinstance(parent, dict) and last in parent:
            del parent[last]
        else:
            return False
    except (IndexError, TypeError):
        return False
    return True


# ``${VAR:-default}`` (shell) and ``${VAR:default}`` (the peer's form) both give a fallback.
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-?([^}]*))?\}")


def _interpolate(value: Any, path: str, errors: list[str], source: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            errors.append(
                f"{source}: {path or '<root>'}: environment variable {name} is not set "
                f"(use ${{{name}:-default}} for a fallback)"
            )
            return m.group(0)

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), errors, source)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", errors, source) for i, v in enumerate(value)]
    return value


_MSG = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}


def _explain(message: str, raw: Any, source: str) -> str:
    """Turn a msgspec validation message into ``file: key.path: expected ..., got ...``."""
    m = _MSG.match(message)
    assert m is not None
    msg, path = m.group("msg"), (m.group("path") or "")
    path = path.lstrip(".")
    if path.startswith("[") is False and path.startswith("."):
        path = path[1:]
    path = _resolve_keys(path, raw)
    unknown = re.match(r"Object contains unknown field `(.+)`", msg)
    if unknown:
        field = unknown.group(1)
        allowed = _fields_at(path)
        hint = difflib.get_close_matches(field, allowed, n=1)
        where = f"{path}.{field}" if path else field
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        known = f" (known keys: {', '.join(sorted(allowed))})" if allowed and not hint else ""
        return f"{source}: {where}: unknown key{suggestion}{known}"
    missing = re.match(r"Object missing required field `(.+)`", msg)
    if missing:
        where = f"{path}.{missing.group(1)}" if path else missing.group(1)
        return f"{source}: {where}: required key is missing"
    expected = re.match(r"Expected `(.+?)`, got `(.+?)`", msg)
    if expected:
        want = " or ".join(
            _EXPECTED.get(p.strip(), p.strip()) for p in expected.group(1).split("|")
        )
        got = _value_at(raw, path)
        return f"{source}: {path or '<root>'}: expected {want}, got {got!r}"
    return f"{source}: {path or '<root>'}: {msg[0].lower() + msg[1:] if msg else 'invalid'}"


def _type_at(path: str) -> Any:
    """The config type at ``path``: a struct class, a ``msgspec.inspect`` type, or ``None``."""
    typ: Any = MonitorConfig
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if typ is None:
            return None
        if part.startswith("["):
            typ = _inner(typ, list)
            continue
        info = typ if isinstance(typ, msgspec.inspect.Type) else msgspec.inspect.type_info(typ)
        fields = getattr(info, "fields", ())
        match = next((f for f in fields if f.encode_name == part), None)
        typ = _inner(typ, dict) if match is None else _unwrap(match.type)
    return _unwrap(typ)


def _fields_at(path: str) -> list[str]:
    """The keys allowed at ``path`` (walks the struct types)."""
    typ = _type_at(path)
    if typ is None:
        return []
    fields = getattr(msgspec.inspect.type_info(typ) if isinstance(typ, type) else typ, "fields", ())
    return [f.encode_name for f in fields]


_SCALARS: Final[dict[type, type]] = {
    msgspec.inspect.StrType: str,
    msgspec.inspect.IntType: int,
    msgspec.inspect.FloatType: float,
    msgspec.inspect.BoolType: bool,
}


def _resolve_keys(path: str, raw: Any) -> str:
    """msgspec names a mapping's value ``[...]``; put the key of the value that fails there."""
    while "[...]" in path:
        head, _, tail = path.partition("[...]")
        node = _value_at(raw, head)
        at = _type_at(head)
        inner = _inner(at, dict) if at is not None else None
        target = inner if isinstance(inner, type) else _SCALARS.get(type(inner))
        if not isinstance(node, dict) or target is None:
            return path
        bad = None
        for key, value in node.items():
            try:
                msgspec.convert(value, target, strict=False)
            except msgspec.ValidationError:
                bad = key
                break
        if bad is None:
            return path
        path = f"{head}.{bad}{tail}"
    return path


def _unwrap(typ: Any) -> Any:
    if isinstance(typ, msgspec.inspect.StructType):
        return typ.cls
    return typ


def _inner(typ: Any, container: type) -> Any:
    info = typ if isinstance(typ, msgspec.inspect.Type) else msgspec.inspect.type_info(typ)
    if container is list and isinstance(info, msgspec.inspect.ListType):
        return _unwrap(info.item_type)
    if container is dict and isinstance(info, msgspec.inspect.DictType):
        return _unwrap(info.value_type)
    if isinstance(info, msgspec.inspect.StructType):
        return info.cls
    return None


def _value_at(raw: Any, path: str) -> Any:
    node = raw
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return node


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


# -- semantic checks ----------------------------------------------------------------------


def _semantic_errors(config: MonitorConfig, source: str) -> list[str]:
    from redline.detect.conditions import ConditionError, compile_condition
    from redline.metrics.snapshot import METRIC_NAMES

    errors: list[str] = []

    def err(path: str, message: str) -> None:
        errors.append(f"{source}: {path}: {message}")

    def check_choice(path: str, value: str, allowed: Any, what: str = "one of") -> None:
        if value not in allowed:
            hint = difflib.get_close_matches(value, list(allowed), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            err(path, f"expected {what} {', '.join(map(repr, allowed))}, got {value!r}{extra}")

    def check_metric(path: str, metric: str) -> None:
        if metric not in METRIC_NAMES:
            hint = difflib.get_close_matches(metric, sorted(METRIC_NAMES), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            err(path, f"unknown metric {metric!r}{extra}")

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
        check_choice(f"{p}.type", ch.type, CHANNEL_TYPES)
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

    from redline.alerts.rules import check_template, resolve_metric

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
            hint = difflib.get_close_matches(str(exc.args[0]), known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
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
        check_choice("storage.backend", s.backend, ("memory", "jsonl", "sqlite", "postgres"))
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
    if s.flush_interval_seconds <= 0:
        err("storage.flush_interval_seconds", "expected a positive number of seconds")
    errors.extend(server_config_errors(config.server, source))
    if config.events.max_data_bytes < 256:
        err("events.max_data_bytes", "expected at least 256")
    return errors
