"""A CrewAI crew governed by Redline: ``instrument(monitor)`` records every model and tool call,
and a kill made while the model thinks stops the tool it asked for before it runs.

Runs against nothing on the network: the agent's model is CrewAI's own OpenAI provider
(``crewai.LLM``) pointed at a tiny local server that speaks the chat-completions API and answers
from a script (call the ``refund`` tool, then answer). With a real model, drop ``base_url`` and
``api_key``; the one line that matters is ``instrument(monitor)`` before ``crew.kickoff()``.

CrewAI pins its own openai and pydantic, so run it in the CrewAI venv (``make crewai-env``):

    .venv-crewai/bin/python examples/integrations/crewai_crew.py
"""

from __future__ import annotations

import os

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

from redline import AgentStoppedError, Monitor
from redline.integrations.crewai import instrument

USAGE = {
    "prompt_tokens": 900,
    "completion_tokens": 40,
    "total_tokens": 940,
    "prompt_tokens_details": {"cached_tokens": 768},
}


def chat_reply(turn: int) -> dict[str, Any]:
    """The scripted model: first ask for ``refund(order="A-17")``, then answer."""
    if turn % 2 == 0:
        call = {
            "id": f"call_{turn}",
            "type": "function",
            "function": {"name": "refund", "arguments": json.dumps({"order": "A-17"})},
        }
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        message, finish = {"role": "assistant", "content": "Refunded A-17."}, "stop"
    return {
        "id": f"chatcmpl-{turn}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


class ScriptedServer:
    """A local chat-completions endpoint; ``while_thinking`` runs inside the next request."""

    def __init__(self) -> None:
        self.turn = 0
        self.while_thinking: Callable[[], None] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if server.while_thinking is not None:
                    action, server.while_thinking = server.while_thinking, None
                    action()
                body = json.dumps(chat_reply(server.turn)).encode()
                server.turn += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                del args

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


refunds: list[str] = []


@tool("refund")
def refund(order: str) -> str:
    """Refund an order."""
    refunds.append(order)
    return f"refunded {order}"


def support_crew(url: str) -> Crew:
    llm = LLM(model="gpt-4o", base_url=url, api_key="not-needed-offline")
    agent = Agent(
        role="support-agent",
        goal="resolve refund tickets",
        backstory="a careful support agent",
        llm=llm,
        tools=[refund],
    )
    task = Task(description="Refund order A-17.", expected_output="one line", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def main() -> None:
    server = ScriptedServer()
    with Monitor() as monitor:
        handle = instrument(monitor)  # every crew in this process, from here on

        out = support_crew(server.url).kickoff()
        print("crew said:", out.raw, "| refunds:", refunds)

        # Another process would run `redline kill support-agent`; here the monitor does it
        # while the model is thinking, so the refund it asks for is stopped before it runs.
        server.while_thinking = lambda: monitor.kill_agent("support-agent", reason="refunds")
        try:
            support_crew(server.url).kickoff()
        except Exception as exc:  # CrewStopped: CrewAI's HookAborted, the stop as its cause
            stop = exc.__cause__
            if not isinstance(stop, AgentStoppedError):
                raise
            print("stopped:", stop, "| refunds still:", refunds)

        handle.uninstall()
        monitor.flush()
        for ev in sorted(monitor.get_events(limit=20), key=lambda e: e["timestamp"]):
            if ev["event_type"] in ("llm_call", "tool_call"):
                print(
                    f"  {ev['event_type']:<9} {ev.get('model') or ev.get('tool'):<7}"
                    f" tokens_in={ev.get('tokens_in')} cached={ev.get('tokens_cached')}"
                    f" session={ev['session_id'][:8]}… status={ev['status']}"
                )
    server.close()


if __name__ == "__main__":
    main()
