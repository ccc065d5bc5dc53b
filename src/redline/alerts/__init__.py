"""Alerts: what reaches a person when a detector, a policy or an operator acts."""

from redline.alerts.manager import Alert, AlertManager

__all__ = ["Alert", "AlertManager"]
