"""Alerts: what reaches a person when a detector, a policy or an operator acts.

:class:`AlertManager` routes each :class:`Alert` to its channels (:mod:`redline.alerts.channels`)
and hooks; :mod:`redline.alerts.delivery` delivers remote ones off the caller's thread.
"""

from redline.alerts.delivery import DeliveryError
from redline.alerts.manager import Alert, AlertChannel, AlertManager

__all__ = ["Alert", "AlertChannel", "AlertManager", "DeliveryError"]
