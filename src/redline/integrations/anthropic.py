"""Govern an Anthropic SDK client: ``client = guard(Anthropic(), monitor, agent="sales")``.

:func:`guard` returns ``client.with_middleware(RedlineMiddleware(...))``: the SDK's own hook,
run once per HTTP attempt inside its retry loop.

* Before each attempt the kill switch is checked (and, with budgets, the call's estimated cost
  reserved from its ``model`` and ``max_tokens``). The stop is raised from the middleware, and
  the SDK lets middleware exceptions through as they are (it retries only its own connection,
  status and ``RetryableError`` types), so a killed agent's request never leaves the process.
* A ``/v1/messages`` call is recorded as ``llm_call`` when its body has been read: the JSON
  message, or for a stream ``message_start`` (input and cache usage) merged with the last
  ``message_delta`` (output tokens). An error status is recorded as ``error``.

Anthropic counts cache reads (``cache_read_input_tokens``) and writes
(``cache_creation_input_tokens``) apart from ``input_tokens``; they are added in
(:meth:`~redline.integrations.Usage.from_parts`), so ``tokens_in`` is every input token read, as
for every other provider.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from redline.integrations._base import Governed, Step, StepRecorder, Usage, require
from redline.integrations._http import (
    AsyncTeeStream,
    Body,
    BodyWatcher,
    TeeStream,
    estimate_tokens,
    peek_json,
)

_anthropic = require("anthropic", "anthropic", "anthropic")
import httpx2  # noqa: E402  (the Anthropic SDK's HTTP client; present whenever anthropic is)

__all__ = ["RedlineMiddleware", "guard", "usage_of"]

_ClientT = TypeVar("_ClientT")

_Middleware: Any = _anthropic.Middleware


def guard(
    client: _ClientT,
    monitor: Governed,
    *,
    agent: str | None,
    session_id: str | None = None,
    user: str | None = None,
    tenant: str | None = None,
    capture_content: bool = False,
) -> _ClientT:
    """``client`` (an ``Anthropic`` or ``AsyncAnthropic``) governed by ``monitor``.

    A new client with the middleware appended; the original is left as it was.
    ``agent=None`` takes the agent from ``redline.context()``.
    """
    with_middleware = getattr(client, "with_middleware", None)
    if with_middleware is None:
        raise TypeError(
            f"guard() needs an anthropic.Anthropic or AsyncAnthropic client, not {type(client)!r}"
        )
    recorder = StepRecorder(
        monitor,
        integration="anthropic",
        agent=agent,
        session_id=session_id,
        user=user,
        tenant=tenant,
        capture_content=capture_content,
    )
    result: _ClientT = with_middleware(RedlineMiddleware(recorder))
    return result


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """Tokens of a Messages ``usage`` object, normalised (cache reads and writes added in)."""
    details = usage.get("output_tokens_details") or {}
    return Usage.from_parts(
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        cache_read=usage.get("cache_read_input_tokens"),
        cache_write=usage.get("cache_creation_input_tokens"),
        reasoning=details.get("thinking_tokens", details.get("reasoning_tokens"))
        if isinstance(details, Mapping)
        else None,
    )


class RedlineMiddleware(_Middleware):  # type: ignore[misc]
    """Anthropic client middleware: check before each attempt, record what it returned."""

    def __init__(self, recorder: StepRecorder) -> None:
        self._recorder = recorder

    def handle(self, request: Any, call_next: Callable[[Any], Any]) -> Any:
        step = self._before(request)
        if step is None:
            return call_next(request)
        try:
            response = call_next(request)
        except Exception as exc:
            self._recorder.model_done(step, model=step.name, provider="anthropic", error=exc)
            raise
        self._after(request, response, step, TeeStream)
        return response

    async def handle_async(self, request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        step = self._before(request)
        if step is None:
            return await call_next(request)
        try:
            response = await call_next(request)
        except Exception as exc:
            self._recorder.model_done(step, model=step.name, provider="anthropic", error=exc)
            raise
        self._after(request, response, step, AsyncTeeStream)
        return response

    def _before(self, request: Any) -> Step | None:
        rec = self._recorder
        ident = rec.identity()
        if str(request.method).upper() != "POST" or not str(request.url).endswith("/messages"):
            rec.before_tool(ident, None)  # a kill stops every request the agent makes
            return None
        body: Any = request.json if isinstance(request.json, Mapping) else {}

        def tokens_in() -> int | None:  # only asked for when a budget reserves
            return estimate_tokens(json.dumps(body.get("messages", ()), default=str).encode())

        model = body.get("model")
        max_out = body.get("max_tokens")
        step = rec.before_model(
            ident,
            model=model if isinstance(model, str) else None,
            tokens_in=tokens_in,
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        step.extra["request"] = body
        return step

    def _after(self, request: Any, response: Any, step: Step, tee: Any) -> None:
        with self._recorder.quietly():
            http: httpx2.Response = response.http_response
            status = http.status_code

            def done(seen: Body) -> None:
                self._done(step, status, seen, bool(getattr(request, "stream", False)))

            try:
                content = http.content  # read already unless the call streams
            except httpx2.ResponseNotRead:
                full = self._recorder.capture_content
                http.stream = tee(http.stream, BodyWatcher(http, done, full=full))
                return
            seen: Body = None
            with self._recorder.quietly():
                if self._recorder.capture_content and content:
                    parsed = json.loads(content)
                    seen = parsed if isinstance(parsed, dict) else None
                elif content:
                    seen = peek_json(content)
            done(seen)

    def _done(self, step: Step, status: int, seen: Body, stream: bool) -> None:
        rec = self._recorder
        with rec.quietly():
            data: dict[str, Any] = {"endpoint": "messages", "http_status": status}
            if stream:
                data["stream"] = True
            if status >= 400:
                err = seen.get("error") if isinstance(seen, dict) else None
                message = (
                    str(err.get("message") or err.get("type"))
                    if isinstance(err, Mapping)
                    else f"HTTP {status}"
                )
                rec.model_done(
                    step, model=step.name, provider="anthropic", error=message, data=data
                )
                return
            message_obj = _message(seen)
            usage_body = message_obj.get("usage")
            usage = usage_of(usage_body) if isinstance(usage_body, Mapping) else None
            if message_obj.get("stop_reason"):
                data["stop_reason"] = message_obj["stop_reason"]
            if rec.capture_content:
                req = step.extra.get("request") or {}
                if req.get("messages") is not None:
                    data["prompt"] = req["messages"]
                texts = [
                    c.get("text")
                    for c in message_obj.get("content") or ()
                    if isinstance(c, Mapping) and c.get("type") == "text"
                ]
                if any(isinstance(t, str) for t in texts):
                    data["completion"] = "\n".join(t for t in texts if isinstance(t, str))
            model = message_obj.get("model") or step.name
            rec.model_done(step, model=model, usage=usage, provider="anthropic", data=data)


def _message(seen: Body) -> dict[str, Any]:
    """The message with its final usage: the JSON body, or a stream's start plus its deltas."""
    if isinstance(seen, dict):
        return seen
    if not seen:
        return {}
    message: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for event in seen:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
            usage.update(message.get("usage") or {})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            delta = event.get("delta") or {}
            if delta.get("stop_reason"):
                message["stop_reason"] = delta["stop_reason"]
    if usage:
        message["usage"] = usage
    return message
