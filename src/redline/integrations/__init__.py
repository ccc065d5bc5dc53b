"""Framework integrations: record every model and tool call, and stop the agent before the next.

One module per framework, each importing its framework lazily behind an extra; importing a
module whose framework is missing raises an :class:`ImportError` naming the extra. Every
integration checks the kill switch (and reserves budget) before each model and tool call and
lets only :class:`~redline.AgentStoppedError` reach the agent. :data:`INTEGRATIONS` lists them
(the shape of sentry-python's integration table): the module, the extra, the framework package
it needs and the one-line entry point. See docs/integrations.md.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Final

from redline.integrations._base import Governed, Step, StepRecorder, Usage, require

__all__ = [
    "INTEGRATIONS",
    "Governed",
    "Integration",
    "Step",
    "StepRecorder",
    "Usage",
    "available",
    "require",
]


@dataclass(frozen=True, slots=True)
class Integration:
    """One row of the registry."""

    name: str
    module: str
    extra: str
    requires: str
    entry: str

    def installed(self) -> bool:
        """Whether the framework package this integration adapts can be imported."""
        return importlib.util.find_spec(self.requires) is not None


INTEGRATIONS: Final[tuple[Integration, ...]] = (
    Integration(
        "langchain",
        "redline.integrations.langchain",
        "langchain",
        "langchain_core",
        "RedlineCallbackHandler",
    ),
    Integration(
        "openai_agents",
        "redline.integrations.openai_agents",
        "openai-agents",
        "agents",
        "RedlineRunHooks",
    ),
    Integration(
        "pydantic_ai",
        "redline.integrations.pydantic_ai",
        "pydantic-ai",
        "pydantic_ai",
        "RedlineCapability",
    ),
    Integration("openai", "redline.integrations.openai", "openai", "openai", "guard"),
    Integration("anthropic", "redline.integrations.anthropic", "anthropic", "anthropic", "guard"),
    Integration("crewai", "redline.integrations.crewai", "crewai", "crewai", "instrument"),
    Integration(
        "guardrails",
        "redline.integrations.guardrails",
        "guardrails",
        "theaios.guardrails",
        "GuardrailsMonitor",
    ),
    Integration(
        "otel", "redline.integrations.otel", "otel", "opentelemetry.sdk", "RedlineSpanProcessor"
    ),
)


def available() -> list[Integration]:
    """The integrations whose framework is installed in this environment."""
    return [i for i in INTEGRATIONS if _safe_installed(i)]


def _safe_installed(integration: Integration) -> bool:
    try:
        return integration.installed()
    except (ImportError, ValueError):
        return False
