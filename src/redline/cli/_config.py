"""``validate`` and ``inspect``: is the config right, and what will it do.

``inspect`` never prints a secret: URLs keep their scheme, host and plain path words (query values,
user info and token-like path segments become ``***``), header values, HMAC secrets, routing keys,
API keys, passwords, tokens and DSN passwords are masked.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import msgspec
import typer

from redline.cli._common import (
    CliError,
    State,
    count_of,
    emit_json,
    out_console,
    text,
)
from redline.config import (
    AlertChannelConfig,
    AnomalyRuleConfig,
    KillPolicyConfig,
    MonitorConfig,
    load_config,
    resolve_backend,
)
from redline.exceptions import ConfigError

__all__ = ["inspect", "mask_url", "validate"]

MASK: Final = "***"
_SECRET_KEYS: Final = frozenset(
    {"secret", "routing_key", "api_key", "password", "token", "token_sha256", "headers"}
)
#: Path segments shown as they are: short lower-case words (``api``, ``notify``) and versions.
#: Anything else (mixed case, digits, long runs: where webhook URLs keep their tokens) is masked.
_PLAIN_SEGMENT = re.compile(r"[a-z][a-z_.-]{0,23}|v\d{1,2}|")
_DSN_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|\S+)")


def mask_url(url: str) -> str:
    """A URL safe to print: scheme, host, port and plain path words; everything else masked."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK
    netloc = (f"{MASK}@" if "@" in parts.netloc else "") + (parts.hostname or "")
    if port is not None:
        netloc += f":{port}"
    path = "/".join(s if _PLAIN_SEGMENT.fullmatch(s) else MASK for s in parts.path.split("/"))
    query = "&".join(f"{k}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True)) or (
        MASK if parts.query else ""
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def mask_dsn(dsn: str) -> str:
    """A database DSN with its password masked (URL or ``key=value`` form)."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return MASK
        if parts.password:
            user = parts.username or ""
            host = parts.netloc.rsplit("@", 1)[1]
            return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}", query=""))
        return urlunsplit(parts._replace(query=""))
    return _DSN_PASSWORD.sub(lambda m: f"{m.group(1)}={MASK}", dsn)


def masked(value: Any, key: str = "") -> Any:
    """The config as builtins with every secret masked (for ``inspect --json``)."""
    if isinstance(value, dict):
        if key == "headers":
            return dict.fromkeys(value, MASK)
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(value, str) and value:
        if key in _SECRET_KEYS:
            return MASK
        if key in ("url", "endpoint"):
            return mask_url(value)
        if key == "dsn":
            return mask_dsn(value)
    return value


# -- validate -----------------------------------------------------------------------------


def validate(
    ctx: typer.Context,
    file: Annotated[
        str | None, typer.Argument(help="Config file (default: -c, else monitor.yaml).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a config file: print OK with what it holds, or every error (exit 2)."""
    state = State.of(ctx)
    path = file or state.file
    if path is None:
        raise CliError("no config to validate: pass a file, use -c FILE, or create monitor.yaml")
    try:
        config = load_config(path)
    except FileNotFoundError:
        raise CliError(f"config file not found: {path}") from None
    except ConfigError as exc:
        if state.wants_json(as_json):
            emit_json({"ok": False, "file": path, "errors": exc.errors})
            raise typer.Exit(2) from None
        raise
    counts = {
        "policies": len(config.kill_switch.policies),
        "rules": len(config.anomaly_detection.rules),
        "channels": len(config.alerts.channels),
    }
    if state.wants_json(as_json):
        emit_json({"ok": True, "file": path, **counts})
        return
    out_console().print(
        text(
            f"OK: {path} ({count_of(counts['policies'], 'policy', 'policies')}, "
            f"{count_of(counts['rules'], 'rule')}, {count_of(counts['channels'], 'channel')})"
        )
    )


# -- inspect ------------------------------------------------------------------------------

_ACTIONS: Final = {
    "kill_agent": "kill agent",
    "kill_session": "kill session",
    "kill_global": "kill all agents",
    "alert": "alert",
}


def _num(value: float) -> str:
    return f"{value:g}"


def policy_words(p: KillPolicyConfig, default_window: int) -> str:
    """``kill agent when cost_per_minute > 5 over 300 s`` (plus scope, TTL and severity)."""
    window = p.window_seconds or default_window
    words = (
        f"{_ACTIONS.get(p.action, p.action)} when {p.metric} {p.operator} {_num(p.threshold)} "
        f"over {window} s"
    )
    if p.agent != "*":
        words += f", for agents matching {p.agent!r}"
    if p.min_events > 1:
        words += f", once at least {p.min_events} events are in the window"
    if p.ttl_seconds:
        words += f", lifted after {_num(p.ttl_seconds)} s"
    return f"{p.name}: {words} (severity {p.severity})"


def rule_words(r: AnomalyRuleConfig, interval: int, min_samples: int) -> str:
    """A z-score rule in words."""
    direction = {"both": "either way", "up": "upwards", "down": "downwards"}.get(
        r.direction, r.direction
    )
    per = "each event's value" if r.per == "event" else f"each {interval} s interval"
    words = (
        f"{_ACTIONS.get(r.action, r.action)} when {r.metric} is {_num(r.z_threshold)} standard "
        f"deviations from its baseline {direction} (scored on {per}, after "
        f"{r.min_samples or min_samples} samples; cooldown {_num(r.cooldown_seconds)} s)"
    )
    if r.agent != "*":
        words += f", for agents matching {r.agent!r}"
    if r.condition:
        words += f", only if {r.condition}"
    return f"{r.name}: {words} (severity {r.severity})"


def channel_words(ch: AlertChannelConfig) -> str:
    """An alert channel, secrets masked."""
    name = f" {ch.name!r}" if ch.name else ""
    parts: list[str] = []
    if ch.type in ("file", "jsonl"):
        parts.append(f"to {ch.path}")
    if ch.url:
        parts.append(f"to {mask_url(ch.url)}")
    elif ch.type == "pagerduty":
        parts.append("to the PagerDuty Events API v2")
    elif ch.type == "opsgenie":
        parts.append("to the OpsGenie Alert API")
    if ch.type == "email":
        server = f"{ch.host}:{ch.port}" if ch.port else ch.host
        parts.append(f"via {server or '?'} from {ch.from_ or '?'} to {', '.join(ch.to) or '?'}")
        if ch.username:
            parts.append(f"as {ch.username} (password {'set' if ch.password else 'not set'})")
        parts.append("STARTTLS" if ch.starttls else "no STARTTLS")
    if ch.headers:
        parts.append("headers " + ", ".join(f"{k}: {MASK}" for k in ch.headers))
    if ch.secret:
        parts.append(f"HMAC-signed (secret {MASK})")
    if ch.routing_key:
        parts.append(f"routing key {MASK}")
    if ch.api_key:
        parts.append(f"API key {MASK}")
    state = "" if ch.enabled else " (disabled)"
    return f"{ch.type}{name}{state}: {' '.join(parts) + '; ' if parts else ''}" + (
        f"severity {ch.min_severity} and above"
    )


def describe(config: MonitorConfig, label: str) -> list[tuple[str, list[str]]]:
    """The config as (heading, lines) sections, in words."""
    sections: list[tuple[str, list[str]]] = []
    meta = config.metadata
    about = f"{label}"
    if meta.name:
        about += f": {meta.name}" + (f" ({meta.description})" if meta.description else "")
    sections.append(("Config", [about]))

    st = config.storage
    backend = resolve_backend(st)
    if backend == "memory":
        where = (
            f"memory (newest {st.max_events} events within {st.max_memory_bytes // 1048576} MiB; "
            "nothing persists, and the CLI can neither "
            "read these events nor reach this monitor's kill switch)"
        )
    elif backend == "postgres":
        where = f"postgres at {mask_dsn(st.dsn or '') or 'REDLINE_PG_DSN'}"
    else:
        where = f"{backend} at {st.path}"
    storage = [
        where,
        f"writer: queue {st.queue_size}, batches of {st.batch_size}, every "
        f"{_num(st.flush_interval_seconds)} s; when full: {st.full_policy}",
        f"written at once: {', '.join(st.sync_types) or 'nothing'}",
    ]
    if backend == "sqlite":
        storage.append(
            f"signed checkpoints every {st.checkpoint_every} events or "
            f"{_num(st.checkpoint_interval_seconds)} s"
            + (f"; anchors appended to {st.anchor_path}" if st.anchor_path else "")
        )
    sections.append(("Storage", storage))

    m = config.metrics
    extra = sorted(
        {*m.windows, *(p.window_seconds for p in config.kill_switch.policies if p.window_seconds)}
        - {m.default_window_seconds}
    )
    sections.append(
        (
            "Windows",
            [
                f"default {m.default_window_seconds} s"
                + (f", also {', '.join(f'{w} s' for w in extra)}" if extra else "")
                + f"; ad-hoc reads up to {m.max_window_seconds} s; at most {m.max_agents} agents"
            ],
        )
    )

    b = config.baselines
    sections.append(
        (
            "Baselines",
            [
                f"{b.method} on {', '.join(b.metrics) or 'nothing'}, sampled every "
                f"{b.interval_seconds} s; rules score after {b.min_samples} samples"
                + (f"; saved to {b.storage_path}" if b.storage_path else "")
                if b.enabled
                else "off"
            ],
        )
    )

    ks = config.kill_switch
    kill_lines = [policy_words(p, m.default_window_seconds) for p in ks.policies] or [
        "no automatic policies"
    ]
    if not ks.enabled:
        kill_lines = ["off: automatic policies are not evaluated", *kill_lines]
    if ks.default_ttl_seconds:
        kill_lines.append(f"kills are lifted after {_num(ks.default_ttl_seconds)} s by default")
    sections.append(("Kill policies", kill_lines))

    ad = config.anomaly_detection
    rules = [rule_words(r, b.interval_seconds, b.min_samples) for r in ad.rules] or ["none"]
    if not ad.enabled:
        rules = ["off", *rules]
    sections.append(("Anomaly rules", rules))

    d = config.detectors
    det: list[str] = []
    det.append(
        f"loop: {_ACTIONS.get(d.loop.action, d.loop.action)} when the same tool is called with "
        f"the same arguments {d.loop.repeats} times in {_num(d.loop.window_seconds)} s"
        if d.loop.enabled
        else "loop: off"
    )
    det.append(
        f"stuck: {_ACTIONS.get(d.stuck.action, d.stuck.action)} after the same action "
        f"{d.stuck.repeats} times in a row"
        if d.stuck.enabled
        else "stuck: off"
    )
    det.append(
        f"suspicious: {_ACTIONS.get(d.suspicious.action, d.suspicious.action)} on actions "
        f"containing {', '.join(d.suspicious.patterns) or 'nothing'}"
        if d.suspicious.enabled
        else "suspicious: off"
    )
    det.append(
        f"drift: {_ACTIONS.get(d.drift.action, d.drift.action)} when the mix of event types "
        f"moves more than {_num(d.drift.threshold)} from its profile (after "
        f"{d.drift.min_intervals} intervals)"
        if d.drift.enabled
        else "drift: off"
    )
    sections.append(("Detectors", det))

    sections.append(
        ("Alert channels", [channel_words(ch) for ch in config.alerts.channels] or ["none"])
    )

    r = config.redaction
    if r.enabled:
        scrub = ["secret-looking keys" + (f" and {', '.join(r.keys)}" if r.keys else "")]
        if r.emails:
            scrub.append("email addresses")
        if r.cards:
            scrub.append("card numbers")
        if r.patterns:
            scrub.append(f"patterns {', '.join(sorted(r.patterns))}")
        sections.append(("Redaction", [f"scrubs {', '.join(scrub)} from event data"]))
    else:
        sections.append(("Redaction", ["off: event data is stored as recorded"]))

    ret = config.retention
    days = [
        f"{name} {getattr(ret, name)} d" if getattr(ret, name) is not None else f"{name} forever"
        for name in ("action", "decision", "error", "security", "performance", "user")
    ]
    sections.append(("Retention", [", ".join(days) + " (applied by 'redline prune')"]))

    ev = config.events
    sections.append(
        (
            "Bad input",
            [
                ("strict: bad events raise" if ev.strict else "repaired or dropped, and counted")
                + f"; data up to {ev.max_data_bytes} bytes; clock skew up to "
                f"{_num(ev.max_clock_skew_seconds)} s"
            ],
        )
    )
    if config.agents:
        sections.append(
            (
                "Agents tracked",
                [
                    f"{name}: "
                    + ("off" if not a.enabled else (", ".join(a.event_types) or "all event types"))
                    for name, a in sorted(config.agents.items())
                ],
            )
        )
    return sections


def inspect(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the config (secrets masked) as JSON.")
    ] = False,
) -> None:
    """Print what the config will do: storage, windows, policies, rules, channels, retention."""
    state = State.of(ctx)
    config = state.config()
    sections = describe(config, state.label)
    if state.wants_json(as_json):
        raw = masked(msgspec.to_builtins(config))
        raw.pop("__source__", None)
        emit_json(
            {
                "file": state.file,
                "backend": resolve_backend(config.storage),
                "summary": dict(sections),
                "config": raw,
            }
        )
        return
    console = out_console()
    for heading, lines in sections:
        console.print(text(heading, "bold"))
        for line in lines:
            console.print(text(f"  {line}"))
