"""The peer side of ``bench/record.py``, and the event mix both sides share.

This module imports only the standard library at the top, so ``bench/record.py`` (Redline's venv)
can import :class:`Mix` from it, and ``bench/.peer-venv/bin/python bench/_peer_record.py PARAMS``
(the published peer ``theaios-agent-monitor`` 0.1.2 in its own throw-away venv) can run the peer
half of the benchmark. The peer reads the wall clock (``time.time()``) inside its metrics,
baselines, anomaly cooldowns and alerts; here every module of the peer that imported ``time`` gets
a stand-in whose ``time()`` returns simulated time, so the peer prunes its windows exactly as it
would at the simulated event rate. Results go to stdout as one JSON line after ``RESULT:``.

Warm-up: at 1 event/s the peer's window is filled through ``record()`` itself. At 100 and 10,000
events/s that would take minutes to hours (each ``record()`` rescans the agent's window three
times), so the window's events are appended straight into the peer's per-agent deques (the very
``_EventRecord`` objects ``record()`` would have appended), its baselines get 40 samples per
agent and metric, and a short tail of real ``record()`` calls follows before measuring.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["AGENT_WINDOW", "TARGET_COST_PER_MINUTE", "Mix", "Spec", "percentiles"]

#: The window of seed 000's config, in seconds.
AGENT_WINDOW = 300
#: Per-agent spend the mix aims at, in USD/minute: 20 % of the kill policy's 5.0, so it never trips.
TARGET_COST_PER_MINUTE = 1.0

Spec = tuple[float, str, str, dict[str, Any], str, float | None, float | None]

# Event types and their weights (percent): mostly actions, tool calls and LLM calls, a few denials
# and errors.
_TYPES = (("action", 36), ("tool_call", 30), ("llm_call", 30), ("denial", 2), ("error", 2))
# Tool names without a risky word (Redline's suspicious-action detector would alert on those).
_TOOLS = ("search", "read_file", "summarize", "lookup_customer", "fetch_page")
_ROWS = 997  # a prime, so agent (i % agents) and row (i % 997) combine in every way


class Mix:
    """A deterministic, index-addressable stream of realistic agent events at ``rate`` events/s.

    Event ``i`` happens at ``t0 + i / rate`` for agent ``i % agents``. Tool calls name their tool
    in ``data["name"]`` with distinct arguments (so no loop is detected); denials carry no cost.
    Costs are scaled with the rate so each agent spends about ``TARGET_COST_PER_MINUTE`` per
    minute, whatever the rate: the kill policy (``cost_per_minute > 5.0``) never trips.
    """

    def __init__(
        self,
        rate: float,
        *,
        agents: int = 10,
        t0: float = 1_700_000_000.0,
        seed: int = 7,
        cost_scale: float | None = None,
    ) -> None:
        self.rate = rate
        self.agents = agents
        self.t0 = t0
        self.agent_names = [f"agent-{k:03d}" for k in range(agents)]
        per_agent_per_minute = rate / agents * 60.0
        self.cost_scale = (
            cost_scale if cost_scale is not None else TARGET_COST_PER_MINUTE / per_agent_per_minute
        )
        rng = random.Random(seed)
        kinds = [t for t, weight in _TYPES for _ in range(weight)]
        self._rows: list[tuple[str, str | None, float | None, float | None]] = []
        for _ in range(_ROWS):
            etype = rng.choice(kinds)
            tool = rng.choice(_TOOLS) if etype == "tool_call" else None
            if etype == "denial":
                cost, latency = None, None
            elif etype == "error":
                cost, latency = None, rng.uniform(5.0, 2_000.0)
            else:
                # Costs average 1.0 x cost_scale; latencies 50 ms .. 2.5 s, LLM calls slower.
                cost = rng.uniform(0.5, 1.5)
                latency = rng.uniform(300.0, 2_500.0) if etype == "llm_call" else rng.uniform(
                    50.0, 900.0
                )
            self._rows.append((etype, tool, cost, latency))

    def time_of(self, i: int) -> float:
        """Simulated time of event ``i``."""
        return self.t0 + i / self.rate

    def spec(self, i: int) -> Spec:
        """``(timestamp, agent, event_type, data, session_id, cost_usd, latency_ms)`` of event ``i``."""
        etype, tool, cost, latency = self._rows[i % _ROWS]
        agent = self.agent_names[i % self.agents]
        data: dict[str, Any] = {"model": "gpt-4"}
        if tool is not None:
            data = {"model": "gpt-4", "name": tool, "args": f"q-{i}"}
        session = f"{agent}-s{i // self.agents // 500}"
        return (
            self.t0 + i / self.rate,
            agent,
            etype,
            data,
            session,
            None if cost is None else cost * self.cost_scale,
            latency,
        )


def percentiles(samples_ns: list[int]) -> dict[str, Any]:
    """p50/p99/max/mean of nanosecond samples, in microseconds, with events/s = 1 / mean."""
    if not samples_ns:
        return {"n": 0}
    ordered = sorted(samples_ns)
    n = len(ordered)
    mean = sum(ordered) / n

    def pick(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1_000.0

    return {
        "n": n,
        "p50_us": pick(0.50),
        "p99_us": pick(0.99),
        "max_us": ordered[-1] / 1_000.0,
        "mean_us": mean / 1_000.0,
        "events_per_s": 1e9 / mean if mean > 0 else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# The peer half (runs inside bench/.peer-venv)
# ---------------------------------------------------------------------------------------------
class _SimClock:
    """Simulated time the patched peer reads."""

    def __init__(self, now: float) -> None:
        self.now = now


class _SimTime:
    """Stands in for the ``time`` module in the peer's modules: ``time()`` is simulated."""

    def __init__(self, clock: _SimClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _AlertCounter:
    """Counts the alerts the peer dispatches (wraps its dispatcher's two entry points)."""

    def __init__(self, dispatcher: Any) -> None:
        self.counts = {"anomaly": 0, "kill": 0}
        self._dispatch = dispatcher.dispatch
        self._dispatch_kill = dispatcher.dispatch_kill
        dispatcher.dispatch = self.dispatch
        dispatcher.dispatch_kill = self.dispatch_kill

    def dispatch(self, alert: Any) -> None:
        self.counts["anomaly"] += 1
        self._dispatch(alert)

    def dispatch_kill(self, *args: Any, **kwargs: Any) -> None:
        self.counts["kill"] += 1
        self._dispatch_kill(*args, **kwargs)


def _patch_peer_time(clock: _SimClock) -> list[str]:
    """Point every peer module's ``time`` at the simulated clock; returns the modules patched."""
    import theaios.agent_monitor as peer  # type: ignore[import-not-found,unused-ignore]

    base = Path(peer.__file__).parent
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base).with_suffix("")
        name = ".".join(("theaios", "agent_monitor", *rel.parts))
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        if name.endswith(".cli"):
            continue  # the CLI is not on the record() path and needs click at import
        __import__(name)
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("theaios.agent_monitor") and getattr(module, "time", None) is time:
            module.time = _SimTime(clock)  # type: ignore[attr-defined]
            patched.append(name)
    return sorted(patched)


def _run_peer(params: dict[str, Any]) -> dict[str, Any]:
    import theaios.agent_monitor as peer  # type: ignore[import-not-found,unused-ignore]
    from theaios.agent_monitor import AgentEvent, Monitor, load_config  # type: ignore[import-not-found,unused-ignore]
    from theaios.agent_monitor.metrics import _EventRecord  # type: ignore[import-not-found,unused-ignore]

    clock = _SimClock(0.0)
    patched = _patch_peer_time(clock)
    pc = time.perf_counter_ns
    out: dict[str, Any] = {
        "version": peer.__version__,
        "python": sys.version.split()[0],
        "patched_modules": patched,
        "scenarios": [],
    }
    for scenario in params["scenarios"]:
        rate = float(scenario["rate"])
        mix = Mix(rate, agents=scenario["agents"], t0=params["t0"])
        with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
            raw = dict(params["config"])
            raw["storage"] = {"path": str(Path(tmp) / "events.jsonl")}
            raw["baselines"] = {"storage_path": str(Path(tmp) / "baselines.json")}
            raw["kill_switch"] = {**raw["kill_switch"], "state_path": str(Path(tmp) / "kill.json")}
            cfg_path = Path(tmp) / "monitor.json"  # JSON is YAML; the peer loads it with PyYAML
            cfg_path.write_text(json.dumps(raw), encoding="utf-8")
            monitor = Monitor(load_config(str(cfg_path)))
            alerts = _AlertCounter(monitor._alerts)

            def event(i: int, _mix: Mix = mix) -> Any:
                t, agent, etype, data, session, cost, latency = _mix.spec(i)
                return AgentEvent(
                    timestamp=t, agent=agent, event_type=etype, data=data,
                    session_id=session, cost_usd=cost, latency_ms=latency,
                )

            warm, tail, measure = scenario["warmup"], scenario["tail"], scenario["measure"]
            started = time.perf_counter()
            if scenario["prefill"]:
                # The events record() would have appended, straight into the window's deques.
                gc.disable()
                streams = monitor._metrics._streams
                for i in range(warm):
                    t, agent, etype, _d, _s, cost, latency = mix.spec(i)
                    streams[agent].append(_EventRecord(t, etype, cost or 0.0, latency or 0.0))
                clock.now = mix.time_of(warm - 1)
                rng = random.Random(3)
                for agent in mix.agent_names:
                    snap = monitor.get_metrics(agent)
                    for _ in range(40):
                        for metric in monitor._config.baselines.metrics:
                            value = float(getattr(snap, metric))
                            monitor._baselines.update(
                                agent, metric, value * rng.uniform(0.99, 1.01)
                            )
                gc.enable()
            else:
                for i in range(warm):
                    clock.now = mix.time_of(i)
                    monitor.record(event(i))
            for i in range(warm, warm + tail):
                clock.now = mix.time_of(i)
                monitor.record(event(i))
            first = warm + tail
            events = [event(i) for i in range(first, first + measure)]
            window_sizes = [len(monitor._metrics._streams[a]) for a in mix.agent_names]
            gc.collect()
            samples: list[int] = []
            record = monitor.record
            for k, ev in enumerate(events):
                clock.now = mix.time_of(first + k)
                a = pc()
                record(ev)
                b = pc()
                samples.append(b - a)
            result = percentiles(samples)
            result.update(
                label=scenario["label"],
                rate=rate,
                agents=scenario["agents"],
                warmup=warm,
                prefilled=bool(scenario["prefill"]),
                tail=tail,
                events_in_window_per_agent=sum(window_sizes) / len(window_sizes),
                killed_agents=sorted(monitor._kill_switch.get_state().killed_agents),
                alerts=alerts.counts,
                seconds=time.perf_counter() - started,
            )
            out["scenarios"].append(result)
    return out


def main() -> None:
    """``_peer_record.py PARAMS.json``: run the peer scenarios, print ``RESULT: {json}``."""
    params = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result = _run_peer(params)
    sys.stdout.write("RESULT: " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
