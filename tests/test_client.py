"""Specification of ``RemoteMonitor``: a Monitor-shaped client of a real Redline server."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette")

from redline import AgentEvent, AgentKilledError, Monitor, parse_config
from redline.client import RemoteError, RemoteMonitor
from redline.server import RedlineServer, ServerConfig, TokenConfig, create_app

ADMIN = "client-admin-0123456789abcdef"
INGEST = "client-ingest-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Monitor]]:
    monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / "events.db")}}))
    config = ServerConfig(
        port=0,
        tokens=[
            TokenConfig(name="release-bot", role="admin", token=ADMIN),
            TokenConfig(name="agent-fleet", role="ingest", token=INGEST),
        ],
        rate_limit_per_minute=100_000,
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    yield server.url, monitor
    server.stop()
    monitor.close()


@pytest.fixture
def client(served: tuple[str, Monitor]) -> Iterator[RemoteMonitor]:
    c = RemoteMonitor(served[0], ADMIN, flush_interval=0.05)
    yield c
    c.close()


def stored(monitor: Monitor, **where: Any) -> list[dict[str, Any]]:
    return monitor.get_events(limit=None, **where)


def test_records_arrive_in_batches(served: tuple[str, Monitor]) -> None:
    """Events recorded on the client reach the server's store in batches of ``batch_size``."""
    url, monitor = served
    with RemoteMonitor(url, INGEST, batch_size=500) as client:
        for i in range(1200):
            client.record(AgentEvent(agent=f"a{i % 3}", event_type="llm_call", cost_usd=0.001))
        assert client.flush(10)
        stats = client.stats()
    assert len(stored(monitor)) == 1200
    assert stats["sent"] == 1200
    assert stats["batches"] == 3
    assert (stats["dropped"], stats["failed"]) == (0, 0)
    assert monitor.get_metrics("a0").event_count == 400


def test_flush_interval_sends_without_flush(served: tuple[str, Monitor]) -> None:
    """A partial batch goes out on its own after ``flush_interval``."""
    url, monitor = served
    client = RemoteMonitor(url, INGEST, flush_interval=0.1)
    try:
        client.record(AgentEvent(agent="lonely"))
        client.record({"agent": "as-a-dict", "event_type": "tool_call", "tool": "search"})
        deadline = time.monotonic() + 5
        while len(stored(monitor)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {e["agent"] for e in stored(monitor)} == {"lonely", "as-a-dict"}
    finally:
        client.close()


def test_repairs_and_rejections_are_counted(
    client: RemoteMonitor, served: tuple[str, Monitor]
) -> None:
    """What the server repaired or rejected is counted on the client."""
    client.record({"agent": "", "event_type": "action"})
    client.record({"agent": "x", "cost_usd": "not money"})
    client.flush()
    assert (client.stats()["rejected"], client.stats()["repaired"]) == (1, 1)


def test_check_raises_after_a_kill(served: tuple[str, Monitor], client: RemoteMonitor) -> None:
    """``check()`` raises AgentKilledError carrying scope, target, reason and actor."""
    _, monitor = served
    client.check("billing")
    assert not client.is_killed("billing")
    monitor.kill_agent("billing", "cost spike", actor="oncall")
    with pytest.raises(AgentKilledError) as info:
        client.check("billing")
    err = info.value
    assert (err.scope, err.target, err.reason, err.actor) == (
        "agent",
        "billing",
        "cost spike",
        "oncall",
    )
    monitor.kill_session("s-7", "leak")
    assert client.is_killed("support", session_id="s-7")
    assert not client.is_killed("support", session_id="s-8")


def test_kill_and_revive_through_the_client(
    served: tuple[str, Monitor], client: RemoteMonitor
) -> None:
    """Kills made with the client are the server's, recorded with the token's name."""
    _, monitor = served
    rec = client.kill_agent("billing", "runaway loop", ttl_seconds=600)
    assert rec.actor == "release-bot"
    assert rec.expires_at == pytest.approx(rec.created_at + 600)
    assert monitor.is_killed("billing")
    client.kill_session("s-1", "pii", agent="support")
    assert monitor.is_killed("support", "s-1")
    client.kill_global("maintenance")
    assert monitor.is_killed("anyone")
    assert {k.scope for k in client.kills()} == {"agent", "session", "global"}
    assert client.revive_global()
    assert client.revive(agent="billing", session_id="s-1")
    assert not client.revive(agent="billing")
    assert monitor.kills() == []
    kill_events = stored(monitor, event_type="kill")
    assert {e["data"]["actor"] for e in kill_events} == {"release-bot"}
    with pytest.raises(ValueError, match="revive"):
        client.revive()


def test_ingest_token_cannot_kill(served: tuple[str, Monitor]) -> None:
    """A kill with an ingest token is refused with a RemoteError (403)."""
    url, monitor = served
    with RemoteMonitor(url, INGEST) as client, pytest.raises(RemoteError) as info:
        client.kill_agent("x", "no")
    assert info.value.status == 403
    assert not monitor.kills()


def test_check_cache(served: tuple[str, Monitor]) -> None:
    """With ``check_cache_ttl`` an answer is reused that long, then asked again."""
    url, monitor = served
    with RemoteMonitor(url, INGEST, check_cache_ttl=0.3) as client:
        client.check("cached")
        monitor.kill_agent("cached", "now")
        client.check("cached")  # still the cached "not killed"
        time.sleep(0.35)
        with pytest.raises(AgentKilledError):
            client.check("cached")


def test_retries_through_a_flaky_proxy(served: tuple[str, Monitor]) -> None:
    """5xx and 429 answers are retried (honouring Retry-After) until the batch lands."""
    url, monitor = served
    answers = iter([503, 429])
    with httpx.HTTPTransport() as real:

        def flaky(request: httpx.Request) -> httpx.Response:
            status = next(answers, None)
            if status is not None and request.url.path == "/v1/events":
                return httpx.Response(
                    status, headers={"Retry-After": "0"}, json={"message": "busy"}
                )
            return real.handle_request(request)

        with RemoteMonitor(
            url, INGEST, transport=httpx.MockTransport(flaky), backoff_base=0.01
        ) as client:
            client.record(AgentEvent(agent="persistent"))
            assert client.flush(10)
            assert client.stats()["retried"] == 2
            assert client.stats()["sent"] == 1
    assert [e["agent"] for e in stored(monitor)] == ["persistent"]


def test_oversize_batches_are_split(tmp_path: Path) -> None:
    """A 413 splits the batch in halves until the server accepts them."""
    monitor = Monitor(parse_config({"storage": {"path": str(tmp_path / "e.db")}}))
    config = ServerConfig(
        port=0, max_batch=100, tokens=[TokenConfig(name="i", role="ingest", token=INGEST)]
    )
    server = RedlineServer(create_app(monitor, config, admin_token=""), port=0).start()
    try:
        with RemoteMonitor(server.url, INGEST, batch_size=350) as client:
            for _ in range(350):
                client.record(AgentEvent(agent="big"))
            client.flush()
            assert client.stats()["sent"] == 350
        assert len(stored(monitor)) == 350
    finally:
        server.stop()
        monitor.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_drops_and_counts() -> None:
    """Nothing listening: record() still never blocks; the bounded queue drops and counts."""
    client = RemoteMonitor(
        f"http://127.0.0.1:{free_port()}",
        INGEST,
        queue_size=10,
        batch_size=5,
        flush_interval=10,
        max_retries=0,
    )
    try:
        started = time.perf_counter()
        for _ in range(25):
            client.record(AgentEvent(agent="void"))
        assert time.perf_counter() - started < 0.5
        client.flush(5)
        stats = client.stats()
        assert stats["dropped"] + stats["failed"] == 25
        assert stats["dropped"] >= 10
        assert stats["sent"] == 0
    finally:
        client.close(timeout=2)


def test_check_fails_open_or_closed() -> None:
    """An unreachable server lets agents go on, unless ``fail_closed=True``."""
    url = f"http://127.0.0.1:{free_port()}"
    with RemoteMonitor(url, INGEST) as open_client:
        open_client.check("a")
    with (
        RemoteMonitor(url, INGEST, fail_closed=True) as closed,
        pytest.raises(AgentKilledError) as info,
    ):
        closed.check("a")
    assert info.value.scope == "unknown"


def test_context_manager_flushes_on_exit(served: tuple[str, Monitor]) -> None:
    """Leaving the ``with`` block sends what is queued; records after close are dropped."""
    url, monitor = served
    with RemoteMonitor(url, INGEST, flush_interval=60) as client:
        for _ in range(7):
            client.record(AgentEvent(agent="bye"))
    assert len(stored(monitor)) == 7
    client.record(AgentEvent(agent="late"))
    assert client.stats()["dropped"] == 1


@pytest.mark.parametrize(
    ("body", "ctype"),
    [("<html><body>Gateway login</body></html>", "text/html"), ("[]", "application/json"),
     ("null", "application/json"), ('{"killed": "yes"}', "application/json"),
     ('{"killed": true, "scope": 7, "expires_at": "soon"}', "application/json")],
)
def test_check_never_raises_a_parse_error_into_the_agent(body: str, ctype: str) -> None:
    """A server or proxy answering 200 with HTML, an array, ``null`` or a wrong shape is an
    unavailable kill state: open lets the agent go on, closed stops it; nothing else escapes."""
    import http.server
    import threading

    class Odd(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        is_kill = body.startswith('{"killed": true')
        with RemoteMonitor(url, INGEST) as open_client:
            assert open_client.is_killed("a") is is_kill  # a kill with odd fields is still one
            if is_kill:
                with pytest.raises(AgentKilledError):
                    open_client.check("a")
            else:
                open_client.check("a")
        with (
            RemoteMonitor(url, INGEST, fail_closed=True) as closed,
            pytest.raises(AgentKilledError),
        ):
            closed.check("a")
    finally:
        server.shutdown()
        server.server_close()
