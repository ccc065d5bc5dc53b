"""The ``email`` channel: a plain-text message over SMTP, via ``smtplib``.

Connects to ``host:port`` (default 587 with ``starttls``, else 25; port 465 means implicit TLS),
upgrades with STARTTLS when ``starttls`` is true (certificates verified against the system
store), logs in when ``username`` is set, and sends one message from ``from`` to every address
in ``to``. Subject: ``[Redline] SEVERITY: title`` (``SEVERITY (resolved)`` once resolved). The body
lists state, agent, severity, kind, rule, session, time, fingerprint, alert id and details.
Messages for one fingerprint share a ``References`` id, so mail clients thread them.

SMTP answers are triaged like HTTP ones: 4xx and dropped connections are retried, 5xx (a bad
password, a refused sender) are not. The password is masked in every error and log line.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from redline.alerts.channels._http import iso8601
from redline.alerts.delivery import DeliveryError
from redline.clock import Clock, SystemClock
from redline.exceptions import ConfigError

if TYPE_CHECKING:
    from redline.alerts.manager import Alert
    from redline.config import AlertChannelConfig

__all__ = ["EmailChannel"]

_IMPLICIT_TLS_PORT = 465
_MASK = "***"


def _header(text: str) -> str:
    """A header value on one line (CR/LF in an alert title must not inject headers)."""
    return " ".join(text.split())


class EmailChannel:
    """Sends each alert as one plain-text email."""

    deliver_inline = False

    def __init__(
        self,
        config: AlertChannelConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not config.host:
            raise ConfigError("host: an email channel needs an SMTP host")
        if not config.from_:
            raise ConfigError("from: an email channel needs a from address")
        if not config.to:
            raise ConfigError("to: an email channel needs at least one recipient")
        if config.timeout_seconds <= 0:
            raise ConfigError("timeout_seconds: expected a positive number of seconds")
        self.type = config.type
        self.name = config.name or config.type
        self.min_severity = config.min_severity
        self.host = config.host
        self.port = config.port or (587 if config.starttls else 25)
        self.starttls = config.starttls
        self.username = config.username
        self.password = config.password
        self.sender = config.from_
        self.recipients = list(config.to)
        self.timeout = float(config.timeout_seconds)
        self._ssl_context = ssl_context
        self._clock = clock or SystemClock()
        self._secrets = tuple(s for s in (self.password, self.username) if len(s) >= 4)

    def __repr__(self) -> str:
        return (
            f"EmailChannel(name={self.name!r}, host={self.host!r}, port={self.port}, "
            f"to={self.recipients!r})"
        )

    def redact(self, text: str) -> str:
        """``text`` with the SMTP password (and user name) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    # -- the message ------------------------------------------------------------------------
    def subject(self, alert: Alert) -> str:
        """``[Redline] SEVERITY: title``, with the state when it is not firing."""
        severity = alert.severity.upper()
        if alert.state != "firing":
            severity += f" ({alert.state})"
        return _header(f"[Redline] {severity}: {alert.title}")

    def body(self, alert: Alert) -> str:
        """The plain-text body."""
        rows = [
            ("State", alert.state),
            ("Agent", alert.agent),
            ("Severity", alert.severity),
            ("Kind", alert.kind),
            ("Rule", alert.rule or "-"),
            ("Session", alert.session_id or "-"),
            ("Time", iso8601(alert.timestamp)),
            ("Fingerprint", alert.fingerprint or "-"),
            ("Alert id", alert.id),
        ]
        lines = [f"{alert.severity.upper()} alert from Redline: {alert.title}", "", alert.message]
        lines += ["", *(f"{name + ':':<13}{value}" for name, value in rows)]
        if alert.details:
            lines += ["", "Details:", *(f"  {k}: {v}" for k, v in alert.details.items())]
        return "\n".join(lines) + "\n"

    def message(self, alert: Alert) -> EmailMessage:
        """The email for ``alert``."""
        msg = EmailMessage()
        domain = self.sender.rpartition("@")[2] or "redline.invalid"
        msg["Subject"] = self.subject(alert)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(self._clock.time(), usegmt=True)
        msg["Message-ID"] = make_msgid(idstring=_header(alert.id), domain=domain)
        thread = hashlib.sha256((alert.fingerprint or alert.id).encode()).hexdigest()[:32]
        msg["References"] = f"<{thread}@{domain}>"
        msg["X-Redline-Alert-Id"] = _header(alert.id)
        msg["X-Redline-Fingerprint"] = _header(alert.fingerprint)
        msg["X-Redline-State"] = _header(alert.state)
        msg.set_content(self.body(alert))
        return msg

    # -- sending ----------------------------------------------------------------------------
    def send(self, alert: Alert) -> None:
        """Send the email; raises DeliveryError (retryable on 4xx and dropped connections)."""
        msg = self.message(alert)
        context = self._ssl_context or ssl.create_default_context()
        where = f"{self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self.port == _IMPLICIT_TLS_PORT:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.starttls and self.port != _IMPLICIT_TLS_PORT:
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"SMTP {where} refused every recipient ({', '.join(map(str, codes))})",
                retryable=all(400 <= c < 500 for c in codes),
                status=codes[0] if codes else None,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"SMTP {where} does not support {self.redact(str(exc))}", retryable=False
            ) from exc
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            what = (
                "authentication failed"
                if isinstance(exc, smtplib.SMTPAuthenticationError)
                else "answered"
            )
            raise DeliveryError(
                f"SMTP {where} {what}: {code} {self.redact(text)}",
                retryable=400 <= code < 500,
                status=code,
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"SMTP {where}: TLS certificate not trusted ({exc.verify_message})", retryable=False
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP {where}: {type(exc).__name__}: {self.redact(str(exc))}"
            ) from exc
