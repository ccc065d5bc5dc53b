"""Shared fixtures for the framework integrations: a monitor on a SQLite file, a kill made by
another process through the real CLI, and a local HTTP server speaking the OpenAI and Anthropic
APIs (chat completions, responses, messages; plain and streamed; usage with cached and reasoning
tokens) that counts the requests it received.

The server (:class:`FakeLLM`) answers from a script of :class:`Reply` objects, one per request,
and with a default text reply once the script is empty, so a test can drive an agent through a
tool call and a final answer without a network.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from redline import Monitor, load_config

REDLINE_CLI = Path(sys.executable).with_name("redline")


# -- a monitor and a kill from another process ---------------------------------------------


@pytest.fixture
def monitor_config(tmp_path: Path) -> Path:
    """A ``monitor.yaml`` on a SQLite file in the test's temp dir (shared with the CLI)."""
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        f"storage:\n  path: {tmp_path / 'events.db'}\nkill_switch:\n  poll_interval_seconds: 0.05\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def monitor(monitor_config: Path) -> Iterator[Monitor]:
    """A Monitor on the SQLite file of :func:`monitor_config`."""
    with Monitor(load_config(monitor_config)) as m:
        yield m


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``redline`` CLI in a child process on ``config``."""
    return subprocess.run(
        [str(REDLINE_CLI), "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def kill_from_cli(monitor_config: Path, monitor: Monitor) -> Callable[[str], None]:
    """``kill_from_cli(agent)``: kill the agent with the CLI in another process, then let the
    monitor adopt the store's kill state (``run_duties``, what its poller does)."""

    def kill(agent: str) -> None:
        done = cli(monitor_config, "kill", agent, "--reason", "stopped by the test")
        assert done.returncode == 0, done.stderr
        monitor.run_duties()
        assert monitor.is_killed(agent)

    return kill


def events_of(monitor: Monitor, event_type: str, **where: Any) -> list[Any]:
    """The stored events of one type (after a flush), oldest first, filtered by field values."""
    monitor.flush()
    found = monitor.get_events(event_type=event_type, limit=10_000)
    return [e for e in found if all(e.get(k) == v for k, v in where.items())]


@pytest.fixture
def remote(monitor: Monitor) -> Iterator[Any]:
    """A :class:`~redline.client.RemoteMonitor` reporting to a real ``redline serve`` app whose
    monitor is :func:`monitor` (so kills made there reach the remote agent)."""
    pytest.importorskip("starlette")
    from redline.client import RemoteMonitor
    from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

    token = "integrations-admin-0123456789abcdef"
    config = ServerConfig(
        port=0,
        tokens=[TokenConfig(name="agents", role="admin", token=token)],
        rate_limit_per_minute=100_000,
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    client = RemoteMonitor(server.url, token, flush_interval=0.05)
    yield client
    client.close()
    server.stop()


# -- a local server speaking the OpenAI and Anthropic APIs ---------------------------------


@dataclass
class Reply:
    """One scripted answer: text, or tool calls (name, arguments), with its usage.

    Usage follows each provider's own convention on the wire: OpenAI's ``prompt_tokens`` /
    ``input_tokens`` include the cached ones; Anthropic's ``input_tokens`` exclude cache reads
    and writes, which it reports apart.
    """

    text: str = "ok"
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    model: str | None = None
    input_tokens: int = 120
    cached_tokens: int = 100
    cache_write_tokens: int = 50
    output_tokens: int = 30
    reasoning_tokens: int = 10


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class FakeLLM:
    """An HTTP server on 127.0.0.1 speaking enough of the OpenAI and Anthropic APIs for the SDKs.

    ``base_url`` + ``/v1`` is the OpenAI SDK's ``base_url``; ``base_url`` itself is Anthropic's.
    ``requests`` lists what arrived; ``script`` holds the next replies.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self.script.extend(replies)

    def count(self, path_suffix: str = "") -> int:
        """How many requests arrived (whose path ends with ``path_suffix``)."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    def _next(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            return self.script.popleft() if self.script else Reply()


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            size = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(size) if size else b"{}"
            body = json.loads(raw or b"{}")
            path = self.path.split("?", 1)[0]
            reply = fake._next(Received(path, body, dict(self.headers.items())))
            model = reply.model or str(body.get("model", "fake-model"))
            if reply.status >= 400:
                self._json(reply.status, _error(path, reply))
                return
            stream = bool(body.get("stream"))
            if path.endswith("/chat/completions"):
                if stream:
                    include = bool((body.get("stream_options") or {}).get("include_usage"))
                    self._sse(_chat_chunks(reply, model, include))
                else:
                    self._json(200, _chat(reply, model))
            elif path.endswith("/responses"):
                if stream:
                    self._sse(_responses_events(reply, model))
                else:
                    self._json(200, _response(reply, model))
            elif path.endswith("/messages"):
                if stream:
                    self._sse(_messages_events(reply, model), named=True)
                else:
                    self._json(200, _message(reply, model))
            else:
                self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-should-retry", "false")
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: list[dict[str, Any] | str], *, named: bool = False) -> None:
            parts = []
            for ev in events:
                if isinstance(ev, str):
                    parts.append(f"data: {ev}\n\n")
                elif named:
                    parts.append(f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n")
                else:
                    parts.append(f"data: {json.dumps(ev)}\n\n")
            data = "".join(parts).encode()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            del args

    return Handler


def _error(path: str, reply: Reply) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": "api_error", "message": "scripted failure"}}
    return {"error": {"message": "scripted failure", "type": "server_error", "code": None}}


def _openai_usage(r: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": r.input_tokens,
        "completion_tokens": r.output_tokens,
        "total_tokens": r.input_tokens + r.output_tokens,
        "prompt_tokens_details": {"cached_tokens": r.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
    }


def _chat_message(r: Reply) -> dict[str, Any]:
    if r.tool_calls:
        calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(r.tool_calls)
        ]
        return {"role": "assistant", "content": None, "tool_calls": calls}
    return {"role": "assistant", "content": r.text}


def _chat(r: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _chat_message(r),
                "finish_reason": "tool_calls" if r.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(r),
    }


def _chat_chunks(r: Reply, model: str, include_usage: bool) -> list[dict[str, Any] | str]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks: list[dict[str, Any] | str] = []
    for word in r.text.split(" "):
        delta = {"role": "assistant", "content": word + " "}
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _openai_usage(r)})
    chunks.append("[DONE]")
    return chunks


def _response(r: Reply, model: str) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(r.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": f"call_{i}",
                "name": name,
                "arguments": json.dumps(args),
                "status": "completed",
            }
        )
    if not r.tool_calls:
        output.append(
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": r.text, "annotations": []}],
            }
        )
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": r.input_tokens,
            "input_tokens_details": {"cached_tokens": r.cached_tokens},
            "output_tokens": r.output_tokens,
            "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
            "total_tokens": r.input_tokens + r.output_tokens,
        },
    }


def _responses_events(r: Reply, model: str) -> list[dict[str, Any] | str]:
    done = _response(r, model)
    created = {**done, "status": "in_progress", "output": [], "usage": None}
    return [
        {"type": "response.created", "sequence_number": 0, "response": created},
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_fake",
            "output_index": 0,
            "content_index": 0,
            "delta": r.text,
            "logprobs": [],
        },
        {"type": "response.completed", "sequence_number": 2, "response": done},
    ]


def _anthropic_usage(r: Reply, *, output: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": r.input_tokens - r.cached_tokens,
        "cache_read_input_tokens": r.cached_tokens,
        "cache_creation_input_tokens": r.cache_write_tokens,
        "output_tokens": r.output_tokens if output is None else output,
    }


def _message(r: Reply, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
        for i, (name, args) in enumerate(r.tool_calls)
    ] or [{"type": "text", "text": r.text}]
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if r.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(r),
    }


def _messages_events(r: Reply, model: str) -> list[dict[str, Any] | str]:
    start = {**_message(r, model), "content": [], "stop_reason": None}
    start["usage"] = _anthropic_usage(r, output=1)
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": r.text},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": r.output_tokens},
        },
        {"type": "message_stop"},
    ]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A running :class:`FakeLLM`; stopped after the test."""
    server = FakeLLM().start()
    yield server
    server.stop()
