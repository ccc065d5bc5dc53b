"""The GDPR subject-access report for one data subject (a ``user``): Art. 15 and Art. 30.

* ``article_15``: every event recorded about the user (streamed, oldest first, with its chain
  position and hashes), the categories of personal data present, the purposes they are processed
  for, how long each is kept, who receives data (alert channel *types*, never their addresses or
  secrets), and where the data came from.
* ``article_30``: the record of processing the controller keeps: controller (from the config's
  ``metadata``), purposes, categories of subjects and data, recipients, retention, security
  measures.

Purposes default to :data:`DEFAULT_PURPOSES`; pass ``purposes={"user": "..."}`` to state your own.
Only events whose ``user`` field is the subject are included: events about a person that were
recorded without ``user`` cannot be found by this report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from redline.compliance.jsonexport import write_json_list
from redline.compliance.manifest import SCHEMAS, HashingWriter
from redline.compliance.report import iso
from redline.compliance.soc2 import retention_policy
from redline.events import CATEGORIES, category_of
from redline.store.base import StoredEvent

if TYPE_CHECKING:
    from redline.compliance.report import ExportContext
    from redline.config import MonitorConfig

__all__ = ["DATA_DESCRIPTIONS", "DEFAULT_PURPOSES", "recipients", "write_gdpr"]

_encode = msgspec.json.Encoder().encode

#: Why each category is processed, unless the controller says otherwise.
DEFAULT_PURPOSES: Final[dict[str, str]] = {
    "action": "service delivery and audit",
    "decision": "accountability for automated decisions and audit",
    "error": "service reliability and fault diagnosis",
    "security": "security monitoring and fraud prevention",
    "performance": "capacity, cost and performance management",
    "user": "service delivery and support of the user's requests",
}
#: What each category of event holds, in words a data subject can read.
DATA_DESCRIPTIONS: Final[dict[str, str]] = {
    "action": "actions and tool calls an AI agent performed for or about you",
    "decision": "decisions an agent made and approvals requested or given",
    "error": "errors that occurred while handling your requests",
    "security": "access denials, guardrail triggers and security events",
    "performance": "model calls with their cost, latency and token counts",
    "user": "inputs you gave to an agent",
}


def recipients(config: MonitorConfig) -> list[dict[str, str]]:
    """Who receives data: enabled alert channels by type and name (no URLs, keys or secrets)."""
    return [
        {"type": c.type, "name": c.name or c.type, "receives": "alerts (agent, session, message)"}
        for c in config.alerts.channels
        if c.enabled
    ]


def _controller(config: MonitorConfig) -> dict[str, Any]:
    meta = config.metadata
    return {
        "name": meta.name or None,
        "contact": meta.author or None,
        "system": meta.description or None,
    }


def write_gdpr(
    ctx: ExportContext, out: HashingWriter, *, purposes: Mapping[str, str] | None = None
) -> None:
    """The GDPR document's content (everything before the manifest line)."""
    config = ctx.config
    all_purposes = {**DEFAULT_PURPOSES, **(purposes or {})}
    retention = retention_policy(config)
    w = out.write
    head = {
        "format": SCHEMAS["gdpr"],
        "generated_at": iso(ctx.now),
        "filters": ctx.filters.to_dict(),
        "data_subject": {"user": ctx.filters.user},
        "controller": _controller(config),
    }
    w(_encode(head)[:-1] + b',\n"article_15":{"events":[\n')
    by_type: Counter[str] = Counter()
    span: list[float] = []

    def tally(events: Iterator[StoredEvent]) -> Iterator[StoredEvent]:
        lo = hi = None
        for stored in events:
            by_type[stored.event.event_type] += 1
            ts = stored.event.timestamp
            if lo is None or ts < lo:
                lo = ts
            if hi is None or ts > hi:
                hi = ts
            yield stored
        if lo is not None and hi is not None:
            span.extend((lo, hi))

    if write_json_list(tally(ctx.stream()), out):
        w(b"\n")
    w(b"],\n")
    first_ts, last_ts = (span[0], span[1]) if span else (None, None)
    by_category: Counter[str] = Counter()
    for event_type, n in by_type.items():
        by_category[category_of(event_type)] += n
    present = [c for c in CATEGORIES if by_category.get(c)]
    who = recipients(config)
    article_15 = {
        "event_count": ctx.count,
        "first_event_at": iso(first_ts),
        "last_event_at": iso(last_ts),
        "events_by_type": dict(sorted(by_type.items())),
        "categories_of_personal_data": {
            c: {"events": by_category[c], "description": DATA_DESCRIPTIONS.get(c, "")}
            for c in present
        },
        "purposes": {c: all_purposes.get(c, "") for c in present},
        "retention_days": {c: retention.get(c) for c in present},
        "recipients": who,
        "source": "recorded by the controller's AI agents and their monitor (Redline)",
        "automated_decision_making": "decision events above record decisions agents made; "
        "ask the controller about their logic and consequences (Art. 22)",
        "rights": "you may request rectification or erasure of this data, restriction of or "
        "objection to its processing, and lodge a complaint with a supervisory authority",
    }
    w(_encode(article_15)[1:-1] + b"},\n")
    article_30 = {
        "controller": _controller(config),
        "purposes": {c: all_purposes.get(c, "") for c in CATEGORIES},
        "categories_of_data_subjects": ["users on whose behalf AI agents act"],
        "categories_of_personal_data": {c: DATA_DESCRIPTIONS[c] for c in CATEGORIES},
        "recipients": who,
        "retention_days": {c: retention.get(c) for c in CATEGORIES},
        "retention_note": "null means kept until deleted; expired events become tombstones "
        "(content erased, chain position kept)",
        "security_measures": _measures(config),
    }
    w(b'"article_30":' + _encode(article_30) + b",\n")


def _measures(config: MonitorConfig) -> list[str]:
    measures = [
        "tamper-evident storage: every event is SHA-256 hash-chained",
        "signed checkpoints (Ed25519) of the chain head",
    ]
    if config.redaction.enabled:
        measures.append("secrets, e-mail addresses and card numbers redacted before storage")
    return measures
