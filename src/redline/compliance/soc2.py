"""The SOC 2 evidence report: one JSON document, streamed section by section.

Sections, mapped to the Trust Services Criteria where the evidence fits:

================================  ==============================================================
section                           what it holds
================================  ==============================================================
``period``                        the requested window and the first/last event in it
``cc8_1_change_management``       CC8.1: the configuration in force (metadata, policies, rules,
                                  channels without secrets) and its fingerprint; retention
``cc6_1_logical_access``          CC6.1: every kill and revive (actor, reason, scope, target,
                                  time; time to recover on each revive), kills active now, events
                                  recorded while killed, and every denial
``cc7_3_incident_response``       CC7.3: kills as incidents: recovered, open, mean/max time to
                                  recover (MTTR)
``cc7_2_monitoring``              CC7.2: every anomaly (rule, severity, agent, message) and alert
``totals``                        events by type, agent, category and outcome (one pass)
``integrity``                     the chain verification and the signed checkpoint covering the
                                  period, with the public key, to check offline
``manifest``                      the last line (see :mod:`redline.compliance.manifest`)
================================  ==============================================================

Lists are streamed from their own ascending queries (kill and revive are merged by time);
counts come from one pass over the period. Memory is bounded by the number of agents, event
types and kills open at once, never by the number of events.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec

from redline.compliance.manifest import SCHEMAS, HashingWriter, checkpoint_dict, verification_dict
from redline.compliance.report import iso
from redline.events import category_of
from redline.store.base import StoredEvent

if TYPE_CHECKING:
    from redline.compliance.report import ExportContext
    from redline.config import MonitorConfig

__all__ = ["CRITERIA", "config_evidence", "outcome_of", "write_soc2"]

_encode = msgspec.json.Encoder().encode

#: The criteria the report speaks to, and the section holding the evidence.
CRITERIA: Final[dict[str, dict[str, str]]] = {
    "CC6.1": {
        "title": "Logical access security: the ability to stop an agent, and its use",
        "section": "cc6_1_logical_access",
    },
    "CC7.2": {
        "title": "System monitoring: anomalies detected and alerts raised",
        "section": "cc7_2_monitoring",
    },
    "CC7.3": {
        "title": "Incident response: kills as incidents and the time to recover",
        "section": "cc7_3_incident_response",
    },
    "CC8.1": {
        "title": "Change management: the configuration in force",
        "section": "cc8_1_change_management",
    },
}
_OK_STATUS: Final = frozenset({"ok", "success"})


def outcome_of(event_type: str, status: str | None) -> str:
    """``denied``, ``error``, ``ok`` or ``none`` (no outcome recorded) for one event."""
    if event_type == "denial":
        return "denied"
    if status is None:
        return "error" if event_type == "error" else "none"
    return "ok" if status in _OK_STATUS else "error"


def config_evidence(config: MonitorConfig) -> dict[str, Any]:
    """What was configured, without secrets (channel URLs, keys and passwords are left out)."""
    channels = [
        {"type": c.type, "name": c.name or c.type, "min_severity": c.min_severity}
        for c in config.alerts.channels
        if c.enabled
    ]
    evidence: dict[str, Any] = {
        "version": config.version,
        "source": config.source or None,
        "metadata": msgspec.to_builtins(config.metadata),
        "kill_switch": {
            "enabled": config.kill_switch.enabled,
            "default_ttl_seconds": config.kill_switch.default_ttl_seconds,
            "policies": [
                {
                    "name": p.name,
                    "metric": p.metric,
                    "operator": p.operator,
                    "threshold": p.threshold,
                    "action": p.action,
                    "severity": p.severity,
                    "agent": p.agent,
                }
                for p in config.kill_switch.policies
            ],
        },
        "anomaly_rules": [
            {
                "name": r.name,
                "metric": r.metric,
                "z_threshold": r.z_threshold,
                "severity": r.severity,
                "action": r.action,
                "agent": r.agent,
            }
            for r in config.anomaly_detection.rules
        ]
        if config.anomaly_detection.enabled
        else [],
        "detectors": {
            name: getattr(config.detectors, name).enabled
            for name in ("loop", "stuck", "suspicious", "drift")
        },
        "redaction_enabled": config.redaction.enabled,
        "alert_channels": channels,
        "storage_backend": config.storage.backend,
        "durable_sync_types": list(config.storage.sync_types),
    }
    fingerprint = hashlib.sha256(msgspec.json.Encoder(order="sorted").encode(evidence)).hexdigest()
    evidence["fingerprint_sha256"] = fingerprint
    return evidence


def retention_policy(config: MonitorConfig) -> dict[str, int | None]:
    """Days kept per category (``None``: kept until deleted)."""
    days: dict[str, int | None] = msgspec.structs.asdict(config.retention)
    return days


def write_soc2(ctx: ExportContext, out: HashingWriter) -> None:
    """The SOC 2 document's content (everything before the manifest line)."""
    w = out.write
    first, last = ctx.edge("asc"), ctx.edge("desc")
    until = ctx.filters.until if ctx.filters.until is not None else ctx.now
    head = {
        "format": SCHEMAS["soc2"],
        "generated_at": iso(ctx.now),
        "filters": ctx.filters.to_dict(),
        "system": {
            **msgspec.to_builtins(ctx.config.metadata),
            "store": ctx.store.backend,
        },
        "criteria": CRITERIA,
        "period": {
            "since": iso(ctx.filters.since),
            "until": iso(ctx.filters.until),
            "first_event_at": iso(first.event.timestamp) if first else None,
            "last_event_at": iso(last.event.timestamp) if last else None,
        },
        "retention_policy": {"unit": "days", **retention_policy(ctx.config)},
        "cc8_1_change_management": {
            "criterion": "CC8.1",
            "configuration": config_evidence(ctx.config),
            "note": "the configuration the exporting monitor runs with; Redline does not "
            "record configuration changes as events",
        },
    }
    w(_encode(head)[:-1] + b",\n")

    # CC6.1: kills and revives merged by time, then denials. CC7.3 is computed on the way.
    w(b'"cc6_1_logical_access":{"criterion":"CC6.1","kill_switch_events":[\n')
    incidents = _Incidents()
    merged = heapq.merge(
        ctx.rows(event_type="kill"),
        ctx.rows(event_type="revive"),
        key=lambda s: (s.event.timestamp, s.seq),
    )
    _write_list(w, (incidents.observe(s) for s in merged))
    w(b"],\n")
    active = [
        {
            "scope": k.scope,
            "target": k.target,
            "actor": k.actor,
            "reason": k.reason,
            "since": iso(k.created_at),
            "expires_at": iso(k.expires_at),
            "policy": k.policy,
        }
        for k in ctx.store.load_kills()
        if not k.expired(ctx.now) and _concerns(k.scope, k.target, ctx.filters.agent)
    ]
    w(b'"active_kills_at_export":' + _encode(active) + b",\n")
    w(b'"denials":[\n')
    denials = _write_list(w, (_denial(s) for s in ctx.rows(event_type="denial")))
    w(
        b"],\n"
        + _encode(
            {
                "kills": incidents.kills,
                "revives": incidents.revives,
                "denial_count": denials,
            }
        )[1:-1]
        + b"},\n"
    )
    w(b'"cc7_3_incident_response":' + _encode(incidents.summary(until)) + b",\n")

    # CC7.2: anomalies and alerts.
    w(b'"cc7_2_monitoring":{"criterion":"CC7.2","anomalies":[\n')
    anomaly_sev: Counter[str] = Counter()
    anomaly_rule: Counter[str] = Counter()
    n_anomalies = _write_list(
        w, (_anomaly(s, anomaly_sev, anomaly_rule) for s in ctx.rows(event_type="anomaly"))
    )
    w(b'],\n"alerts":[\n')
    alert_sev: Counter[str] = Counter()
    alert_kind: Counter[str] = Counter()
    n_alerts = _write_list(
        w, (_alert(s, alert_sev, alert_kind) for s in ctx.rows(event_type="alert"))
    )
    summary = {
        "anomaly_count": n_anomalies,
        "anomalies_by_severity": dict(anomaly_sev),
        "anomalies_by_rule": dict(anomaly_rule),
        "alert_count": n_alerts,
        "alerts_by_severity": dict(alert_sev),
        "alerts_by_kind": dict(alert_kind),
    }
    w(b"],\n" + _encode(summary)[1:-1] + b"},\n")

    # Totals: one pass over every event in the period (the manifest's main pass).
    by_type: Counter[str] = Counter()
    by_agent: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    blocked = 0
    cost = 0.0
    for stored in ctx.stream():
        e = stored.event
        by_type[e.event_type] += 1
        by_agent[e.agent] += 1
        by_outcome[outcome_of(e.event_type, e.status)] += 1
        if e.killed_scope is not None:
            blocked += 1
        if e.cost_usd is not None:
            cost += e.cost_usd
    by_category: Counter[str] = Counter()
    for event_type, n in by_type.items():
        by_category[category_of(event_type)] += n
    totals = {
        "events": ctx.count,
        "first_seq": ctx.first_seq,
        "last_seq": ctx.last_seq,
        "by_type": dict(sorted(by_type.items())),
        "by_agent": dict(sorted(by_agent.items())),
        "by_category": dict(sorted(by_category.items())),
        "by_outcome": {k: by_outcome.get(k, 0) for k in ("ok", "error", "denied", "none")},
        "recorded_while_killed": blocked,
        "cost_usd": round(cost, 6),
    }
    w(b'"totals":' + _encode(totals) + b",\n")

    report = ctx.verification()
    integrity = {
        "verification": verification_dict(report),
        "checkpoint": checkpoint_dict(ctx.checkpoint()),
        "how_to_verify": (
            "hash = sha256('redline:v1:' + seq + ':' + prev_hash + ':' + sha256(canonical "
            "payload)); the checkpoint's signature is Ed25519 over signed_message with "
            "public_key. Pin the public key from a source you trust (the anchor file shipped "
            "off-box), not from this report. Run `redline verify` on the store for the full walk."
        ),
    }
    w(b'"integrity":' + _encode(integrity) + b",\n")


def _write_list(write: Any, items: Iterator[dict[str, Any]]) -> int:
    n = 0
    for item in items:
        write((b",\n" if n else b"") + _encode(item))
        n += 1
    if n:
        write(b"\n")
    return n


def _base(stored: StoredEvent) -> dict[str, Any]:
    e = stored.event
    return {
        "seq": stored.seq,
        "time": iso(e.timestamp),
        "timestamp": e.timestamp,
        "agent": e.agent,
        "session_id": e.session_id,
    }


class _Incidents:
    """Pairs each revive with the kill it lifted; keeps only the kills still open."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], dict[str, Any]] = {}
        self.kills = 0
        self.revives = 0
        self.recovered = 0
        self.expired = 0
        self.ttr_sum = 0.0
        self.ttr_max: float | None = None

    def observe(self, stored: StoredEvent) -> dict[str, Any]:
        e = stored.event
        d = e.data
        scope = str(d.get("scope") or "")
        target = str(d.get("target") or "")
        item = _base(stored)
        item.update(action=e.event_type, scope=scope, target=target, actor=d.get("actor"))
        if e.event_type == "kill":
            self.kills += 1
            item.update(
                reason=d.get("reason"), policy=d.get("policy"), expires_at=iso(d.get("expires_at"))
            )
            self.open[(scope, target)] = {
                "kill_seq": stored.seq,
                "killed_at": e.timestamp,
                "actor": d.get("actor"),
                "reason": d.get("reason"),
            }
            return item
        self.revives += 1
        kill = self.open.pop((scope, target), None)
        killed_at = kill["killed_at"] if kill else _float(d.get("killed_at"))
        ttr = e.timestamp - killed_at if killed_at is not None else None
        expired = bool(d.get("expired"))
        item.update(
            reason=kill["reason"] if kill else d.get("kill_reason"),
            expired=expired,
            kill_seq=kill["kill_seq"] if kill else None,
            killed_at=iso(killed_at),
            time_to_recover_seconds=ttr,
        )
        if ttr is not None:
            self.recovered += 1
            self.expired += expired
            self.ttr_sum += ttr
            self.ttr_max = ttr if self.ttr_max is None else max(self.ttr_max, ttr)
        return item

    def summary(self, until: float) -> dict[str, Any]:
        return {
            "criterion": "CC7.3",
            "incidents": self.kills,
            "recovered": self.recovered,
            "recovered_by_ttl": self.expired,
            "mttr_seconds": self.ttr_sum / self.recovered if self.recovered else None,
            "max_time_to_recover_seconds": self.ttr_max,
            "open_at_period_end": [
                {
                    "scope": scope,
                    "target": target,
                    "kill_seq": k["kill_seq"],
                    "killed_at": iso(k["killed_at"]),
                    "actor": k["actor"],
                    "reason": k["reason"],
                    "open_for_seconds": max(0.0, until - k["killed_at"]),
                }
                for (scope, target), k in self.open.items()
            ],
        }


def _concerns(scope: str, target: str, agent: str | None) -> bool:
    """Whether a kill record concerns the export's agent filter (global kills concern all)."""
    return agent is None or scope != "agent" or target == agent


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _denial(stored: StoredEvent) -> dict[str, Any]:
    e = stored.event
    item = _base(stored)
    item.update(
        user=e.user,
        tool=e.tool,
        reason=e.data.get("reason"),
        policy=e.data.get("policy") or e.data.get("rule"),
        data=e.data,
    )
    return item


def _anomaly(stored: StoredEvent, by_sev: Counter[str], by_rule: Counter[str]) -> dict[str, Any]:
    d = stored.event.data
    item = _base(stored)
    item.update(
        kind=d.get("kind"),
        rule=d.get("rule"),
        severity=d.get("severity"),
        message=d.get("message"),
        metric=d.get("metric"),
        value=d.get("value"),
        threshold=d.get("threshold"),
        z_score=d.get("z_score"),
        action=d.get("action"),
    )
    by_sev[str(d.get("severity"))] += 1
    by_rule[str(d.get("rule"))] += 1
    return item


def _alert(stored: StoredEvent, by_sev: Counter[str], by_kind: Counter[str]) -> dict[str, Any]:
    d = stored.event.data
    item = _base(stored)
    item.update(
        id=d.get("id"),
        kind=d.get("kind"),
        rule=d.get("rule"),
        severity=d.get("severity") or stored.event.level,
        title=d.get("title"),
        message=d.get("message"),
        state=d.get("state"),
    )
    by_sev[str(item["severity"])] += 1
    by_kind[str(d.get("kind"))] += 1
    return item
