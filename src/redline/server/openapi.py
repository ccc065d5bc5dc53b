"""The OpenAPI 3.1 document, built from the route table (:mod:`redline.server.routes`).

Schemas come from the same ``msgspec`` structs that decode requests and encode responses
(:mod:`redline.server.schemas`, plus ``AgentEvent``, ``MetricSnapshot``, ``Alert``, ``KillRecord``
and ``VerifyReport``), so the document cannot describe a shape the server does not speak. It
depends on the table's vocabulary (:mod:`redline.server.operation`) only, never on the router or
the handlers, so the handler that serves it can import it without a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from redline.alerts.manager import Alert
from redline.events import AgentEvent
from redline.metrics.snapshot import MetricSnapshot
from redline.server import schemas
from redline.server.operation import Operation
from redline.store.base import KillRecord
from redline.store.chain import VerifyReport

__all__ = ["build_document"]

_REF: Final = "#/components/schemas/{name}"
_STRUCTS: Final = (
    AgentEvent,
    MetricSnapshot,
    Alert,
    KillRecord,
    VerifyReport,
    schemas.ErrorBody,
    schemas.IngestResponse,
    schemas.AckRequest,
    schemas.AckFilter,
    schemas.KillResponse,
    schemas.ReviveResponse,
    schemas.KillList,
    schemas.BudgetList,
    schemas.CheckResponse,
    schemas.AgentList,
    schemas.AlertList,
    schemas.MetricHistory,
    schemas.Health,
    schemas.Identity,
    schemas.Ready,
)

#: Response kinds that are not JSON structs: media type -> schema.
_RAW: Final[dict[str, dict[str, Any]]] = {
    "sse": {"text/event-stream": {"schema": {"type": "string"}}},
    "html": {"text/html": {"schema": {"type": "string"}}},
    "asset": {
        "text/javascript": {"schema": {"type": "string"}},
        "text/css": {"schema": {"type": "string"}},
    },
    "prometheus": {
        "text/plain": {"schema": {"type": "string"}},
        "application/openmetrics-text": {"schema": {"type": "string"}},
    },
    "otlp": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object"}},
    },
    "export": {
        "application/json": {"schema": {}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF.format(name=name)}


def _schema(spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, str):
        return _ref(spec)
    return _ref(spec.__name__)


def _content(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str) and spec in _RAW:
        return _RAW[spec]
    return {"application/json": {"schema": _schema(spec)}}


#: Request bodies that are tagged unions (``scope`` picks the variant), by component name.
_UNIONS: Final[dict[str, Any]] = {
    "KillRequest": schemas.KillRequest,
    "ReviveRequest": schemas.ReviveRequest,
}


def _components(max_batch: int) -> dict[str, Any]:
    unions = list(_UNIONS.values())
    top, components = msgspec.json.schema_components([*_STRUCTS, *unions], ref_template=_REF)
    for name, schema in zip(_UNIONS, top[len(_STRUCTS) :], strict=True):
        components[name] = schema
    components["StoredEvent"] = {
        "description": "An event as stored: its fields plus `seq` and its hash-chain links.",
        "allOf": [
            _ref("AgentEvent"),
            {
                "type": "object",
                "required": ["seq"],
                "properties": {
                    "seq": {"type": "integer"},
                    "hash": {"type": "string"},
                    "prev_hash": {"type": "string"},
                },
            },
        ],
    }
    components["EventPage"] = schemas.event_page_schema(_REF.format(name="StoredEvent"))
    components["EventBatch"] = {
        "description": "Events to record (each validated, and repaired or rejected, as "
        "`Monitor.record()` does).",
        "anyOf": [
            {"type": "array", "items": _ref("AgentEvent"), "maxItems": max_batch},
            {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {"type": "array", "items": _ref("AgentEvent"), "maxItems": max_batch}
                },
            },
        ],
    }
    return components


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("ErrorBody")}},
    }
    if headers:
        out["headers"] = headers
    return out


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.op_id,
        "summary": op.summary,
        "tags": list(op.tags),
    }
    if op.description:
        doc["description"] = op.description
    if op.permission is None:
        doc["security"] = []
    else:
        doc["x-required-permission"] = op.permission
    if op.params:
        doc["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ]
    if op.body is not None:
        if op.body == "events":
            doc["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("EventBatch")},
                    "application/x-ndjson": {
                        "schema": {"type": "string", "description": "One event per line."}
                    },
                },
            }
        elif op.body == "otlp":
            doc["requestBody"] = {"required": True, "content": _RAW["otlp"]}
        else:
            doc["requestBody"] = {
                "required": op.body not in ("AckRequest", schemas.AckRequest, schemas.AckFilter),
                "content": {"application/json": {"schema": _schema(op.body)}},
            }
    responses: dict[str, Any] = {}
    for status, (description, spec) in sorted(op.responses.items()):
        if spec is schemas.ErrorBody:
            responses[str(status)] = _error(description)
        else:
            responses[str(status)] = {"description": description, "content": _content(spec)}
    if "{" in op.path and "404" not in responses:
        responses["404"] = _error("Nothing at this path (e.g. a name with a line break).")
    if op.permission is not None:
        responses["401"] = _error(
            "No valid bearer token.",
            {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
        )
        responses["403"] = _error("The token's role does not permit this.")
        responses["429"] = _error(
            "Rate limit exceeded (per token; per address for failed authentication).",
            {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        )
    doc["responses"] = responses
    return doc


def build_document(operations: Sequence[Operation], *, max_batch: int = 1000) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``operations``."""
    from redline import __version__

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Redline",
            "version": __version__,
            "description": "Governance-first observability for AI agents: ingest events, query "
            "them, watch the fleet live, kill and revive agents, and prove what happened. "
            "Every call but the public ones (`/healthz`, `/readyz`, the dashboard, this document) "
            "needs `Authorization: Bearer <token>`; roles are `ingest` (post events, check), "
            "`read` (queries, stream, metrics) and `admin` (everything, including kill, revive, "
            "acknowledge, export and verify). See docs/server.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "events"},
            {"name": "fleet"},
            {"name": "alerts"},
            {"name": "kill switches"},
            {"name": "audit"},
            {"name": "operations"},
            {"name": "dashboard"},
        ],
        "paths": paths,
        "components": {
            "schemas": _components(max_batch),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `server.tokens` (or REDLINE_ADMIN_TOKEN).",
                }
            },
        },
    }
