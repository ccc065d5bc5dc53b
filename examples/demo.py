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
# The fleet's last ten minutes, replayed on a manual clock. Aligned to a whole minute, so every
# run sees the same seconds and minutes fall in the same windows: the numbers are the same on
# every run (the random choices are seeded too).
START = float(int(time.time()) // 60 * 60 - 660)
END = START + 600
WINDOW = "5m"  # every table below reports the same window: the run's last five minutes
SCENARIO = """\
Four agents work for ten simulated minutes (replayed in a few seconds). Each
calls check() before every step, as a framework integration does.
  minute 4     research-agent repeats one web_search query (a loop, then stuck)
  minute 6     support-agent's CRM times out: an error burst (z-score, drift)
  minute 6.25  billing-agent attempts transfer_payment (a suspicious action)
  minute 8     sales-agent loops on an expensive model: past $5/min the kill
               policy stops it, and its next check() refuses the next step
"""


def main() -> int:
    """Run the scenario and print what happened."""
    console = Console()
    console.rule("[bold]The scenario")
    console.print(SCENARIO)
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
    config = load_config(config_file)
    # The simulation runs the monitor's interval work itself, once per simulated second
    # (run_duties()), instead of on the writer thread's wall-clock tick: ten minutes pass in a
    # few seconds, and a tick landing at a different simulated moment on each run would make
    # the numbers differ from run to run.
    config.kill_switch.poll_interval_seconds = 3600.0
    monitor = Monitor(config, clock=clock)
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
        if step % 4 == 3:
            monitor.run_duties()

    monitor.flush()
    _report(console, monitor, anomalies, stopped)
    monitor.close()

    cli = ["-c", str(config_file)]
    at = str(int(END))
    console.rule(f"[bold]$ redline status --window {WINDOW} --at <the run's end>")
    console.print("The same window, read back from the store by the CLI (no live state):")
    redline_cli([*cli, "status", "--window", WINDOW, "--at", at])
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
    table = Table(
        "min",
        "kind",
        "agent",
        "what",
        title="Anomalies and actions",
        caption="min: minutes into the ten-minute run",
    )
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
                    title="Metrics (the run's last 5 minutes)")
    for snap in monitor.get_all_metrics(window=300):
        metrics.add_row(snap.agent, str(snap.event_count), f"${snap.cost_per_minute:.4f}",
                        f"{snap.error_rate:.1%}", f"{snap.p95_latency_ms:.0f} ms",
                        f"{snap.tool_failure_rate:.1%}")
    console.print(metrics)

    redacted = next(iter(monitor.get_events(event_type="action", limit=1)), None)
    if redacted is not None:
        console.print(f"A stored action's data (secrets scrubbed): {redacted['data']}")
    stats = monitor.stats()
    own = stats["written"] - stats["recorded"]
    console.print(
        f"The agents recorded {stats['recorded']:,} events; the store holds "
        f"{stats['written']:,}: those plus {own} of Redline's own (the anomalies, alerts and the "
        f"kill it recorded). Dropped: {stats['dropped']}."
    )
    console.print(
        f"{stats['anomalies']} anomalies, {stats['kills']} kill. Events recorded while killed: "
        f"{stats['blocked_while_killed']}, because sales-agent called check() before each step: "
        "after the kill it took no step at all."
    )


if __name__ == "__main__":
    sys.exit(main())
