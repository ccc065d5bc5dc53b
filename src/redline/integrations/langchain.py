"""LangChain and LangGraph: a callback handler, its async twin, and a ``create_agent`` middleware.

``RedlineCallbackHandler(monitor, agent="sales")`` goes in ``config={"callbacks": [...]}`` of
any runnable, chain or graph. It has ``raise_error = True`` and ``run_inline = True``: without
them LangChain logs a handler's exception and runs the step anyway, so a stop would stop
nothing. It checks the kill switch (and reserves budget) in ``on_chat_model_start`` /
``on_llm_start`` and checks in ``on_tool_start``, raising the stop before the model or the tool
runs; it records ``llm_call`` on ``on_llm_end``, ``error`` on ``on_llm_error`` and ``tool_call``
on ``on_tool_end`` / ``on_tool_error``.

* model: ``response_metadata["model_name"]`` (or ``"model"``), else the ``ls_model_name`` the
  model put in its callback metadata;
* tokens: the message's ``usage_metadata`` (LangChain's ``input_tokens`` already include cached
  input), ``input_token_details.cache_read`` / ``cache_creation`` and
  ``output_token_details.reasoning``; ``llm_output["token_usage"]`` for older models;
* session: a LangGraph ``thread_id`` in the callback metadata, unless the handler was given a
  ``session_id``; the LangGraph node (``langgraph_node``) is kept in ``data["node"]``.

Calls in flight are kept by run id in a bounded table (:data:`MAX_RUNS`): a run that never ends
is dropped (and its reservation released) once newer runs push it out, so nothing grows.

``RedlineMiddleware`` does the same for a LangChain v1 ``create_agent`` agent through
``wrap_model_call`` and ``wrap_tool_call`` (and their async forms); use one or the other, not
both, or each call is recorded twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from uuid import UUID

from redline._context import Identity
from redline.integrations._base import (
    IN_FLIGHT_LIMIT,
    Bounded,
    Governed,
    Step,
    StepRecorder,
    Usage,
    require,
)

require("langchain_core", "langchain", "langchain")
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402

__all__ = [
    "MAX_RUNS",
    "AsyncRedlineCallbackHandler",
    "RedlineCallbackHandler",
    "RedlineMiddleware",
    "usage_of",
]

#: Model and tool calls kept in flight per handler; the oldest is dropped beyond this.
MAX_RUNS = IN_FLIGHT_LIMIT


def usage_of(message: Any) -> Usage | None:
    """Tokens of an ``AIMessage`` (its ``usage_metadata``), in Redline's convention."""
    meta = getattr(message, "usage_metadata", None)
    if not isinstance(meta, Mapping):
        return None
    ind = meta.get("input_token_details") or {}
    outd = meta.get("output_token_details") or {}
    return Usage(
        tokens_in=meta.get("input_tokens"),
        tokens_out=meta.get("output_tokens"),
        cached=ind.get("cache_read"),
        cache_write=ind.get("cache_creation"),
        reasoning=outd.get("reasoning"),
    )


def _legacy_usage(llm_output: Any) -> Usage | None:
    """``llm_output["token_usage"]`` of models that predate ``usage_metadata``."""
    if not isinstance(llm_output, Mapping):
        return None
    tu = llm_output.get("token_usage") or llm_output.get("usage")
    if not isinstance(tu, Mapping):
        return None
    return Usage(
        tokens_in=tu.get("prompt_tokens", tu.get("input_tokens")),
        tokens_out=tu.get("completion_tokens", tu.get("output_tokens")),
    )


def _model_of(message: Any) -> str | None:
    meta = getattr(message, "response_metadata", None) or {}
    name = meta.get("model_name") or meta.get("model")
    return name if isinstance(name, str) else None


class _Core:
    """The callback logic both handlers share (the async one awaits nothing)."""

    def __init__(
        self,
        monitor: Governed,
        *,
        agent: str | None,
        session_id: str | None,
        user: str | None,
        tenant: str | None,
        capture_content: bool,
    ) -> None:
        self.recorder = StepRecorder(
            monitor,
            integration="langchain",
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
            capture_content=capture_content,
        )
        self.runs = Bounded(self.recorder.abandon)

    def _identity(self, metadata: Mapping[str, Any] | None) -> Identity:
        thread = (metadata or {}).get("thread_id")
        session = self.recorder.defaults.session_id or (str(thread) if thread else None)
        return self.recorder.identity(session_id=session)

    def model_start(
        self,
        serialized: Mapping[str, Any] | None,
        run_id: UUID,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        prompt: Any,
    ) -> None:
        rec = self.recorder
        ident = self._identity(metadata)
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = meta.get("ls_model_name") or params.get("model") or params.get("model_name")
        max_out = meta.get("ls_max_tokens") or params.get("max_tokens")
        step = rec.before_model(
            ident,
            model=model if isinstance(model, str) else None,
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        with rec.quietly():
            if meta.get("langgraph_node"):
                step.extra["node"] = meta["langgraph_node"]
            provider = meta.get("ls_provider")
            if provider:
                step.extra["provider"] = provider
            if rec.capture_content:
                step.extra["prompt"] = prompt
            self.runs.put(run_id, step)

    def model_end(self, response: Any, run_id: UUID) -> None:
        step = self.runs.pop(run_id)
        if step is None:
            return
        rec = self.recorder
        with rec.quietly():
            generations = getattr(response, "generations", None) or [[]]
            first = generations[0][0] if generations and generations[0] else None
            message = getattr(first, "message", None)
            usage = usage_of(message) or _legacy_usage(getattr(response, "llm_output", None))
            model = _model_of(message) or step.name
            data = self._data(step)
            if rec.capture_content:
                if "prompt" in step.extra:
                    data["prompt"] = step.extra["prompt"]
                text = getattr(first, "text", None)
                if text:
                    data["completion"] = text
            calls = getattr(message, "tool_calls", None)
            if calls:
                data["tool_calls"] = [c.get("name") for c in calls if isinstance(c, Mapping)]
            rec.model_done(
                step, model=model, usage=usage, provider=step.extra.get("provider"), data=data
            )

    def model_error(self, error: BaseException, run_id: UUID) -> None:
        step = self.runs.pop(run_id)
        if step is not None:
            self.recorder.model_done(
                step,
                model=step.name,
                provider=step.extra.get("provider"),
                error=error,
                data=self._data(step),
            )

    def tool_start(
        self,
        serialized: Mapping[str, Any] | None,
        input_str: str,
        run_id: UUID,
        metadata: Mapping[str, Any] | None,
        inputs: Any,
        kwargs: Mapping[str, Any],
    ) -> None:
        rec = self.recorder
        name = (serialized or {}).get("name") or kwargs.get("name")
        step = rec.before_tool(self._identity(metadata), name if isinstance(name, str) else None)
        with rec.quietly():
            step.extra["arguments"] = inputs if inputs is not None else input_str
            node = (metadata or {}).get("langgraph_node")
            if node:
                step.extra["node"] = node
            self.runs.put(run_id, step)

    def tool_end(self, output: Any, run_id: UUID, error: BaseException | None = None) -> None:
        step = self.runs.pop(run_id)
        if step is None:
            return
        content = getattr(output, "content", output)
        status = getattr(output, "status", None)
        self.recorder.tool_done(
            step,
            arguments=step.extra.get("arguments"),
            output=content,
            error=error if error is not None else (str(content) if status == "error" else None),
            data=self._data(step),
        )

    @staticmethod
    def _data(step: Step) -> dict[str, Any]:
        node = step.extra.get("node")
        return {"node": node} if node else {}


class RedlineCallbackHandler(BaseCallbackHandler):
    """Record and govern every model and tool call of a LangChain / LangGraph run."""

    raise_error = True
    run_inline = True

    def __init__(
        self,
        monitor: Governed,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        capture_content: bool = False,
    ) -> None:
        self._core = _Core(
            monitor,
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
            capture_content=capture_content,
        )

    @property
    def in_flight(self) -> int:
        """Model and tool calls started and not yet ended (bounded by :data:`MAX_RUNS`)."""
        return len(self._core.runs)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._core.model_start(serialized, run_id, metadata, kwargs, messages)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._core.model_start(serialized, run_id, metadata, kwargs, prompts)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._core.model_end(response, run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._core.model_error(error, run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._core.tool_start(serialized, input_str, run_id, metadata, inputs, kwargs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._core.tool_end(output, run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._core.tool_end(None, run_id, error)


class AsyncRedlineCallbackHandler(RedlineCallbackHandler):
    """The handler for async runs (``ainvoke``, ``astream``).

    Its hooks are deliberately plain functions, run inline on the event loop (they do no I/O: a
    few dict operations and a queue append). LangChain drops the exception of a *coroutine*
    handler whenever a step fires its callbacks through the sync path (``_run_coros`` logs and
    swallows it, whatever ``raise_error`` says), and async runs take that path for sync tools
    and models, so an ``async def`` hook could not stop a tool. A sync inline hook's exception
    propagates on both paths.
    """


def _middleware_base() -> Any:
    try:
        from langchain.agents.middleware import AgentMiddleware
    except ImportError:  # langchain_core alone: the callback handlers still work
        return object
    return AgentMiddleware


class RedlineMiddleware(_middleware_base()):  # type: ignore[misc]
    """A LangChain v1 ``create_agent`` middleware: check before each model and tool call (the
    stop propagates out of ``invoke``), record each when it returns."""

    def __init__(
        self,
        monitor: Governed,
        *,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        capture_content: bool = False,
    ) -> None:
        super().__init__()
        self._core = _Core(
            monitor,
            agent=agent,
            session_id=session_id,
            user=user,
            tenant=tenant,
            capture_content=capture_content,
        )

    # -- model ------------------------------------------------------------------------------

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        step = self._model_before(request)
        try:
            response = handler(request)
        except Exception as exc:
            self._core.recorder.model_done(step, model=step.name, error=exc)
            raise
        self._model_after(step, response)
        return response

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        step = self._model_before(request)
        try:
            response = await handler(request)
        except Exception as exc:
            self._core.recorder.model_done(step, model=step.name, error=exc)
            raise
        self._model_after(step, response)
        return response

    def _model_before(self, request: Any) -> Step:
        core = self._core
        model_obj = getattr(request, "model", None)
        params: Mapping[str, Any] = {}
        with core.recorder.quietly():
            params = model_obj._get_ls_params() if model_obj is not None else {}
        name = params.get("ls_model_name") or getattr(model_obj, "model_name", None)
        max_out = params.get("ls_max_tokens")
        step = core.recorder.before_model(
            core._identity(_graph_metadata()),
            model=name if isinstance(name, str) else None,
            max_tokens_out=max_out if isinstance(max_out, int) else None,
        )
        with core.recorder.quietly():
            step.extra["provider"] = params.get("ls_provider")
            if core.recorder.capture_content:
                step.extra["prompt"] = getattr(request, "messages", None)
        return step

    def _model_after(self, step: Step, response: Any) -> None:
        rec = self._core.recorder
        with rec.quietly():
            result = getattr(response, "result", None)
            messages = result if isinstance(result, list) else [response]
            message = next((m for m in messages if getattr(m, "type", None) == "ai"), None)
            data: dict[str, Any] = {"node": "model"}
            calls = getattr(message, "tool_calls", None)
            if calls:
                data["tool_calls"] = [c.get("name") for c in calls if isinstance(c, Mapping)]
            if rec.capture_content:
                data["prompt"] = step.extra.get("prompt")
                text = getattr(message, "text", None)
                data["completion"] = text() if callable(text) else text
            rec.model_done(
                step,
                model=_model_of(message) or step.name,
                usage=usage_of(message),
                provider=step.extra.get("provider"),
                data=data,
            )

    # -- tools ------------------------------------------------------------------------------

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        step = self._tool_before(request)
        try:
            result = handler(request)
        except Exception as exc:
            self._core.tool_end(None, step.extra["run"], exc)
            raise
        self._core.tool_end(result, step.extra["run"])
        return result

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        step = self._tool_before(request)
        try:
            result = await handler(request)
        except Exception as exc:
            self._core.tool_end(None, step.extra["run"], exc)
            raise
        self._core.tool_end(result, step.extra["run"])
        return result

    def _tool_before(self, request: Any) -> Step:
        core = self._core
        call = getattr(request, "tool_call", None) or {}
        name = call.get("name")
        step = core.recorder.before_tool(
            core._identity(_graph_metadata()), name if isinstance(name, str) else None
        )
        run = UUID(int=id(step))
        step.extra.update(run=run, arguments=call.get("args"), node="tools")
        core.runs.put(run, step)
        return step


def _graph_metadata() -> Mapping[str, Any]:
    """The running LangGraph's config (its ``thread_id``), or nothing outside a graph."""
    try:
        from langgraph.config import get_config

        config = get_config()
    except Exception:
        return {}
    conf = config.get("configurable") or {}
    meta = dict(config.get("metadata") or {})
    if "thread_id" in conf:
        meta.setdefault("thread_id", conf["thread_id"])
    return meta
