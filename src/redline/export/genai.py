"""The OpenTelemetry GenAI semantic conventions, as Redline speaks them: one module to update.

Which version: by default the *released* conventions (v1.36.0, what most backends map today);
with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (the variable the conventions
define for this transition) or ``exporters.otel.semconv: latest``, the latest experimental ones
(scopes then name schema 1.38.0).
The difference Redline emits: the released version also carries the deprecated
``gen_ai.system`` beside ``gen_ai.provider.name``, for backends that still key on it; the latest
drops it. The tracer and meter scopes carry the matching schema URL.

Attributes written here: ``gen_ai.provider.name`` on every inference and agent span and metric
(the spec's well-known values from the model's family or a ``provider/model`` prefix, else
``data["provider"]``, else ``_OTHER``), ``gen_ai.operation.name`` from the event
(``data["operation"]``: ``chat`` by default, also ``text_completion``, ``generate_content``,
``embeddings``), usage including ``cache_read``, ``cache_creation`` and ``reasoning`` token
counts, ``gen_ai.response.model``/``id``/``finish_reasons`` when the event knows them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

__all__ = [
    "INFERENCE_OPERATIONS",
    "OTHER",
    "SCHEMA_URL",
    "SCHEMA_URL_LATEST",
    "input_messages",
    "latest_conventions",
    "operation_of",
    "output_messages",
    "provider_name",
    "provider_of",
    "response_attributes",
    "schema_url",
    "to_json",
    "usage_attributes",
]

#: The released conventions Redline emits by default, and the latest experimental ones.
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.36.0"
SCHEMA_URL_LATEST: Final = "https://opentelemetry.io/schemas/1.38.0"
#: The value for a provider no rule identifies (the conventions' catch-all).
OTHER: Final = "_OTHER"
#: Inference operations an ``llm_call`` may declare in ``data["operation"]``.
INFERENCE_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings"}
)
_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"

#: Model-name prefixes → ``gen_ai.provider.name`` well-known values. A Gemini model alone does
#: not say whether AI Studio or Vertex AI serves it: ``gcp.gen_ai`` is "any Google endpoint".
_PROVIDERS: Final = (
    (("gpt-", "gpt4", "o1", "o3", "o4-", "chatgpt", "text-embedding", "davinci", "dall-e"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "palm", "bison", "gemma"), "gcp.gen_ai"),
    (("mistral", "mixtral", "codestral", "magistral", "ministral", "pixtral"), "mistral_ai"),
    (("command", "embed-english", "embed-multilingual"), "cohere"),
    (("deepseek",), "deepseek"),
    (("grok",), "x_ai"),
    (("sonar",), "perplexity"),
    (("kimi", "moonshot"), "moonshot_ai"),
)  # fmt: skip
_PREFIX_PROVIDERS: Final = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
}


def latest_conventions(setting: str | None = None) -> bool:
    """Whether to emit the latest experimental conventions: ``setting`` (``latest``/``stable``)
    when given, else ``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``."""
    if setting:
        return setting == "latest"
    values = os.environ.get(_OPT_IN, "")
    return "gen_ai_latest_experimental" in {v.strip() for v in values.split(",")}


def schema_url(latest: bool) -> str:
    """The schema URL for the tracer and meter scopes."""
    return SCHEMA_URL_LATEST if latest else SCHEMA_URL


def provider_of(model: str | None, data: dict[str, Any] | None = None) -> str | None:
    """``gen_ai.provider.name`` from ``data["provider"]``, a ``provider/model`` prefix or the
    model's family name; None when unknown."""
    if data:
        given = data.get("provider") or data.get("gen_ai.provider.name")
        if isinstance(given, str) and given:
            return given
    if not model:
        return None
    name = model.lower()
    head, sep, rest = name.partition("/")
    if sep:
        known = _PREFIX_PROVIDERS.get(head)
        if known is not None:
            return known
        name = rest
    for prefixes, provider in _PROVIDERS:
        if name.startswith(prefixes):
            return provider
    return None


def provider_name(model: str | None, data: dict[str, Any] | None = None) -> str:
    """:func:`provider_of`, or ``_OTHER``: the attribute is required on inference spans."""
    return provider_of(model, data) or OTHER


def operation_of(data: dict[str, Any] | None) -> str:
    """The inference operation an ``llm_call`` declares (``chat`` unless it says otherwise)."""
    op = (data or {}).get("operation")
    return op if isinstance(op, str) and op in INFERENCE_OPERATIONS else "chat"


def usage_attributes(ev: Any) -> dict[str, int]:
    """``gen_ai.usage.*`` from an event's token fields (Redline's convention is the spec's:
    input includes cached input, output includes reasoning)."""
    out: dict[str, int] = {}
    for field, attr in (
        ("tokens_in", "gen_ai.usage.input_tokens"),
        ("tokens_out", "gen_ai.usage.output_tokens"),
        ("tokens_cached", "gen_ai.usage.cache_read.input_tokens"),
        ("tokens_cache_write", "gen_ai.usage.cache_creation.input_tokens"),
        ("tokens_reasoning", "gen_ai.usage.reasoning.output_tokens"),
    ):
        value = getattr(ev, field, None)
        if value is not None:
            out[attr] = int(value)
    return out


def response_attributes(data: dict[str, Any]) -> dict[str, str | tuple[str, ...]]:
    """``gen_ai.response.model``/``id``/``finish_reasons`` when the event's data knows them."""
    out: dict[str, str | tuple[str, ...]] = {}
    for key, attr in (
        ("response_model", "gen_ai.response.model"),
        ("response_id", "gen_ai.response.id"),
    ):
        value = data.get(key)
        if isinstance(value, str) and value:
            out[attr] = value
    reasons = data.get("finish_reasons", data.get("finish_reason"))
    if isinstance(reasons, str) and reasons:
        out["gen_ai.response.finish_reasons"] = (reasons,)
    elif isinstance(reasons, (list, tuple)) and reasons:
        out["gen_ai.response.finish_reasons"] = tuple(str(r) for r in reasons)
    return out


def to_json(value: object) -> str:
    """``value`` as compact JSON text (anything unencodable as its ``str``)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _text_parts(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in content]
    return [{"type": "text", "content": to_json(content)}]


def input_messages(data: dict[str, Any]) -> str | None:
    """``gen_ai.input.messages``: ``data["messages"]`` (role/content dicts) or ``data["prompt"]``."""
    messages = data.get("messages")
    if isinstance(messages, list) and messages:
        out = []
        for m in messages:
            if isinstance(m, dict):
                out.append(
                    {"role": str(m.get("role", "user")), "parts": _text_parts(m.get("content"))}
                )
            else:
                out.append({"role": "user", "parts": _text_parts(m)})
        return to_json(out)
    prompt = data.get("prompt")
    if prompt is None:
        return None
    return to_json([{"role": "user", "parts": _text_parts(prompt)}])


def output_messages(data: dict[str, Any]) -> str | None:
    """``gen_ai.output.messages`` from ``data["completion"]`` (or ``response``/``output``).

    The finish reason is not repeated inside the message: it is the span's
    ``gen_ai.response.finish_reasons`` (:func:`response_attributes`).
    """
    for key in ("completion", "response", "output"):
        if key in data:
            return to_json([{"role": "assistant", "parts": _text_parts(data[key])}])
    return None
