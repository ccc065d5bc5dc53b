"""A theaios-guardrails engine governed by Redline: every decision is recorded (denials feed
``denial_rate``), a killed agent gets no decision at all, and in LangChain a denial really stops
the tool (the package's own callback only logs it).

Runs against nothing: the policy is written to a temporary directory, the monitor keeps its
events in memory, and the LangChain part (skipped when LangChain is not installed) calls a real
tool directly. The lines that matter are ``GuardrailsMonitor(engine, monitor, agent=...)`` and
``config={"callbacks": [gm.langchain_callback()]}``.

    python examples/integrations/guardrails_engine.py
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from theaios.guardrails import Engine, GuardDenied, GuardEvent, load_policy

from redline import AgentStoppedError, Monitor
from redline.integrations.guardrails import GuardrailsMonitor

POLICY = """\
version: "1.0"
metadata:
  name: support-policy
matchers:
  pii:
    type: pii
rules:
  - name: block-delete
    scope: tool_call
    when: 'tool_name == "delete_records"'
    then: deny
    reason: Deleting records is not allowed
    severity: critical
  - name: approve-large-refund
    scope: action
    when: 'action == "refund" and amount > 100'
    then: require_approval
    tier: strong
    reason: Large refunds need a human
  - name: redact-ssn
    scope: output
    when: 'content matches pii'
    then: redact
    patterns: [ssn]
"""


def langchain_part(gm: GuardrailsMonitor) -> None:
    """A denied tool through the handler: GuardDenied, and the tool body never runs."""
    from langchain_core.tools import tool

    deleted: list[str] = []

    @tool
    def delete_records(table: str) -> str:
        """Delete every record of a table."""
        deleted.append(table)
        return f"deleted {table}"

    try:
        delete_records.invoke(
            {"table": "customers"}, config={"callbacks": [gm.langchain_callback()]}
        )
    except GuardDenied as denied:
        print("langchain: tool blocked:", denied, "| tables deleted:", deleted)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Monitor() as monitor:
        policy = Path(tmp) / "guardrails.yaml"
        policy.write_text(POLICY, encoding="utf-8")
        gm = GuardrailsMonitor(Engine(load_policy(str(policy))), monitor, agent="support-agent")

        events = [
            GuardEvent(
                scope="action", agent="support-agent", data={"action": "refund", "amount": 20}
            ),
            GuardEvent(
                scope="action", agent="support-agent", data={"action": "refund", "amount": 900}
            ),
            GuardEvent(scope="output", agent="support-agent", data={"content": "SSN 123-45-6789"}),
            GuardEvent(
                scope="tool_call", agent="support-agent", data={"tool_name": "delete_records"}
            ),
        ]
        for event in events:
            decision = gm.evaluate(event)  # where the code said engine.evaluate(event)
            print(f"{event.scope:>9}: {decision.outcome:<16} rule={decision.rule}")

        if importlib.util.find_spec("langchain_core") is not None:
            langchain_part(gm)

        monitor.flush()
        snap = monitor.get_metrics("support-agent")
        print(f"recorded {snap.event_count} decisions, denial rate {snap.denial_rate:.0%}")
        for ev in monitor.get_events(agent="support-agent", order="asc"):
            print(f"  [{ev['event_type']}] {ev['data']['outcome']} rule={ev['data']['rule']}")

        monitor.kill_agent("support-agent", reason="runaway refunds")  # or: redline kill ...
        try:
            gm.evaluate(events[0])
        except AgentStoppedError as stop:
            print("stopped before the engine ran:", stop)


if __name__ == "__main__":
    main()
