"""What a framework integration adds to each model call and each tool call.

Each case runs the same framework call twice over, without Redline and with it, in one run:
rounds of ``--calls`` plain calls then as many governed ones, alternating, so drift on a shared
machine hits both sides alike. The overhead is the median over rounds of (governed - plain) per
call; target <= 50 µs. Models are offline (LangChain's fake chat model, the OpenAI and Anthropic
SDKs on an in-process ``httpx2.MockTransport``), so the baseline is the framework's own cost and
the difference is Redline's: the kill check, one event built and recorded, the body watched.
The monitor keeps its events in memory by default, so the number is the integration's; with
``--sqlite`` it writes them to a SQLite file in a temp dir, and the writer thread's share of the
GIL (encoding, hash chain, insert: the monitor's cost, measured by ``bench/record.py``) shows up
in the caller's time too.

Part-B integrations add rows without touching this file: any ``bench/integrations_*.py`` that
defines ``CASES``, a list of ``(name, per, make)`` where ``per`` is ``"model call"`` or
``"tool call"`` and ``make(monitor)`` returns ``(plain, governed)``, two zero-argument callables
doing one call each; it may return a third, ``hooked``: the framework with an empty hook of the
same kind (a no-op callback handler, transport or middleware), which splits the overhead into
what the framework charges for having any hook and what Redline's own code costs.

    .venv/bin/python bench/integrations.py              # ~1 minute
    .venv/bin/python bench/integrations.py --quick
    .venv/bin/python bench/integrations.py --sqlite     # the store's writer running alongside
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from redline import Monitor, parse_config  # noqa: E402
from redline._compiled import compiled_modules  # noqa: E402

Make = Callable[[Monitor], tuple[Callable[[], Any], ...]]
TARGET_US = 50.0


# -- LangChain ----------------------------------------------------------------------------------


def _langchain_cases() -> list[tuple[str, str, Make]]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from redline.integrations.langchain import RedlineCallbackHandler

    usage: Any = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    reply = AIMessage("ok", usage_metadata=usage, response_metadata={"model_name": "gpt-4o"})

    class Noop(BaseCallbackHandler):
        run_inline = True

    empty: Any = {"callbacks": [Noop()]}

    def model_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
        model = GenericFakeChatModel(messages=itertools.repeat(reply))
        governed: Any = {"callbacks": [RedlineCallbackHandler(monitor, agent="bench")]}
        return (
            lambda: model.invoke("hi"),
            lambda: model.invoke("hi", config=governed),
            lambda: model.invoke("hi", config=empty),
        )

    def tool_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
        @tool
        def lookup(q: str) -> str:
            """Look q up."""
            return q

        governed: Any = {"callbacks": [RedlineCallbackHandler(monitor, agent="bench")]}
        args = {"q": "acme"}
        return (
            lambda: lookup.invoke(args),
            lambda: lookup.invoke(args, config=governed),
            lambda: lookup.invoke(args, config=empty),
        )

    return [
        ("langchain: chat model invoke", "model call", model_call),
        ("langchain: tool invoke", "tool call", tool_call),
    ]


# -- the SDK clients ------------------------------------------------------------------------------


def _sdk_cases() -> list[tuple[str, str, Make]]:
    import anthropic
    import httpx2
    import openai

    from redline.integrations.anthropic import guard as guard_anthropic
    from redline.integrations.openai import guard as guard_openai

    chat = json.dumps(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "ok"},
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
    ).encode()
    message = json.dumps(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 20},
        }
    ).encode()

    def api(body: bytes) -> Any:
        headers = {"content-type": "application/json"}
        return httpx2.MockTransport(
            lambda request: httpx2.Response(200, headers=headers, content=body)
        )

    ask = [{"role": "user", "content": "hi"}]

    class Passthrough(httpx2.BaseTransport):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def handle_request(self, request: Any) -> Any:
            return self.inner.handle_request(request)

    class NoopMiddleware(anthropic.Middleware):
        def handle(self, request: Any, call_next: Any) -> Any:
            return call_next(request)

    def openai_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
        raw = openai.OpenAI(api_key="k", http_client=httpx2.Client(transport=api(chat)))
        governed = guard_openai(raw, monitor, agent="bench")
        hooked = openai.OpenAI(
            api_key="k", http_client=httpx2.Client(transport=Passthrough(api(chat)))
        )
        return (
            lambda: raw.chat.completions.create(model="gpt-4o", messages=ask),  # type: ignore[arg-type]
            lambda: governed.chat.completions.create(model="gpt-4o", messages=ask),  # type: ignore[arg-type]
            lambda: hooked.chat.completions.create(model="gpt-4o", messages=ask),  # type: ignore[arg-type]
        )

    def anthropic_call(monitor: Monitor) -> tuple[Callable[[], Any], ...]:
        raw = anthropic.Anthropic(api_key="k", http_client=httpx2.Client(transport=api(message)))
        governed = guard_anthropic(raw, monitor, agent="bench")
        hooked = raw.with_middleware(NoopMiddleware())
        kw: Any = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": ask}
        return (
            lambda: raw.messages.create(**kw),
            lambda: governed.messages.create(**kw),
            lambda: hooked.messages.create(**kw),
        )

    return [
        ("openai: chat.completions.create", "model call", openai_call),
        ("anthropic: messages.create", "model call", anthropic_call),
    ]


# -- running -------------------------------------------------------------------------------------


def _extra_cases() -> list[tuple[str, str, Make]]:
    """``CASES`` of every ``bench/integrations_*.py`` (the other integrations' rows)."""
    found: list[tuple[str, str, Make]] = []
    for path in sorted(HERE.glob("integrations_*.py")):
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except ImportError as exc:  # its framework is not installed here
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        found.extend(getattr(module, "CASES", []))
    return found


def _per_call_us(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1000.0


def measure(make: Make, monitor: Monitor, rounds: int, calls: int) -> dict[str, float | None]:
    fns = make(monitor)
    plain, governed = fns[0], fns[1]
    hooked = fns[2] if len(fns) > 2 else None
    for _ in range(max(10, calls // 4)):  # warm every path (imports, caches, first events)
        for fn in fns:
            fn()
    base, gov, hook, diff, own = [], [], [], [], []
    for _ in range(rounds):
        p = _per_call_us(plain, calls)
        g = _per_call_us(governed, calls)
        base.append(p)
        gov.append(g)
        diff.append(g - p)
        if hooked is not None:
            h = _per_call_us(hooked, calls)
            hook.append(h)
            own.append(g - h)
        monitor.flush()  # the writer keeps up between rounds, not during the timing
    return {
        "plain_us": statistics.median(base),
        "hooked_us": statistics.median(hook) if hook else None,
        "governed_us": statistics.median(gov),
        "overhead_us": statistics.median(diff),
        "redline_own_us": statistics.median(own) if own else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 100 calls")
    parser.add_argument("--sqlite", action="store_true", help="store events in a SQLite file")
    args = parser.parse_args()
    rounds, calls = (5, 100) if args.quick else (args.rounds, args.calls)

    cases: list[tuple[str, str, Make]] = []
    for builder in (_langchain_cases, _sdk_cases):
        try:
            cases.extend(builder())
        except ImportError as exc:
            print(f"skipped {builder.__name__}: {exc}", file=sys.stderr)
    cases.extend(_extra_cases())

    load = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        storage = {"path": str(Path(tmp) / "bench.db")} if args.sqlite else {"backend": "memory"}
        config = parse_config({"storage": storage})
        with Monitor(config) as monitor:
            for name, per, make in cases:
                row = measure(make, monitor, rounds, calls)
                results.append({"case": name, "per": per, **row})
            stats = monitor.stats()

    def us(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    store = "SQLite file" if args.sqlite else "memory store"
    print(
        f"integration overhead, {rounds} rounds x {calls} calls each side, median per call, "
        f"{store}, {'compiled' if compiled_modules() else 'pure Python'} build"
    )
    print(
        "| case | per | without µs | empty hook µs | with Redline µs | overhead µs "
        "| of which Redline's own µs | target ≤ 50 µs |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        verdict = "PASS" if r["overhead_us"] <= TARGET_US else "FAIL"
        print(
            f"| {r['case']} | {r['per']} | {us(r['plain_us'])} | {us(r['hooked_us'])} "
            f"| {us(r['governed_us'])} | {us(r['overhead_us'])} | {us(r['redline_own_us'])} "
            f"| {verdict} |"
        )
    print(
        f"integration errors swallowed: {stats['integration_errors']}; "
        f"load average {load:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "integrations.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
