"""The alert channels, one module per ``type``, and the registry that builds them from config.

=============  ===================================  =========
type           class                                delivered
=============  ===================================  =========
``console``    :class:`.console.ConsoleChannel`     inline
``file``       :class:`.jsonl.JsonlChannel`         inline
``jsonl``      :class:`.jsonl.JsonlChannel`         inline
``webhook``    :class:`.webhook.WebhookChannel`     worker
``slack``      :class:`.slack.SlackChannel`         worker
``pagerduty``  :class:`.pagerduty.PagerDutyChannel` worker
``opsgenie``   :class:`.opsgenie.OpsgenieChannel`   worker
``email``      :class:`.email.EmailChannel`         worker
=============  ===================================  =========

Modules are imported when a channel of their type is configured, so a monitor with only a
console channel never imports httpx or smtplib. Any object with ``name``, ``min_severity`` and
``send(alert)`` is a channel too: pass it to ``AlertManager(channels=[...])``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redline.alerts.manager import AlertChannel
    from redline.config import AlertChannelConfig

__all__ = ["CHANNEL_CLASSES", "build_channel", "channel_class"]

#: ``type`` → ``"module:Class"`` under this package.
CHANNEL_CLASSES: dict[str, str] = {
    "console": "console:ConsoleChannel",
    "file": "jsonl:JsonlChannel",
    "jsonl": "jsonl:JsonlChannel",
    "webhook": "webhook:WebhookChannel",
    "slack": "slack:SlackChannel",
    "pagerduty": "pagerduty:PagerDutyChannel",
    "opsgenie": "opsgenie:OpsgenieChannel",
    "email": "email:EmailChannel",
}


def channel_class(type_name: str) -> Any:
    """The class delivering ``type_name`` channels, or None for a type this build lacks."""
    target = CHANNEL_CLASSES.get(type_name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)


def build_channel(config: AlertChannelConfig) -> AlertChannel | None:
    """The channel for one config entry; None for an unknown type. Raises ConfigError on misuse."""
    cls = channel_class(config.type)
    if cls is None:
        return None
    channel: AlertChannel = cls(config)
    return channel
