"""The ``slack`` channel: a Block Kit message through an incoming webhook.

The message is ``{"text": <fallback for notifications>, "blocks": [header, section, fields,
context]}``: a header with a severity emoji and the title, the message in mrkdwn, a fields
section (agent, severity, rule, time, session) and a context line with the fingerprint. A
``resolved`` or ``acknowledged`` alert posts a "Resolved"/"Acknowledged" message instead
(incoming webhooks cannot edit the original message). The webhook URL is the credential: it is
never logged (see :func:`~redline.alerts.channels._http.mask_url`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redline.alerts.channels._http import HttpChannel, iso8601, truncate

if TYPE_CHECKING:
    from redline.alerts.manager import Alert

__all__ = ["SlackChannel"]

EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "warning": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}
STATE_EMOJI = {"resolved": ":white_check_mark:", "acknowledged": ":eyes:"}

# Slack's limits: header text 150, section text 3000, field text 2000, fallback text 4000.
_HEADER_MAX, _SECTION_MAX, _FIELD_MAX, _TEXT_MAX = 150, 3000, 2000, 4000


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(HttpChannel):
    """POSTs a Block Kit message to a Slack incoming-webhook ``url``."""

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON document sent."""
        severity = alert.severity.upper()
        if alert.state == "firing":
            emoji = EMOJI.get(alert.severity, ":warning:")
            heading = f"{emoji} {severity}: {alert.title}"
            message = alert.message
            fallback = f"[{severity}] {alert.agent}: {alert.title}: {alert.message}"
        else:
            label = alert.state.capitalize()
            emoji = STATE_EMOJI.get(alert.state, ":information_source:")
            heading = f"{emoji} {label}: {alert.title}"
            message = f"{label}: {alert.message}"
            fallback = f"{label}: [{severity}] {alert.agent}: {alert.title}"
        stamp = int(alert.timestamp)
        when = f"<!date^{stamp}^{{date_short_pretty}} {{time_secs}}|{iso8601(alert.timestamp)}>"
        fields = [
            ("Agent", escape(alert.agent)),
            ("Severity", severity),
            ("Rule", escape(alert.rule or alert.kind)),
            ("Time", when),
        ]
        if alert.session_id:
            fields.append(("Session", escape(alert.session_id)))
        context = f"Fingerprint `{escape(alert.fingerprint or alert.id)}` · {escape(alert.kind)}"
        context += f" · alert `{escape(alert.id)}` · Redline"
        return {
            "text": truncate(escape(fallback), _TEXT_MAX),
            "blocks": [
                {
                    "type": "header",
                    "text": {
                        "type": "plain_text",
                        "text": truncate(heading, _HEADER_MAX),
                        "emoji": True,
                    },
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": truncate(escape(message), _SECTION_MAX)},
                },
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": truncate(f"*{name}*\n{value}", _FIELD_MAX)}
                        for name, value in fields
                    ],
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
            ],
        }

    def send(self, alert: Alert) -> None:
        """POST the message; raises DeliveryError unless Slack answers 2xx."""
        self.post(self.url, self.payload(alert))
