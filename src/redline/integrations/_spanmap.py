"""GenAI spans → Redline events: the one mapping behind the span processor and ``/v1/traces``.

Three conventions are in use in the wild, and a span may carry more than one:

=======================  ===================================================================
OpenTelemetry GenAI      ``gen_ai.operation.name`` (chat, text_completion, generate_content,
                         embeddings, execute_tool, invoke_agent, create_agent),
                         ``gen_ai.request.model``/``response.model``, ``gen_ai.provider.name``
                         (older: ``gen_ai.system``), ``gen_ai.usage.*`` (older:
                         ``prompt_tokens``/``completion_tokens``), ``gen_ai.conversation.id``,
                         ``gen_ai.agent.name``, ``gen_ai.tool.name``, ``error.type``
OpenInference (Phoenix)  ``openinference.span.kind`` (LLM, TOOL, AGENT, EMBEDDING, ...),
                         ``llm.model_name``, ``llm.provider``/``llm.system``,
                         ``llm.token_count.*``, ``llm.cost.total``, ``tool.name``,
                         ``tool.parameters``, ``session.id``, ``user.id``
OpenLLMetry (Traceloop)  ``traceloop.span.kind``, ``traceloop.entity.name``,
                         ``llm.request.type``, ``gen_ai.usage.cache_read_input_tokens`` and
                         its other pre-1.30 token names, ``traceloop.association.properties.*``
=======================  ===================================================================

What becomes what: an inference (chat, completion, embeddings) is ``llm_call``, or ``error``
when the span failed; a tool execution is ``tool_call`` with status ``error`` when it failed;
an agent invocation is an ``action`` (``data.operation = "invoke_agent"``), or ``error``. Every
other span is ignored, cheaply: :func:`genai_kind` looks at a handful of keys and nothing else.

Tokens follow Redline's convention (``tokens_in`` includes cached input), which is also the
GenAI convention's: ``gen_ai.usage.input_tokens`` SHOULD include cache reads and writes. The
agent is ``gen_ai.agent.name``, else the resource attribute named by ``agent_attribute``
(``service.name`` by default) looked up in ``agents`` (a mapping from that value to an agent
name) or used as it is. Everything taken from a span goes through the monitor's redaction when
it is recorded: text attributes land in ``data``, which the monitor scrubs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from redline.events import AgentEvent

__all__ = ["SpanData", "SpanMapper", "genai_kind"]

#: Keys whose presence marks a span as GenAI (checked in this order; the first hit decides).
_MARKERS: Final = (
    "gen_ai.operation.name",
    "openinference.span.kind",
    "traceloop.span.kind",
    "llm.request.type",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.request.model",
)
_LLM_OPS: Final = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_OPENINFERENCE: Final = {
    "LLM": "llm",
    "EMBEDDING": "llm",
    "TOOL": "tool",
    "AGENT": "agent",
}
_TRACELOOP: Final = {"tool": "tool", "agent": "agent"}
_TRACELOOP_LLM: Final = frozenset({"chat", "completion", "embedding", "rerank"})
#: Attributes copied into ``data`` when present (short, non-content metadata).
_META: Final = (
    ("gen_ai.response.id", "response_id"),
    ("gen_ai.response.model", "response_model"),
    ("gen_ai.agent.id", "agent_id"),
    ("gen_ai.tool.call.id", "tool_call_id"),
    ("gen_ai.tool.type", "tool_type"),
    ("gen_ai.request.max_tokens", "max_tokens"),
    ("gen_ai.request.temperature", "temperature"),
    ("langgraph.node", "node"),
)


@dataclass(slots=True)
class SpanData:
    """The parts of a finished span the mapping reads, whatever it came from (the SDK's
    ``ReadableSpan`` or an OTLP message). Ids are lowercase hex; times are nanoseconds."""

    name: str
    attributes: Mapping[str, Any]
    start_ns: int
    end_ns: int
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    error: bool = False
    status_message: str = ""
    resource: Mapping[str, Any] = field(default_factory=dict)
    exception_type: str | None = None
    exception_message: str | None = None


def genai_kind(attributes: Mapping[str, Any]) -> str | None:
    """``"llm"``, ``"tool"`` or ``"agent"`` for a GenAI span; ``None`` (fast) for the rest."""
    for key in _MARKERS:
        value = attributes.get(key)
        if value is None:
            continue
        if key == "gen_ai.operation.name":
            op = str(value)
            if op in _LLM_OPS:
                return "llm"
            if op == "execute_tool":
                return "tool"
            if op in ("invoke_agent", "create_agent"):
                return "agent"
            return None
        if key == "openinference.span.kind":
            return _OPENINFERENCE.get(str(value).upper())
        if key == "traceloop.span.kind":
            kind = _TRACELOOP.get(str(value).lower())
            if kind is not None:
                return kind
            continue
        if key == "llm.request.type":
            return "llm" if str(value).lower() in _TRACELOOP_LLM else None
        return "llm"  # a provider or a model on a span with no operation: an inference
    return None


class SpanMapper:
    """Maps :class:`SpanData` to an :class:`~redline.AgentEvent` (or ``None``)."""

    def __init__(
        self,
        *,
        agent_attribute: str = "service.name",
        agents: Mapping[str, str] | None = None,
        default_agent: str = "unknown",
        capture_content: bool = False,
    ) -> None:
        self.agent_attribute = agent_attribute
        self.agents = dict(agents or {})
        self.default_agent = default_agent
        self.capture_content = capture_content

    def to_event(self, span: SpanData) -> AgentEvent | None:
        """The event ``span`` stands for; ``None`` when it is not a GenAI span."""
        a = span.attributes
        kind = genai_kind(a)
        if kind is None:
            return None
        data: dict[str, Any] = {"source": "otel", "span_name": span.name}
        for attr, key in _META:
            value = a.get(attr)
            if value is not None:
                data[key] = value
        provider = _text(a, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
        if provider:
            data["provider"] = provider
        op = _text(a, "gen_ai.operation.name")
        if op:
            data["operation"] = op
        finish = a.get("gen_ai.response.finish_reasons")
        if finish is not None:
            data["finish_reasons"] = list(finish) if not isinstance(finish, str) else [finish]
        error_type = _text(a, "error.type") or span.exception_type
        failed = span.error or error_type is not None
        if failed:
            data["error_type"] = error_type or "_OTHER"
            message = span.status_message or span.exception_message
            if message:
                data["error"] = message[:2000]
        start, end = span.start_ns, span.end_ns
        fields: dict[str, Any] = {
            "timestamp": end / 1e9 if end else start / 1e9,
            "agent": self._agent(span, kind),
            "session_id": _text(
                a,
                "gen_ai.conversation.id",
                "session.id",
                "traceloop.association.properties.session_id",
                "traceloop.association.properties.thread_id",
            ),
            "user": _text(a, "user.id", "enduser.id", "traceloop.association.properties.user_id"),
            "latency_ms": (end - start) / 1e6 if end >= start > 0 else None,
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "parent_span_id": span.parent_span_id,
            "status": "error" if failed else "ok",
        }
        if kind == "llm":
            fields["event_type"] = "error" if failed else "llm_call"
            fields["model"] = _text(
                a, "gen_ai.request.model", "gen_ai.response.model", "llm.model_name"
            )
            fields.update(_tokens(a))
            cost = _number(
                a, "llm.cost.total", "gen_ai.usage.cost", "gen_ai.cost.total", "redline.cost_usd"
            )
            if cost is not None and cost >= 0:
                fields["cost_usd"] = float(cost)
        elif kind == "tool":
            fields["event_type"] = "tool_call"
            fields["tool"] = _text(a, "gen_ai.tool.name", "tool.name", "traceloop.entity.name")
            args = a.get("gen_ai.tool.call.arguments", a.get("tool.parameters"))
            if args is not None:
                data["arguments"] = args
            if self.capture_content:
                result = a.get("gen_ai.tool.call.result", a.get("output.value"))
                if result is not None:
                    data["output"] = result
        else:
            fields["event_type"] = "error" if failed else "action"
            data.setdefault("operation", "invoke_agent")
        fields["data"] = data
        return AgentEvent(**{k: v for k, v in fields.items() if v is not None})

    def _agent(self, span: SpanData, kind: str) -> str:
        a = span.attributes
        named = _text(a, "gen_ai.agent.name")
        if named is None and kind == "agent":
            named = _text(a, "agent.name", "traceloop.entity.name")
        if named is None:
            source = span.resource.get(self.agent_attribute)
            if source is None:
                source = a.get(self.agent_attribute)
            named = None if source is None else str(source)
        if named is None:
            return self.default_agent
        return self.agents.get(named, named)


def _text(attributes: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return str(value)
    return None


def _number(attributes: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _count(attributes: Mapping[str, Any], *keys: str) -> int | None:
    value = _number(attributes, *keys)
    if value is None or not 0 <= value < 2**53:  # NaN fails the comparison too
        return None
    return int(value)


def _tokens(a: Mapping[str, Any]) -> dict[str, int | None]:
    """Token counts from whichever convention the span speaks (first name found wins)."""
    return {
        "tokens_in": _count(
            a,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "llm.usage.prompt_tokens",
        ),
        "tokens_out": _count(
            a,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "llm.usage.completion_tokens",
        ),
        "tokens_cached": _count(
            a,
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.input_tokens.cached",
            "llm.token_count.prompt_details.cache_read",
        ),
        "tokens_cache_write": _count(
            a,
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.input_tokens.cache_write",
            "llm.token_count.prompt_details.cache_write",
        ),
        "tokens_reasoning": _count(
            a,
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.output_tokens.reasoning",
            "llm.token_count.completion_details.reasoning",
        ),
    }
