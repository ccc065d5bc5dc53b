"""Alert channels: what each vendor receives, byte for byte where it matters.

Every HTTP channel posts to a real server on 127.0.0.1 (:class:`redline.alerts.testing.HttpReceiver`).
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import json
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from redline.alerts.channels import build_channel
from redline.alerts.channels._http import mask_url
from redline.alerts.channels.email import EmailChannel
from redline.alerts.channels.opsgenie import OpsgenieChannel
from redline.alerts.channels.pagerduty import PagerDutyChannel
from redline.alerts.channels.slack import SlackChannel
from redline.alerts.channels.webhook import WebhookChannel, sign, verify_signature
from redline.alerts.delivery import DeliveryError
from redline.alerts.manager import Alert, AlertManager
from redline.alerts.testing import HttpReceiver
from redline.config import AlertChannelConfig, AlertConfig
from redline.exceptions import ConfigError
from redline.testing import ManualClock


def make_alert(**overrides: Any) -> Alert:
    """An anomaly alert as the monitor builds them."""
    fields: dict[str, Any] = {
        "id": "al-test-1",
        "kind": "anomaly",
        "severity": "high",
        "title": "Cost spike",
        "message": "cost_per_minute 9.10 > 5.00",
        "agent": "sales-agent",
        "timestamp": 1_700_000_000.0,
        "rule": "cost-spike",
        "session_id": "s-42",
        "fingerprint": "anomaly:cost-spike:sales-agent",
        "details": {"metric": "cost_per_minute", "value": 9.1},
    }
    fields.update(overrides)
    return Alert(**fields)


def channel_config(**fields: Any) -> AlertChannelConfig:
    """A channel config entry, as the YAML loader would build it."""
    return AlertChannelConfig(**fields)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A recording HTTP endpoint on a free local port."""
    with HttpReceiver() as server:
        yield server


# -- webhook --------------------------------------------------------------------------------


def test_webhook_posts_the_alert_as_json(receiver: HttpReceiver) -> None:
    """The body is ``alert.to_dict()`` plus ``"source": "redline"``."""
    alert = make_alert()
    WebhookChannel(channel_config(type="webhook", url=receiver.url("/hook"))).send(alert)
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.header("Content-Type") == "application/json"
    assert request.json == {**alert.to_dict(), "source": "redline"}


def test_webhook_sends_configured_headers(receiver: HttpReceiver) -> None:
    """``headers`` from the config are sent with every request."""
    config = channel_config(type="webhook", url=receiver.url(), headers={"X-Team": "ops"})
    WebhookChannel(config).send(make_alert())
    assert receiver.requests[0].header("X-Team") == "ops"


def test_webhook_signature_verifies_with_the_secret(receiver: HttpReceiver) -> None:
    """``X-Redline-Signature`` is ``t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")``."""
    clock = ManualClock(1_700_000_123.0)
    config = channel_config(type="webhook", url=receiver.url(), secret="s3cret-value")
    WebhookChannel(config, clock=clock).send(make_alert())
    request = receiver.requests[0]
    header = request.header("X-Redline-Signature")
    assert header is not None
    expected = hmac.new(b"s3cret-value", b"1700000123." + request.body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000123,v1={expected}"
    assert verify_signature("s3cret-value", header, request.body, now=1_700_000_200.0)


def test_webhook_without_secret_is_unsigned(receiver: HttpReceiver) -> None:
    """No ``secret``, no signature header."""
    WebhookChannel(channel_config(type="webhook", url=receiver.url())).send(make_alert())
    assert receiver.requests[0].header("X-Redline-Signature") is None


def test_verify_signature_rejects_tampering_wrong_secrets_and_replays() -> None:
    """A changed body, another secret, a stale timestamp or a garbled header all fail."""
    body = b'{"id":"al-1"}'
    header = sign("k" * 16, body, 1_000)
    assert verify_signature("k" * 16, header, body, now=1_100)
    assert not verify_signature("k" * 16, header, body + b" ", now=1_100)
    assert not verify_signature("x" * 16, header, body, now=1_100)
    assert not verify_signature("k" * 16, header, body, now=1_000 + 301)
    assert verify_signature("k" * 16, header, body, tolerance=None, now=9_999_999)
    assert not verify_signature("k" * 16, "v1=abc", body)
    assert not verify_signature("k" * 16, None, body)


def test_verify_signature_accepts_any_matching_v1_during_rotation() -> None:
    """Several ``v1=`` values are accepted if one of them matches."""
    body = b"{}"
    good = sign("new-secret", body, 50).split(",")[1]
    assert verify_signature("new-secret", f"t=50,v1=deadbeef,{good}", body, now=60)


def test_http_errors_say_whether_to_retry(receiver: HttpReceiver) -> None:
    """A 503 is retryable and carries Retry-After; a 404 is not retryable."""
    channel = WebhookChannel(channel_config(type="webhook", url=receiver.url()))
    receiver.respond(503, headers={"Retry-After": "7"})
    receiver.respond(404)
    with pytest.raises(DeliveryError) as unavailable:
        channel.send(make_alert())
    assert (unavailable.value.retryable, unavailable.value.retry_after) == (True, "7")
    with pytest.raises(DeliveryError) as missing:
        channel.send(make_alert())
    assert (missing.value.retryable, missing.value.status) == (False, 404)


# -- masking --------------------------------------------------------------------------------


def test_mask_url_keeps_only_scheme_host_and_port() -> None:
    """User info, path and query may hold tokens, so none of them is shown."""
    assert mask_url("https://hooks.slack.com/services/T0/B0/XyZ") == "https://hooks.slack.com/***"
    assert mask_url("http://u:p@127.0.0.1:8080/x?token=1") == "http://127.0.0.1:8080/***"
    assert mask_url("https://example.com") == "https://example.com"


def test_channel_repr_hides_credentials() -> None:
    """A channel's repr names it and its host, never its token."""
    config = channel_config(type="webhook", url="https://example.com/hook/T0K3N-abcdef", secret="s")
    assert (
        repr(WebhookChannel(config))
        == "WebhookChannel(name='webhook', url='https://example.com/***')"
    )


# -- the registry ---------------------------------------------------------------------------


def test_build_channel_knows_every_documented_type() -> None:
    """Each type in the config schema builds a channel named after its type by default."""
    for type_name, extra in {
        "console": {},
        "file": {"path": "alerts.jsonl"},
        "jsonl": {"path": "alerts.jsonl"},
        "webhook": {"url": "https://example.com/hook"},
        "slack": {"url": "https://hooks.slack.com/services/T0/B0/tok"},
        "pagerduty": {"routing_key": "key-1234"},
        "opsgenie": {"api_key": "genie-key"},
        "email": {"host": "smtp.example.com", "from_": "a@example.com", "to": ["b@example.com"]},
    }.items():
        channel = build_channel(channel_config(type=type_name, **extra))
        assert channel is not None
        assert channel.name == type_name


def test_build_channel_returns_none_for_unknown_types() -> None:
    """A type this build does not deliver gives None (the manager warns and carries on)."""
    assert build_channel(channel_config(type="carrier-pigeon")) is None


def test_misconfigured_channels_raise_with_the_key_path() -> None:
    """A channel that cannot work fails at construction, naming ``alerts.channels[i].key``."""
    config = AlertConfig(
        channels=[channel_config(type="console"), channel_config(type="webhook", url="ftp://x")]
    )
    with pytest.raises(ConfigError) as info:
        AlertManager(config)
    assert info.value.errors[0].startswith("alerts.channels[1].url: ")


def test_jsonl_channel_appends_one_alert_per_line(tmp_path: Path) -> None:
    """The jsonl channel writes the alert dict as one sorted-key JSON line."""
    path = tmp_path / "alerts.jsonl"
    channel = build_channel(channel_config(type="jsonl", path=str(path)))
    assert channel is not None
    channel.send(make_alert())
    channel.send(make_alert(id="al-test-2"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["al-test-1", "al-test-2"]


# -- slack ----------------------------------------------------------------------------------


def slack_channel(receiver: HttpReceiver) -> SlackChannel:
    """A Slack channel posting to the local receiver."""
    return SlackChannel(channel_config(type="slack", url=receiver.url("/services/T0/B0/tok")))


def test_slack_posts_block_kit_with_header_message_fields_and_context(
    receiver: HttpReceiver,
) -> None:
    """A firing alert is a header (emoji, severity, title), the message, fields and a context."""
    slack_channel(receiver).send(make_alert())
    body = receiver.requests[0].json
    assert body["text"] == "[HIGH] sales-agent: Cost spike: cost_per_minute 9.10 &gt; 5.00"
    header, message, fields, context = body["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":large_orange_circle: HIGH: Cost spike",
            "emoji": True,
        },
    }
    assert message == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "cost_per_minute 9.10 &gt; 5.00"},
    }
    assert fields["type"] == "section"
    assert [f["text"] for f in fields["fields"]] == [
        "*Agent*\nsales-agent",
        "*Severity*\nHIGH",
        "*Rule*\ncost-spike",
        "*Time*\n<!date^1700000000^{date_short_pretty} {time_secs}|2023-11-14T22:13:20.000+00:00>",
        "*Session*\ns-42",
    ]
    assert all(f["type"] == "mrkdwn" for f in fields["fields"])
    assert context["type"] == "context"
    assert "`anomaly:cost-spike:sales-agent`" in context["elements"][0]["text"]


def test_slack_escapes_mrkdwn_control_characters(receiver: HttpReceiver) -> None:
    """``&``, ``<`` and ``>`` from agents cannot inject Slack links or mentions."""
    slack_channel(receiver).send(make_alert(message="<!channel> & <http://evil|click>"))
    text = receiver.requests[0].json["blocks"][1]["text"]["text"]
    assert text == "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;"


def test_slack_resolved_alert_posts_a_resolved_message(receiver: HttpReceiver) -> None:
    """A resolved alert is announced as "Resolved" with a check mark."""
    slack_channel(receiver).send(make_alert(state="resolved"))
    body = receiver.requests[0].json
    assert body["text"].startswith("Resolved: ")
    assert body["blocks"][0]["text"]["text"] == ":white_check_mark: Resolved: Cost spike"


# -- pagerduty ------------------------------------------------------------------------------


def pagerduty_config(receiver: HttpReceiver, **fields: Any) -> AlertChannelConfig:
    """A PagerDuty channel config posting to the local receiver."""
    return channel_config(
        type="pagerduty",
        url=receiver.url("/v2/enqueue"),
        routing_key="R0UTINGKEY0123456789",
        **fields,
    )


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(receiver: HttpReceiver) -> None:
    """Firing sends a full trigger event; resolving sends only the resolve with the same key."""
    manager = AlertManager(AlertConfig(channels=[pagerduty_config(receiver)]))
    manager.notify(make_alert())
    manager.notify(make_alert(id="al-test-2", state="resolved"))
    assert manager.flush(5.0)
    manager.close(2.0)
    trigger, resolve = (r.json for r in receiver.requests)
    assert trigger == {
        "routing_key": "R0UTINGKEY0123456789",
        "event_action": "trigger",
        "dedup_key": "anomaly:cost-spike:sales-agent",
        "client": "Redline",
        "payload": {
            "summary": "Cost spike: cost_per_minute 9.10 > 5.00",
            "source": "sales-agent",
            "severity": "error",
            "timestamp": "2023-11-14T22:13:20.000+00:00",
            "component": "cost-spike",
            "group": "s-42",
            "class": "anomaly",
            "custom_details": {
                "alert_id": "al-test-1",
                "agent": "sales-agent",
                "kind": "anomaly",
                "severity": "high",
                "message": "cost_per_minute 9.10 > 5.00",
                "rule": "cost-spike",
                "session_id": "s-42",
                "details": {"metric": "cost_per_minute", "value": 9.1},
            },
        },
    }
    assert resolve == {
        "routing_key": "R0UTINGKEY0123456789",
        "event_action": "resolve",
        "dedup_key": "anomaly:cost-spike:sales-agent",
    }
    assert all(r.path == "/v2/enqueue" for r in receiver.requests)


def test_pagerduty_acknowledge_maps_to_the_acknowledge_action(receiver: HttpReceiver) -> None:
    """An acknowledged alert sends ``event_action: acknowledge`` with the dedup key only."""
    PagerDutyChannel(pagerduty_config(receiver)).send(make_alert(state="acknowledged"))
    assert receiver.requests[0].json["event_action"] == "acknowledge"
    assert "payload" not in receiver.requests[0].json


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", "critical"),
        ("high", "error"),
        ("medium", "warning"),
        ("warning", "warning"),
        ("low", "info"),
        ("info", "info"),
    ],
)
def test_pagerduty_maps_redline_severities(severity: str, expected: str) -> None:
    """Redline's six severities map onto PagerDuty's four."""
    config = channel_config(type="pagerduty", routing_key="key-1234")
    event = PagerDutyChannel(config).payload(make_alert(severity=severity))
    assert event["payload"]["severity"] == expected


def test_pagerduty_summary_is_cut_to_1024_characters() -> None:
    """PagerDuty rejects summaries over 1024 characters, so they are truncated."""
    config = channel_config(type="pagerduty", routing_key="key-1234")
    event = PagerDutyChannel(config).payload(make_alert(message="x" * 5000))
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["summary"].endswith("…")


def test_pagerduty_defaults_to_the_events_api_v2() -> None:
    """Without ``url`` events go to PagerDuty's enqueue endpoint."""
    channel = PagerDutyChannel(channel_config(type="pagerduty", routing_key="key-1234"))
    assert channel.url == "https://events.pagerduty.com/v2/enqueue"


def test_pagerduty_needs_a_routing_key() -> None:
    """A pagerduty channel without ``routing_key`` is a config error naming the key."""
    config = AlertConfig(channels=[channel_config(type="pagerduty")])
    with pytest.raises(ConfigError, match=r"alerts\.channels\[0\]\.routing_key"):
        AlertManager(config)


def test_pagerduty_repr_masks_the_routing_key() -> None:
    """The routing key never appears in a repr."""
    channel = PagerDutyChannel(channel_config(type="pagerduty", routing_key="R0UTINGKEY0123"))
    assert "R0UTINGKEY0123" not in repr(channel)


# -- opsgenie -------------------------------------------------------------------------------


def opsgenie_config(receiver: HttpReceiver) -> AlertChannelConfig:
    """An Opsgenie channel config posting to the local receiver."""
    return channel_config(type="opsgenie", url=receiver.url("/v2/alerts"), api_key="genie-0123-key")


def test_opsgenie_create_then_close_by_alias(receiver: HttpReceiver) -> None:
    """Firing creates an alert with the fingerprint as alias; resolving closes it by alias."""
    manager = AlertManager(AlertConfig(channels=[opsgenie_config(receiver)]))
    manager.notify(make_alert())
    manager.notify(make_alert(id="al-test-2", state="resolved", message="back to normal"))
    assert manager.flush(5.0)
    manager.close(2.0)
    create, close = receiver.requests
    assert create.path == "/v2/alerts"
    assert create.header("Authorization") == "GenieKey genie-0123-key"
    assert create.json == {
        "message": "Cost spike",
        "alias": "anomaly:cost-spike:sales-agent",
        "description": (
            "cost_per_minute 9.10 > 5.00\n\nalert_id: al-test-1\nagent: sales-agent\n"
            "kind: anomaly\nseverity: high\ntime: 2023-11-14T22:13:20.000+00:00\n"
            "rule: cost-spike\nsession_id: s-42\nmetric: cost_per_minute\nvalue: 9.1"
        ),
        "priority": "P2",
        "source": "redline",
        "entity": "sales-agent",
        "tags": ["redline", "anomaly", "severity:high", "agent:sales-agent", "rule:cost-spike"],
        "details": {
            "alert_id": "al-test-1",
            "agent": "sales-agent",
            "kind": "anomaly",
            "severity": "high",
            "time": "2023-11-14T22:13:20.000+00:00",
            "rule": "cost-spike",
            "session_id": "s-42",
            "metric": "cost_per_minute",
            "value": "9.1",
        },
    }
    assert unquote(close.path) == "/v2/alerts/anomaly:cost-spike:sales-agent/close"
    assert close.query == {"identifierType": ["alias"]}
    assert close.header("Authorization") == "GenieKey genie-0123-key"
    assert close.json == {
        "source": "redline",
        "user": "redline",
        "note": "Resolved: back to normal",
    }


def test_opsgenie_acknowledge_posts_to_the_alias(receiver: HttpReceiver) -> None:
    """An acknowledged alert posts to ``{url}/{alias}/acknowledge?identifierType=alias``."""
    OpsgenieChannel(opsgenie_config(receiver)).send(make_alert(state="acknowledged"))
    request = receiver.requests[0]
    assert unquote(request.path) == "/v2/alerts/anomaly:cost-spike:sales-agent/acknowledge"
    assert request.query == {"identifierType": ["alias"]}


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", "P1"),
        ("high", "P2"),
        ("medium", "P3"),
        ("warning", "P3"),
        ("low", "P4"),
        ("info", "P5"),
    ],
)
def test_opsgenie_maps_severities_to_priorities(severity: str, priority: str) -> None:
    """Redline severities map onto P1..P5."""
    channel = OpsgenieChannel(channel_config(type="opsgenie", api_key="genie-key"))
    assert channel.create_body(make_alert(severity=severity))["priority"] == priority


def test_opsgenie_message_is_cut_to_130_characters() -> None:
    """Opsgenie's message limit is 130 characters; longer titles are truncated."""
    channel = OpsgenieChannel(channel_config(type="opsgenie", api_key="genie-key"))
    assert len(channel.create_body(make_alert(title="t" * 500))["message"]) == 130


def test_opsgenie_defaults_to_the_alert_api() -> None:
    """Without ``url`` alerts go to Opsgenie's Alert API."""
    channel = OpsgenieChannel(channel_config(type="opsgenie", api_key="genie-key"))
    assert channel.url == "https://api.opsgenie.com/v2/alerts"


def test_opsgenie_needs_an_api_key() -> None:
    """An opsgenie channel without ``api_key`` is a config error naming the key."""
    config = AlertConfig(channels=[channel_config(type="opsgenie")])
    with pytest.raises(ConfigError, match=r"alerts\.channels\[0\]\.api_key"):
        AlertManager(config)


def test_opsgenie_repr_masks_the_api_key() -> None:
    """The GenieKey never appears in a repr."""
    channel = OpsgenieChannel(channel_config(type="opsgenie", api_key="genie-0123-key"))
    assert "genie-0123-key" not in repr(channel)


# -- email ----------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.authenticated: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.authenticated.append(bool(session.authenticated))
        return "250 Message accepted for delivery"

    def message(self, index: int = 0) -> EmailMessage:
        """A received message, parsed with the email package."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.envelopes[index].content)
        assert isinstance(parsed, EmailMessage)
        return parsed


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_password(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    """aiosmtpd authenticator: only alerts / app-password-123 may log in."""
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"alerts" and auth_data.password == b"app-password-123"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 offering AUTH without TLS."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=check_password,
        auth_require_tls=False,
    )
    controller.start()
    yield mailbox, port
    controller.stop()


def email_config(port: int, **fields: Any) -> AlertChannelConfig:
    """An email channel config for the local SMTP server."""
    values: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "username": "alerts",
        "password": "app-password-123",
        "from_": "redline@example.com",
        "to": ["oncall@example.com", "lead@example.com"],
    }
    values.update(fields)
    return channel_config(**values)


def test_email_is_sent_with_subject_addresses_and_fields(smtp_server: tuple[Mailbox, int]) -> None:
    """The message carries ``[Redline] SEVERITY: title``, from, to and every alert field."""
    mailbox, port = smtp_server
    EmailChannel(email_config(port)).send(make_alert())
    (envelope,) = mailbox.envelopes
    assert envelope.mail_from == "redline@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert mailbox.authenticated == [True]
    message = mailbox.message()
    assert message["Subject"] == "[Redline] HIGH: Cost spike"
    assert message["From"] == "redline@example.com"
    assert message["To"] == "oncall@example.com, lead@example.com"
    assert message["X-Redline-Fingerprint"] == "anomaly:cost-spike:sales-agent"
    body = message.get_content()
    assert "cost_per_minute 9.10 > 5.00" in body
    for line in (
        "State:       firing",
        "Agent:       sales-agent",
        "Severity:    high",
        "Kind:        anomaly",
        "Rule:        cost-spike",
        "Session:     s-42",
        "Time:        2023-11-14T22:13:20.000+00:00",
        "Fingerprint: anomaly:cost-spike:sales-agent",
        "Alert id:    al-test-1",
        "  metric: cost_per_minute",
    ):
        assert line in body.splitlines()


def test_email_subject_says_when_an_alert_is_resolved(smtp_server: tuple[Mailbox, int]) -> None:
    """A resolved alert's subject reads ``[Redline] HIGH (resolved): title``."""
    mailbox, port = smtp_server
    EmailChannel(email_config(port)).send(make_alert(state="resolved"))
    assert mailbox.message()["Subject"] == "[Redline] HIGH (resolved): Cost spike"


def test_email_titles_cannot_inject_headers(smtp_server: tuple[Mailbox, int]) -> None:
    """Line breaks in a title are folded into the subject, never new headers."""
    mailbox, port = smtp_server
    EmailChannel(email_config(port)).send(make_alert(title="x\r\nBcc: evil@example.com"))
    message = mailbox.message()
    assert message["Bcc"] is None
    assert message["Subject"] == "[Redline] HIGH: x Bcc: evil@example.com"


def test_email_bad_password_is_not_retried(smtp_server: tuple[Mailbox, int]) -> None:
    """A rejected login (5xx) is final and its error does not show the password."""
    _, port = smtp_server
    channel = EmailChannel(email_config(port, password="wrong-password-9"))
    with pytest.raises(DeliveryError) as info:
        channel.send(make_alert())
    assert info.value.retryable is False
    assert info.value.status == 535
    assert "wrong-password-9" not in str(info.value)


def test_email_unreachable_server_is_retryable() -> None:
    """A refused connection may be temporary, so it is retried."""
    channel = EmailChannel(email_config(free_port(), timeout_seconds=2.0))
    with pytest.raises(DeliveryError) as info:
        channel.send(make_alert())
    assert info.value.retryable is True


def test_email_goes_through_the_manager(smtp_server: tuple[Mailbox, int]) -> None:
    """An email channel configured in ``alerts.channels`` delivers off the caller's thread."""
    mailbox, port = smtp_server
    manager = AlertManager(AlertConfig(channels=[email_config(port)]))
    manager.notify(make_alert())
    assert manager.flush(10.0)
    manager.close(2.0)
    assert len(mailbox.envelopes) == 1
    assert manager.sent == 1


def test_email_needs_host_sender_and_recipients() -> None:
    """An email channel without ``to`` is a config error naming the key."""
    config = AlertConfig(channels=[email_config(25, to=[])])
    with pytest.raises(ConfigError, match=r"alerts\.channels\[0\]\.to"):
        AlertManager(config)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with ``cryptography``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_email_upgrades_with_starttls_before_logging_in(tmp_path: Path) -> None:
    """With ``starttls`` the session is encrypted before AUTH, against a server that insists."""
    from aiosmtpd.controller import Controller

    cert_path, key_path = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=check_password,
        auth_required=True,
    )
    controller.start()
    try:
        client_tls = ssl.create_default_context(cafile=str(cert_path))
        channel = EmailChannel(email_config(port, starttls=True), ssl_context=client_tls)
        channel.send(make_alert())
    finally:
        controller.stop()
    assert mailbox.authenticated == [True]


def test_the_example_alerts_config_loads_and_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``examples/alerts.yaml`` is valid and builds every enabled channel."""
    from redline.config import load_config

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/tok")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "k" * 32)
    example = Path(__file__).resolve().parent.parent / "examples" / "alerts.yaml"
    manager = AlertManager(load_config(example).alerts)
    try:
        names = [channel.name for channel in manager.channels]
        assert names == ["console", "jsonl", "incident-bot", "ops-channel", "pager", "oncall-mail"]
    finally:
        manager.close(1.0)
