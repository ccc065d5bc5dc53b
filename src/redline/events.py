"""Agent events: the one record type everything else is built from.

An :class:`AgentEvent` is a ``msgspec.Struct``: cheap to build, cheap to encode, and field for
field the published peer's ``AgentEvent`` (``timestamp, agent, event_type, data, session_id, user,
cost_usd, latency_ms, tags``) so code written for it keeps working; Redline's own fields follow.

Each event type belongs to one *category* (seed 001's table: actions, decisions, errors, security,
performance, user interactions). Categories drive retention and compliance reports.
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

__all__ = [
    "CATEGORIES",
    "CRITICAL_TYPES",
    "EVENT_TYPES",
    "GOVERNANCE_TYPES",
    "AgentEvent",
    "EventType",
    "category_of",
]


class AgentEvent(msgspec.Struct, omit_defaults=True, gc=False):
    """One thing an agent did, or that happened to it.

    ``timestamp`` is seconds since the epoch (UTC) and defaults to now. ``cost_usd`` and
    ``latency_ms`` feed the cost and latency metrics; ``tokens_*`` the token counters; ``tool``
    and ``status`` the per-tool counts and ``tool_failure_rate`` (a ``tool_call`` whose
    ``status`` is anything but ``None``, ``"ok"`` or ``"success"`` counts as a failure).

    **One token convention** (integrations normalise to it): ``tokens_in`` is every input token
    the model read, *including* cached input; ``tokens_cached`` is the part of ``tokens_in`` read
    from the provider's prompt cache and ``tokens_cache_write`` the part written to it;
    ``tokens_out`` is every output token, *including* ``tokens_reasoning``. (Anthropic reports
    cache reads and writes apart from ``input_tokens``; its integration adds them in.)
    The two newer fields come last so that positional construction written for earlier
    releases keeps its meaning.

    ``cost_estimated`` (``True``, or unset) tells a computed cost from a reported one: an event with a model and
    tokens but no ``cost_usd`` is priced from its tokens (:mod:`redline.pricing`) and marked.

    ``killed_scope`` is set by the monitor, not by callers: an event recorded while its agent,
    session or the fleet is killed is stored as evidence with the covering scope here, and does
    not feed the metrics that tripped the switch.
    """

    timestamp: float = msgspec.field(default_factory=time.time)
    agent: str = ""
    event_type: str = "action"
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    session_id: str | None = None
    user: str | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    tenant: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_cached: int | None = None
    model: str | None = None
    tool: str | None = None
    status: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    level: str | None = None
    killed_scope: str | None = None
    tokens_cache_write: int | None = None
    tokens_reasoning: int | None = None
    cost_estimated: bool | None = None

    @property
    def category(self) -> str:
        """The seed-001 category this event's type belongs to (``"action"`` if unknown)."""
        return category_of(self.event_type)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with every non-default field, as stored and exported."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class EventType:
    """The event types that carry meaning. Other types are allowed and stored as they are."""

    ACTION: Final = "action"
    LLM_CALL: Final = "llm_call"
    TOOL_CALL: Final = "tool_call"
    DECISION: Final = "decision"
    DENIAL: Final = "denial"
    APPROVAL_REQUEST: Final = "approval_request"
    APPROVAL_RESPONSE: Final = "approval_response"
    GUARDRAIL_TRIGGER: Final = "guardrail_trigger"
    COST: Final = "cost"
    ERROR: Final = "error"
    SECURITY: Final = "security"
    USER_INPUT: Final = "user_input"
    SESSION_START: Final = "session_start"
    SESSION_END: Final = "session_end"
    KILL: Final = "kill"
    REVIVE: Final = "revive"
    ANOMALY: Final = "anomaly"
    ALERT: Final = "alert"
    BUDGET: Final = "budget"


#: Category of every known type. Seed 001's table: actions 30 d, decisions 90 d, errors 1 y,
#: security 2 y, performance 30 d, user interactions as configured.
_CATEGORY: Final[dict[str, str]] = {
    "action": "action",
    "tool_call": "action",
    "session_start": "action",
    "session_end": "action",
    "decision": "decision",
    "approval_request": "decision",
    "approval_response": "decision",
    "error": "error",
    "denial": "security",
    "guardrail_trigger": "security",
    "security": "security",
    "kill": "security",
    "revive": "security",
    "anomaly": "security",
    "alert": "security",
    "budget": "decision",
    "llm_call": "performance",
    "cost": "performance",
    "user_input": "user",
}

EVENT_TYPES: Final[frozenset[str]] = frozenset(_CATEGORY)
CATEGORIES: Final[tuple[str, ...]] = (
    "action",
    "decision",
    "error",
    "security",
    "performance",
    "user",
)

#: Governance events Redline writes itself: stored and published, never counted as activity.
GOVERNANCE_TYPES: Final[frozenset[str]] = frozenset(
    {"anomaly", "alert", "kill", "revive", "budget"}
)

#: Types whose loss would hide a governance action; the store commits them synchronously
#: when ``durability`` asks for it.
CRITICAL_TYPES: Final[frozenset[str]] = frozenset({"kill", "revive", "denial", "security", "alert"})


def category_of(event_type: str) -> str:
    """Map an event type to its category; unknown types are actions."""
    return _CATEGORY.get(event_type, "action")
