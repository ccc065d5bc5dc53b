"""A simulated fleet of agents that misbehaves on purpose, and what Redline does about it.

Four agents work for the last ten minutes, replayed on a manual clock (the run takes seconds):
``support-agent`` has an error burst (a z-score anomaly), ``research-agent`` loops on one tool
call, ``billing-agent`` tries a payment transfer (a suspicious action), and ``sales-agent``'s cost
spikes past $5/min, which trips the automatic kill policy within one event. Each agent calls
``check()`` before every step, as an integration would, so the killed agent stops.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from redline import AgentEvent, AgentKilledError, Monitor, load_config
from redline.cli import main as redline_cli
from redline.testing import ManualClock

HERE = Path(__file__).parent
OUT = Path("demo-out")
AGENTS = ("sales-agent", "support-agent", "research-agent", "billing-agent")
START = float(int(time.time()) - 600)  # the fleet's last ten minutes, replayed


def main() -> int:
    """Run the scenario and print what happened."""
    console = Console()
    rng = random.Random(7)
    clock = ManualClock(START)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    config_file = OUT / "monitor.yaml"
    config_file.write_text(
        (HERE / "demo.yaml").read_text(encoding="utf-8")
        + f"\nstorage:\n  path: {(OUT / 'fleet.db').resolve()}\n"
        + f"  anchor_path: {(OUT / 'anchors.jsonl').resolve()}\n",
        encoding="utf-8",
    )
    monitor = Monitor(load_config(config_file), clock=clock)
    anomalies = []
    monitor.on_anomaly(anomalies.append)
    stopped: dict[str, str] = {}

    for step in range(600 * 4):  # 4 steps per simulated second, ten minutes
        clock.advance(0.25)
        minute = (clock.time() - START) / 60
        for agent in AGENTS:
            if agent in stopped:
                continue
            try:
                monitor.check(agent, session_id=f"{agent}-s1")
            except AgentKilledError as exc:
                stopped[agent] = str(exc)
                continue
            monitor.record(_next_event(agent, minute, step, rng, clock.time()))

    monitor.flush()
    _report(console, monitor, anomalies, stopped)
    monitor.close()

    cli = ["-c", str(config_file)]
    console.rule("[bold]$ redline status")
    redline_cli([*cli, "status"])
    console.rule("[bold]$ redline verify")
    verified = redline_cli([*cli, "verify"])
    console.rule("[bold]$ redline export --format soc2")
    exported = redline_cli([*cli, "export", "--format", "soc2", "--output", str(OUT / "soc2.json")])
    console.print(f"SOC 2 report: {OUT / 'soc2.json'} (the store and anchors are in {OUT}/)")
    return 0 if verified == 0 and exported == 0 else 1


def _next_event(agent: str, minute: float, step: int, rng: random.Random, now: float) -> AgentEvent:
    """What each agent does at this moment of the script."""
    session = f"{agent}-s1"
    if agent == "sales-agent" and minute >= 8:
        # The spike: an expensive model in a tight loop, ~$12/min.
        return AgentEvent(timestamp=now, agent=agent, event_type="llm_call", session_id=session,
                          model="gpt-4", cost_usd=0.8, latency_ms=900.0, tokens_in=20_000,
                          tokens_out=2_000)
    if agent == "support-agent" and 6 <= minute < 6.5:
        return AgentEvent(timestamp=now, agent=agent, event_type="error", session_id=session,
                          data={"error_type": "TimeoutError", "message": "CRM API timed out"})
    if agent == "research-agent" and 4 <= minute < 4.1:
        return AgentEvent(timestamp=now, agent=agent, event_type="tool_call", tool="web_search",
                          session_id=session, latency_ms=400.0, status="ok",
                          data={"args": {"query": "quarterly revenue 2025"}})
    if agent == "billing-agent" and step == 1500:
        return AgentEvent(timestamp=now, agent=agent, event_type="tool_call",
                          tool="transfer_payment", session_id=session, status="ok",
                          data={"args": {"amount": 9_500, "to": "acct-553"}})
    kind = rng.choices(["llm_call", "tool_call", "action", "error"], [5, 3, 2, 0.15])[0]
    if kind == "llm_call":
        return AgentEvent(timestamp=now, agent=agent, event_type="llm_call", session_id=session,
                          model="gpt-4o-mini", cost_usd=rng.uniform(0.0005, 0.002),
                          latency_ms=rng.gauss(600, 60), tokens_in=rng.randint(500, 1500),
                          tokens_out=rng.randint(50, 300), tokens_cached=rng.randint(0, 400))
    if kind == "tool_call":
        tool = rng.choice(["crm_lookup", "kb_search", "calendar"])
        return AgentEvent(timestamp=now, agent=agent, event_type="tool_call", tool=tool,
                          session_id=session, latency_ms=rng.gauss(120, 20),
                          status="ok" if rng.random() > 0.03 else "error",
                          data={"args": {"id": rng.randint(1, 10_000)}})
    if kind == "error":
        return AgentEvent(timestamp=now, agent=agent, event_type="error", session_id=session,
                          data={"error_type": "RateLimitError"})
    return AgentEvent(timestamp=now, agent=agent, event_type="action", session_id=session,
                      data={"action": "reply", "api_key": "sk-live-should-never-be-stored"})


def _report(console: Console, monitor: Monitor, anomalies: list, stopped: dict[str, str]) -> None:
    console.rule("[bold]What Redline saw and did")
    table = Table("minute", "kind", "agent", "what", title="Anomalies and actions")
    for a in anomalies:
        table.add_row(f"{(a.timestamp - START) / 60:5.2f}", a.kind, a.agent, a.message)
    console.print(table)

    kills = Table("scope", "target", "by", "reason", title="Kill switches")
    for rec in monitor.kills():
        kills.add_row(rec.scope, rec.target, rec.actor, rec.reason)
    console.print(kills)
    for agent, why in stopped.items():
        console.print(f"[red]{agent} stopped at its next step:[/] AgentKilledError: {why}")

    metrics = Table("agent", "events", "cost/min", "error rate", "p95 latency", "tool failures",
                    title="Metrics (last 5 minutes)")
    for snap in monitor.get_all_metrics(window=300):
        metrics.add_row(snap.agent, str(snap.event_count), f"${snap.cost_per_minute:.4f}",
                        f"{snap.error_rate:.1%}", f"{snap.p95_latency_ms:.0f} ms",
                        f"{snap.tool_failure_rate:.1%}")
    console.print(metrics)

    redacted = next(iter(monitor.get_events(event_type="action", limit=1)), None)
    if redacted is not None:
        console.print(f"A stored action's data (secrets scrubbed): {redacted['data']}")
    stats = monitor.stats()
    console.print(
        f"recorded {stats['recorded']:,} events, stored {stats['written']:,}, "
        f"dropped {stats['dropped']}, blocked while killed {stats['blocked_while_killed']}, "
        f"anomalies {stats['anomalies']}, kills {stats['kills']}"
    )


if __name__ == "__main__":
    sys.exit(main())
