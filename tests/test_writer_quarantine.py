"""One event the store cannot encode never stops the events after it from being stored."""

from __future__ import annotations

from collections.abc import Sequence

from redline import AgentEvent, EventQuery, Monitor
from redline.store.memory import MemoryStore


class PickyStore(MemoryStore):
    """A memory store that cannot encode events whose agent is ``poison``."""

    def append(self, events: Sequence[AgentEvent]) -> None:
        if any(e.agent == "poison" for e in events):
            raise TypeError("cannot encode this event")
        super().append(events)


def test_a_poison_event_is_set_aside_and_the_rest_are_stored() -> None:
    """The batch is retried one by one: good events stored, the bad one counted."""
    store = PickyStore()
    with Monitor(store=store) as m:
        m.record(AgentEvent(agent="a"))
        m.record(AgentEvent(agent="poison"))
        m.record(AgentEvent(agent="b"))
        assert m.flush(5.0)
        assert m.stats()["quarantined"] == 1
        assert m.stats()["write_errors"] == 0
    assert sorted(s.event.agent for s in store.query(EventQuery())) == ["a", "b"]
