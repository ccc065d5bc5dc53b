"""Alert delivery: off the caller's thread, retried, circuit-broken, dead-lettered, counted.

Remote channels are exercised against a real HTTP server on 127.0.0.1
(:class:`redline.alerts.testing.HttpReceiver`), never a mock.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redline.alerts.delivery import CircuitBreaker, RetryPolicy, parse_retry_after
from redline.alerts.manager import Alert, AlertManager
from redline.alerts.testing import HttpReceiver, RecordingChannel
from redline.config import AlertChannelConfig, AlertConfig, parse_config
from redline.monitor import Monitor
from redline.testing import ManualClock

MakeManager = Callable[..., AlertManager]


def make_alert(n: int = 1, **overrides: Any) -> Alert:
    """An anomaly alert as the monitor builds them."""
    fields: dict[str, Any] = {
        "id": f"al-test-{n}",
        "kind": "anomaly",
        "severity": "high",
        "title": "Cost spike",
        "message": "cost_per_minute 9.10 > 5.00",
        "agent": "sales-agent",
        "timestamp": 1_700_000_000.0,
        "rule": "cost-spike",
        "fingerprint": "anomaly:cost-spike:sales-agent",
    }
    fields.update(overrides)
    return Alert(**fields)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A recording HTTP endpoint on a free local port."""
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def make_manager() -> Iterator[MakeManager]:
    """``make_manager(*channel_dicts, **options)``: a manager with fast backoff, closed at teardown."""
    managers: list[AlertManager] = []

    def make(*channels: dict[str, Any], **options: Any) -> AlertManager:
        options.setdefault("backoff_base", 0.01)
        options.setdefault("backoff_cap", 0.05)
        config = AlertConfig(channels=[AlertChannelConfig(**c) for c in channels])
        manager = AlertManager(config, **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close(timeout=2.0)


def dead_letters(path: Path) -> list[dict[str, Any]]:
    """The records in a dead-letter file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the caller's thread ------------------------------------------------------------------------


def test_flush_waits_for_queued_deliveries(
    receiver: HttpReceiver, make_manager: MakeManager
) -> None:
    """After ``flush()`` every queued remote delivery has been made and counted."""
    manager = make_manager({"type": "webhook", "url": receiver.url("/hook")})
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert len(receiver.requests) == 1
    assert manager.sent == 1
    assert manager.stats()["channels"]["webhook"]["sent"] == 1


def test_notify_returns_while_the_receiver_hangs(
    receiver: HttpReceiver, make_manager: MakeManager
) -> None:
    """``notify()`` only queues: it has returned while the receiver is still holding the request."""
    receiver.hang()
    manager = make_manager({"type": "webhook", "url": receiver.url(), "timeout_seconds": 30})
    manager.notify(make_alert())
    assert receiver.hanging.wait(5.0)
    assert receiver.answered == 0
    receiver.release.set()
    assert manager.flush(5.0)
    assert manager.sent == 1


def test_a_hanging_channel_does_not_delay_another(make_manager: MakeManager) -> None:
    """Each remote channel has its own worker: one stuck receiver never holds up the others."""
    with HttpReceiver() as slow, HttpReceiver() as fast:
        slow.hang()
        manager = make_manager(
            {"type": "webhook", "name": "slow", "url": slow.url(), "timeout_seconds": 30},
            {"type": "webhook", "name": "fast", "url": fast.url()},
        )
        manager.notify(make_alert())
        assert slow.hanging.wait(5.0)
        assert fast.wait_for(1, 5.0)
        assert slow.answered == 0
        slow.release.set()
        assert manager.flush(5.0)


def test_a_full_queue_drops_and_counts(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """When a channel's queue is full new alerts are dropped and counted, not blocked on."""
    receiver.hang()
    manager = make_manager(
        {"type": "webhook", "url": receiver.url(), "timeout_seconds": 30}, queue_size=1
    )
    manager.notify(make_alert(1))
    assert receiver.hanging.wait(5.0)  # alert 1 is in flight
    manager.notify(make_alert(2))  # queued
    manager.notify(make_alert(3))  # no room
    assert manager.stats()["dropped"] == 1
    assert manager.stats()["channels"]["webhook"]["dropped"] == 1
    receiver.release.set()
    assert manager.flush(5.0)
    assert manager.sent == 2


def test_a_failing_channel_never_raises_into_notify(make_manager: MakeManager) -> None:
    """An exception in a channel is counted as a failure, never raised to the caller."""
    broken = RecordingChannel("broken", inline=True, fail_with=TypeError("bug"))
    manager = make_manager(channels=[broken])
    manager.notify(make_alert())
    assert manager.failed == 1


def test_a_failing_hook_is_counted_and_survived(make_manager: MakeManager) -> None:
    """Hooks run inline; one that raises is logged and counted, and later hooks still run."""
    seen: list[Alert] = []
    manager = make_manager()

    def bad_hook(alert: Alert) -> None:
        raise RuntimeError("hook bug")

    manager.add_hook(bad_hook)
    manager.add_hook(seen.append)
    manager.notify(make_alert())
    assert len(seen) == 1
    assert manager.stats()["hook_errors"] == 1
    assert manager.failed == 1


def test_min_severity_filters_per_channel(make_manager: MakeManager) -> None:
    """A channel only receives alerts at or above its ``min_severity``."""
    pager = RecordingChannel("pager", min_severity="critical", inline=True)
    chat = RecordingChannel("chat", min_severity="low", inline=True)
    manager = make_manager(channels=[pager, chat])
    manager.notify(make_alert(severity="high"))
    assert (len(pager.alerts), len(chat.alerts)) == (0, 1)


def test_unnamed_channels_of_one_type_get_distinct_names(make_manager: MakeManager) -> None:
    """Two unnamed webhooks are counted separately as ``webhook`` and ``webhook-2``."""
    manager = make_manager(
        {"type": "webhook", "url": "http://127.0.0.1:9/a"},
        {"type": "webhook", "url": "http://127.0.0.1:9/b"},
    )
    assert set(manager.stats()["channels"]) == {"webhook", "webhook-2"}


# -- retries --------------------------------------------------------------------------------


def test_server_errors_are_retried(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """A 5xx answer is retried until the receiver accepts the alert."""
    receiver.respond(500, times=2)
    manager = make_manager({"type": "webhook", "url": receiver.url()})
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert len(receiver.requests) == 3
    stats = manager.stats()
    assert (stats["sent"], stats["retried"], stats["failed"]) == (1, 2, 0)


def test_retry_after_is_honoured_on_429(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """After a 429 with ``Retry-After: 1`` the retry comes no earlier than one second later."""
    receiver.respond(429, headers={"Retry-After": "1"})
    manager = make_manager({"type": "webhook", "url": receiver.url()})
    manager.notify(make_alert())
    assert manager.flush(10.0)
    first, second = receiver.requests
    assert second.at - first.at >= 1.0
    assert manager.sent == 1


def test_a_timeout_is_retried(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """A receiver that does not answer within ``timeout_seconds`` is tried again."""
    receiver.hang()
    manager = make_manager({"type": "webhook", "url": receiver.url(), "timeout_seconds": 0.2})
    manager.notify(make_alert())
    assert manager.flush(10.0)
    assert len(receiver.requests) == 2
    assert (manager.stats()["retried"], manager.sent) == (1, 1)


def test_408_is_retried(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """408 Request Timeout is the one 4xx besides 429 that is worth retrying."""
    receiver.respond(408)
    manager = make_manager({"type": "webhook", "url": receiver.url()})
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert len(receiver.requests) == 2


def test_client_errors_are_not_retried(receiver: HttpReceiver, make_manager: MakeManager) -> None:
    """A 4xx answer (other than 408/429) fails at once: retrying the same request cannot help."""
    receiver.respond(400, times=5)
    manager = make_manager({"type": "webhook", "url": receiver.url()})
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert len(receiver.requests) == 1
    stats = manager.stats()
    assert (stats["failed"], stats["retried"]) == (1, 0)


def test_retries_stop_after_max_attempts(
    receiver: HttpReceiver, make_manager: MakeManager, tmp_path: Path
) -> None:
    """An alert that keeps failing is tried ``max_attempts`` times, then dead-lettered."""
    receiver.respond(500, times=10)
    path = tmp_path / "dead.jsonl"
    manager = make_manager(
        {"type": "webhook", "url": receiver.url()}, max_attempts=3, dead_letter_path=path
    )
    manager.notify(make_alert(7))
    assert manager.flush(5.0)
    assert len(receiver.requests) == 3
    (record,) = dead_letters(path)
    assert record["channel"] == "webhook"
    assert record["attempts"] == 3
    assert "HTTP 500" in record["error"]
    assert record["alert"]["id"] == "al-test-7"
    assert record["time"].endswith("+00:00")
    assert manager.stats()["dead_lettered"] == 1


def test_backoff_uses_full_jitter_within_the_cap() -> None:
    """The wait before retry n is uniform in [0, min(cap, base·2^(n-1))]."""
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30.0)
    rng = random.Random(4)
    for attempt in range(1, 10):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.backoff(attempt, rng) for _ in range(500)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.9


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """``Retry-After`` may be delta-seconds or an HTTP date; garbage is ignored."""
    now = 1_445_412_475.0  # 2015-10-21 07:27:55 UTC
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None


# -- the circuit breaker ------------------------------------------------------------------------


def test_the_circuit_opens_after_consecutive_failures(
    receiver: HttpReceiver, make_manager: MakeManager, tmp_path: Path
) -> None:
    """After 5 failures in a row the channel stops calling the receiver and dead-letters at once."""
    receiver.respond(500, times=10)
    path = tmp_path / "dead.jsonl"
    manager = make_manager(
        {"type": "webhook", "url": receiver.url()}, max_attempts=1, dead_letter_path=path
    )
    for n in range(6):
        manager.notify(make_alert(n))
    assert manager.flush(5.0)
    assert len(receiver.requests) == 5
    assert manager.stats()["channels"]["webhook"]["circuit"] == "open"
    assert manager.failed == 6
    assert dead_letters(path)[-1]["error"] == "circuit open"


def test_the_circuit_half_opens_after_the_reset_time(
    receiver: HttpReceiver, make_manager: MakeManager, manual_clock: ManualClock
) -> None:
    """After ``breaker_reset_seconds`` one trial goes through, and its success closes the circuit."""
    receiver.respond(500, times=2)
    manager = make_manager(
        {"type": "webhook", "url": receiver.url()},
        max_attempts=1,
        breaker_threshold=2,
        clock=manual_clock,
    )
    for n in range(3):
        manager.notify(make_alert(n))
    assert manager.flush(5.0)
    assert len(receiver.requests) == 2
    manual_clock.advance(30.0)
    manager.notify(make_alert(3))
    assert manager.flush(5.0)
    assert len(receiver.requests) == 3
    assert manager.stats()["channels"]["webhook"]["circuit"] == "closed"


def test_a_failed_trial_reopens_the_circuit() -> None:
    """In half-open state one failure opens the circuit again for a full reset period."""
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=2, reset_seconds=30.0, clock=clock)
    breaker.record_failure()
    assert breaker.record_failure()
    assert not breaker.allow()
    clock.advance(30.0)
    assert breaker.allow()
    assert breaker.state == "half_open"
    assert breaker.record_failure()
    assert not breaker.allow()
    clock.advance(29.0)
    assert not breaker.allow()


# -- secrets ------------------------------------------------------------------------------------


def test_no_secret_reaches_logs_or_the_dead_letter_file(
    receiver: HttpReceiver,
    make_manager: MakeManager,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """URL tokens, header values and the signing secret are masked everywhere a failure is told."""
    caplog.set_level(logging.DEBUG)
    echo = b"bad token path-SECRET-2 hdr-SECRET-4 hmac-SECRET-5"
    receiver.respond(500, body=echo)
    receiver.respond(401, body=echo)
    path = tmp_path / "dead.jsonl"
    url = f"http://user:pw-SECRET-1@127.0.0.1:{receiver.port}/hook/path-SECRET-2?key=qs-SECRET-3"
    manager = make_manager(
        {
            "type": "webhook",
            "url": url,
            "headers": {"X-Api-Token": "hdr-SECRET-4"},
            "secret": "hmac-SECRET-5",
        },
        dead_letter_path=path,
    )
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert len(receiver.requests) == 2
    assert manager.failed == 1
    assert "HTTP 401" in caplog.text
    assert "SECRET" not in caplog.text
    assert "SECRET" not in path.read_text()
    assert "SECRET" not in repr(manager.channels[0])


@pytest.mark.parametrize(
    ("channel", "secret"),
    [
        ({"type": "slack", "url": "/services/T0/B0/slack-SECRET-token"}, "slack-SECRET-token"),
        (
            {"type": "pagerduty", "url": "/v2/enqueue", "routing_key": "pd-SECRET-key"},
            "pd-SECRET-key",
        ),
        ({"type": "opsgenie", "url": "/v2/alerts", "api_key": "og-SECRET-key"}, "og-SECRET-key"),
    ],
)
def test_vendor_credentials_never_reach_logs(
    receiver: HttpReceiver,
    make_manager: MakeManager,
    caplog: pytest.LogCaptureFixture,
    channel: dict[str, Any],
    secret: str,
) -> None:
    """Slack webhook tokens, PagerDuty routing keys and Opsgenie keys are masked in logs."""
    caplog.set_level(logging.DEBUG)
    receiver.respond(500, body=f"rejected {secret}".encode())
    receiver.respond(403, body=f"rejected {secret}".encode())
    manager = make_manager({**channel, "url": receiver.url(channel["url"])})
    manager.notify(make_alert())
    assert manager.flush(5.0)
    assert manager.failed == 1
    assert "HTTP 403" in caplog.text
    assert secret not in caplog.text


# -- the monitor --------------------------------------------------------------------------------


def test_a_monitor_kill_reaches_a_webhook(receiver: HttpReceiver) -> None:
    """Kills the monitor raises are delivered to configured remote channels."""
    config = parse_config({"alerts": {"channels": [{"type": "webhook", "url": receiver.url()}]}})
    monitor = Monitor(config)
    try:
        monitor.kill_agent("sales-agent", reason="cost spike", actor="alice")
        assert monitor.alerts.flush(5.0)
        assert receiver.wait_for(1)
        body = receiver.requests[0].json
        assert (body["kind"], body["agent"], body["source"]) == ("kill", "sales-agent", "redline")
        assert monitor.stats()["alerts_sent"] == 1
    finally:
        monitor.alerts.close(2.0)
        monitor.close()
