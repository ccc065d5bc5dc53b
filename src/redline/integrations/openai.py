"""Govern an OpenAI SDK client: ``client = guard(OpenAI(), monitor, agent="sales")``.

:func:`guard` returns a copy of the client whose HTTP transport (:class:`RedlineTransport`,
:class:`AsyncRedlineTransport`) wraps the client's own, so every framework that accepts an
OpenAI client is governed by passing it the guarded one:

* before a request leaves the process the agent's kill switch is checked (and, with budgets,
  the call's estimated cost reserved). A stop raises :class:`~redline.AgentStoppedError` from
  the transport; the SDK retries only its own connection and status errors, so a killed agent's
  request is neither sent nor retried;
* a chat-completions, completions or responses call is recorded as ``llm_call`` once its body
  has been read (the model, the usage with cached and reasoning tokens, latency, status); a
  streamed one from its last usage-bearing event, which chat completions send only with
  ``stream_options={"include_usage": True}`` (without it the tokens stay unset);
* an HTTP error status or a transport failure is recorded as ``error``.

OpenAI's ``prompt_tokens`` / ``input_tokens`` already include cached input, which is Redline's
convention, so the counts are taken as they are. Prompt and completion text are recorded only
with ``capture_content=True``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
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

require("openai", "openai", "openai")
import httpx2  # noqa: E402  (the OpenAI SDK's HTTP client; present whenever openai is)

__all__ = ["AsyncRedlineTransport", "RedlineTransport", "guard", "usage_of"]

_ClientT = TypeVar("_ClientT")

#: Paths whose responses are model calls (the rest is only checked: files, models, ...).
_MODEL_PATHS = ("/chat/completions", "/responses", "/completions")


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
    """``client`` (an ``OpenAI`` or ``AsyncOpenAI``) governed by ``monitor``.

    The returned client shares the original's connection pool and settings; the original is
    left as it was. ``agent=None`` takes the agent from ``redline.context()``.
    """
    recorder = StepRecorder(
        monitor,
        integration="openai",
        agent=agent,
        session_id=session_id,
        user=user,
        tenant=tenant,
        capture_content=capture_content,
    )
    http: Any = getattr(client, "_client", None)
    if isinstance(http, httpx2.AsyncClient):
        wrap: Any = AsyncRedlineTransport
    elif isinstance(http, httpx2.Client):
        wrap = RedlineTransport
    else:
        raise TypeError(
            f"guard() needs an openai.OpenAI or openai.AsyncOpenAI client, not {type(client)!r}"
        )
    governed = copy.copy(http)
    governed._transport = wrap(http._transport, recorder)
    governed._mounts = {
        pattern: None if transport is None else wrap(transport, recorder)
        for pattern, transport in http._mounts.items()
    }
    with_options: Any = getattr(client, "with_options")  # noqa: B009  (typed per client class)
    result: _ClientT = with_options(http_client=governed)
    return result


def usage_of(body: Mapping[str, Any]) -> Usage:
    """Tokens of a chat-completions or responses ``usage`` object, in Redline's convention."""
    tin = body.get("prompt_tokens", body.get("input_tokens"))
    tout = body.get("completion_tokens", body.get("output_tokens"))
    ind = body.get("prompt_tokens_details") or body.get("input_tokens_details") or {}
    outd = body.get("completion_tokens_details") or body.get("output_tokens_details") or {}
    return Usage(
        tokens_in=tin,
        tokens_out=tout,
        cached=ind.get("cached_tokens"),
        cache_write=ind.get("cache_write_tokens"),
        reasoning=outd.get("reasoning_tokens"),
    )


class _Governor:
    """What both transports share: before the request, and after its body."""

    def __init__(self, inner: Any, recorder: StepRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def _before(self, request: httpx2.Request) -> tuple[Step, dict[str, Any]] | None:
        """Check (and reserve): raises the stop; returns the step of a model call, else None."""
        rec = self._recorder
        ident = rec.identity()
        path = request.url.path
        if request.method != "POST" or not path.endswith(_MODEL_PATHS):
            rec.before_tool(ident, None)  # a kill stops every request the agent makes
            return None
        content = b""
        body: dict[str, Any] = {}
        with rec.quietly():
            content = request.content
            # The request is read only when something needs it now: a budget's estimate or
            # captured content. The model is the response's; a failed call peeks at it later.
            if content and rec.capture_content:
                parsed = json.loads(content)
                body = parsed if isinstance(parsed, dict) else {}
            elif content and rec.reserves:
                body = peek_json(content)
        model = body.get("model")
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        max_out = max_out or body.get("max_output_tokens")
        step = rec.before_model(
            ident,
            model=model if isinstance(model, str) else None,
            tokens_in=estimate_tokens(content),
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        if not body and content:
            step.extra["content"] = content
        return step, body

    def _watch(
        self, response: httpx2.Response, step: Step, body: dict[str, Any], path: str
    ) -> BodyWatcher:
        status = response.status_code

        def done(seen: Body) -> None:
            self._done(step, body, path, status, seen)

        return BodyWatcher(response, done, full=self._recorder.capture_content)

    def _done(self, step: Step, req: dict[str, Any], path: str, status: int, seen: Body) -> None:
        rec = self._recorder
        with rec.quietly():
            endpoint = path.rsplit("/v1/", 1)[-1].strip("/") or path
            data: dict[str, Any] = {"endpoint": endpoint, "http_status": status}
            if isinstance(seen, list):
                data["stream"] = True
            if status >= 400:
                message = _error_message(seen) or f"HTTP {status}"
                model = step.name or _request_model(step)
                rec.model_done(step, model=model, provider="openai", error=message, data=data)
                return
            result = _final(seen)
            usage_body = (result or {}).get("usage")
            usage = usage_of(usage_body) if isinstance(usage_body, Mapping) else None
            model = (result or {}).get("model") or step.name or _request_model(step)
            if rec.capture_content:
                _capture(data, req, result)
            rec.model_done(step, model=model, usage=usage, provider="openai", data=data)

    def _failed(self, step: Step, exc: BaseException) -> None:
        with self._recorder.quietly():
            model = step.name or _request_model(step)
            self._recorder.model_done(step, model=model, provider="openai", error=exc)


class RedlineTransport(_Governor, httpx2.BaseTransport):
    """An httpx2 transport that governs the requests of a sync OpenAI client."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        before = self._before(request)
        if before is None:
            response: httpx2.Response = self._inner.handle_request(request)
            return response
        step, body = before
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            self._failed(step, exc)
            raise
        with self._recorder.quietly():
            watcher = self._watch(response, step, body, request.url.path)
            if not _already_read(response, watcher):
                response.stream = TeeStream(response.stream, watcher)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncRedlineTransport(_Governor, httpx2.AsyncBaseTransport):
    """An httpx2 transport that governs the requests of an async OpenAI client."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        before = self._before(request)
        if before is None:
            response: httpx2.Response = await self._inner.handle_async_request(request)
            return response
        step, body = before
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            self._failed(step, exc)
            raise
        with self._recorder.quietly():
            watcher = self._watch(response, step, body, request.url.path)
            if not _already_read(response, watcher):
                response.stream = AsyncTeeStream(response.stream, watcher)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_model(step: Step) -> str | None:
    """The requested model, read from the request body only when the response did not say."""
    content = step.extra.get("content")
    if not content:
        return None
    model = peek_json(content).get("model")
    return model if isinstance(model, str) else None


def _already_read(response: httpx2.Response, watcher: BodyWatcher) -> bool:
    """Hand a body that is in memory already (an in-process transport's) to the watcher."""
    try:
        content = response.content
    except httpx2.ResponseNotRead:
        return False
    watcher.feed_decoded(content)
    watcher.finish()
    return True


def _final(seen: Body) -> dict[str, Any] | None:
    """The response object carrying usage: the JSON body, or a stream's last usage event."""
    if isinstance(seen, dict):
        return seen
    if not seen:
        return None
    model = None
    for event in reversed(seen):
        nested = event.get("response")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else event
        model = model or inner.get("model")
        if isinstance(inner.get("usage"), Mapping):
            return {"model": inner.get("model") or model, "usage": inner["usage"]}
    return {"model": model} if model else None


def _error_message(seen: Body) -> str | None:
    if isinstance(seen, dict):
        err = seen.get("error")
        if isinstance(err, Mapping):
            return str(err.get("message") or err.get("type") or "error")
    return None


def _capture(
    data: dict[str, Any], req: Mapping[str, Any], result: Mapping[str, Any] | None
) -> None:
    """Prompt and completion text, when ``capture_content`` is on (still redacted on record)."""
    prompt = req.get("messages", req.get("input", req.get("prompt")))
    if prompt is not None:
        data["prompt"] = prompt
    if not result:
        return
    texts = [
        c.get("message", {}).get("content")
        for c in result.get("choices") or ()
        if isinstance(c, Mapping)
    ]
    for item in result.get("output") or ():
        for part in item.get("content") or () if isinstance(item, Mapping) else ():
            if isinstance(part, Mapping) and part.get("type") == "output_text":
                texts.append(part.get("text"))
    found = [t for t in texts if isinstance(t, str)]
    if found:
        data["completion"] = "\n".join(found)
