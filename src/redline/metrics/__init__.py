"""Rolling-window metrics: per-second buckets with running totals, snapshots and baselines."""

from redline.metrics.baselines import EWMABaseline, WelfordBaseline
from redline.metrics.snapshot import METRIC_NAMES, MetricSnapshot
from redline.metrics.windows import AgentWindows, Totals

__all__ = [
    "METRIC_NAMES",
    "AgentWindows",
    "EWMABaseline",
    "MetricSnapshot",
    "Totals",
    "WelfordBaseline",
]
