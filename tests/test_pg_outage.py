"""A hung PostgreSQL must not hang the agent (issue 11's acceptance).

The monitor talks to the real PostgreSQL server through a TCP proxy in this process. "Hung" is
the proxy holding every byte in both directions (what a stalled server, a full disk or a network
partition looks like to a client: the connection stays open and nothing comes back). While it
hangs, ``record()`` of a denial and of an event that trips a kill policy each return at once,
the kill is enforced in this process, and once the proxy lets traffic through again both are
stored exactly once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg")

import contextlib

from conftest import PG_DSN
from redline import AgentEvent, AgentKilledError, Monitor, parse_config
from redline.store.base import EventQuery

DEADLINE_S = 0.010


class HangingProxy:
    """Forwards 127.0.0.1:<port> to PostgreSQL; :meth:`hang` stops moving bytes (connections stay
    open and new ones are accepted but never answered), :meth:`release` lets them flow again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._open = threading.Event()
        self._open.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._stop = True
        self._open.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._open.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._open.wait()  # hung: hold the bytes
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _dsn_parts() -> dict[str, str]:
    return dict(part.split("=", 1) for part in PG_DSN.split())


@pytest.fixture
def proxied(pg_schema: str) -> Iterator[tuple[HangingProxy, Monitor]]:
    parts = _dsn_parts()
    proxy = HangingProxy((parts.get("host", "127.0.0.1"), int(parts.get("port", "5432"))))
    dsn = " ".join(f"{k}={v}" for k, v in {**parts, "host": "127.0.0.1",
                                            "port": str(proxy.port)}.items())  # fmt: skip
    config = parse_config(
        {
            "storage": {"backend": "postgres", "dsn": dsn, "schema": pg_schema},
            "kill_switch": {
                "policies": [
                    {
                        "name": "denials",
                        "metric": "denial_count",
                        "operator": ">=",
                        "threshold": 3,
                        "action": "kill_agent",
                    }
                ]
            },
        }
    )
    monitor = Monitor(config)
    try:
        yield proxy, monitor
    finally:
        proxy.release()
        monitor.close()
        proxy.close()


def _timed_record(monitor: Monitor, event: AgentEvent) -> float:
    started = time.perf_counter()
    monitor.record(event)
    return time.perf_counter() - started


def test_record_never_waits_on_a_hung_postgresql(proxied: tuple[HangingProxy, Monitor]) -> None:
    proxy, monitor = proxied
    monitor.record(AgentEvent(agent="warmup"))
    assert monitor.flush(10)  # the pool is connected through the proxy
    proxy.hang()
    try:
        first = _timed_record(monitor, AgentEvent(agent="sales", event_type="denial"))
        second = _timed_record(monitor, AgentEvent(agent="sales", event_type="denial"))
        tripping = _timed_record(monitor, AgentEvent(agent="sales", event_type="denial"))
        assert max(first, second) < DEADLINE_S, (first, second)
        assert tripping < DEADLINE_S, tripping
        with pytest.raises(AgentKilledError):  # enforced here at once, store or no store
            monitor.check("sales")
        assert not monitor.flush(0.2)  # honest: nothing could be written
    finally:
        proxy.release()
    assert monitor.flush(30)
    stored = [s.event for s in monitor.store.query(EventQuery(agent="sales", limit=None))]
    assert sorted(e.event_type for e in stored).count("denial") == 3
    kills = list(monitor.store.query(EventQuery(event_type="kill", limit=None)))
    assert len(kills) == 1  # the policy's kill, once


def test_kill_agent_on_a_hung_postgresql_returns_within_its_bound(
    proxied: tuple[HangingProxy, Monitor],
) -> None:
    """An operator's kill while the store hangs: enforced at once, returned within the persist
    bound (not once per evidence record), and in the store once it answers."""
    from redline.control.killswitch import PERSIST_TIMEOUT_SECONDS

    proxy, monitor = proxied
    monitor.record(AgentEvent(agent="warmup"))
    assert monitor.flush(10)
    proxy.hang()
    try:
        started = time.perf_counter()
        monitor.kill_agent("billing", reason="runaway", actor="oncall")
        took = time.perf_counter() - started
        assert took < PERSIST_TIMEOUT_SECONDS + 2, took
        with pytest.raises(AgentKilledError):
            monitor.check("billing")
    finally:
        proxy.release()
    monitor.run_duties()  # the duties thread's retry, now
    assert any(k.scope == "agent" and k.target == "billing" for k in monitor.store.load_kills())
    assert monitor.flush(30)
    kills = list(monitor.store.query(EventQuery(event_type="kill", limit=None)))
    assert [k.event.data["target"] for k in kills] == ["billing"]
