"""An Anthropic client governed by Redline through the SDK's own middleware hook.

Runs against nothing: the client's HTTP goes to an in-process ``httpx2.MockTransport`` that
answers like the Messages API, reporting cache reads and writes apart from ``input_tokens`` as
Anthropic does; the recorded ``tokens_in`` adds them in (Redline's one convention). Against the
real API drop ``http_client=`` (and set ``ANTHROPIC_API_KEY``).

    python examples/integrations/anthropic_client.py
"""

from __future__ import annotations

import json

import httpx2
from anthropic import Anthropic

from redline import AgentStoppedError, Monitor
from redline.integrations.anthropic import guard


def fake_api(request: httpx2.Request) -> httpx2.Response:
    """A stand-in for api.anthropic.com: 200 new + 1000 cache-read + 300 cache-write tokens."""
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Hello from the fake API"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 200,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 300,
                "output_tokens": 60,
            },
        },
    )


def main() -> None:
    with Monitor() as monitor:
        raw = Anthropic(
            api_key="sk-example",
            http_client=httpx2.Client(transport=httpx2.MockTransport(fake_api)),
        )
        client = guard(raw, monitor, agent="support-agent", session_id="ticket-9")
        ask = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": "Hi"}],
        }

        print("agent got:", client.messages.create(**ask).content[0].text)
        monitor.kill_agent("support-agent", reason="runaway loop")
        try:
            client.messages.create(**ask)
        except AgentStoppedError as stop:
            print("stopped before the request left:", stop)

        monitor.flush()
        for e in monitor.get_events(event_type="llm_call"):
            print(
                f"recorded llm_call model={e['model']} tokens_in={e['tokens_in']} "
                f"(cache read {e['tokens_cached']}, cache write {e['tokens_cache_write']}) "
                f"tokens_out={e['tokens_out']}"
            )


if __name__ == "__main__":
    main()
