"""An OpenAI client governed by Redline: every call recorded, and stopped once the agent is killed.

Runs against nothing: the client's HTTP goes to an in-process ``httpx2.MockTransport`` that
answers like the Chat Completions API. Against the real API drop ``http_client=`` (and set
``OPENAI_API_KEY``); the one line that matters is ``guard(...)``.

    python examples/integrations/openai_client.py
"""

from __future__ import annotations

import json

import httpx2
from openai import OpenAI

from redline import AgentStoppedError, Monitor
from redline.integrations.openai import guard


def fake_api(request: httpx2.Request) -> httpx2.Response:
    """A stand-in for api.openai.com: one answer, with cached and reasoning tokens."""
    body = json.loads(request.content)
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hello from the fake API"},
                }
            ],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 80,
                "total_tokens": 1280,
                "prompt_tokens_details": {"cached_tokens": 1024},
                "completion_tokens_details": {"reasoning_tokens": 32},
            },
        },
    )


def main() -> None:
    with Monitor() as monitor:  # Monitor(load_config("monitor.yaml")) to share a store
        raw = OpenAI(
            api_key="sk-example",
            http_client=httpx2.Client(transport=httpx2.MockTransport(fake_api)),
        )
        client = guard(raw, monitor, agent="sales-agent", session_id="s-1")

        ask = [{"role": "user", "content": "Say hello"}]
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=ask)
        print("agent got:", reply.choices[0].message.content)

        monitor.kill_agent("sales-agent", reason="cost spike")  # or: redline kill sales-agent
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=ask)
        except AgentStoppedError as stop:
            print("stopped before the request left:", stop)

        monitor.flush()
        for e in monitor.get_events(event_type="llm_call"):
            print(
                f"recorded llm_call model={e['model']} tokens_in={e['tokens_in']} "
                f"(cached {e['tokens_cached']}) tokens_out={e['tokens_out']} "
                f"(reasoning {e['tokens_reasoning']}) latency={e['latency_ms']:.1f} ms"
            )


if __name__ == "__main__":
    main()
