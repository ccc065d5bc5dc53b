"""Every error Redline raises on purpose, in one place.

The hierarchy::

    RedlineError
    ├── ConfigError          a configuration file or value is wrong (names file, key path, expectation)
    ├── InvalidEventError    an event was rejected (only raised with ``strict=True``)
    ├── StoreError           the store could not do what was asked (driver errors are chained)
    │   └── IntegrityError   stored data contradicts its hash chain or signatures
    └── AgentStoppedError    Redline stopped this step (catch this once to handle every stop)
        ├── AgentKilledError     a kill switch covers the agent, session or fleet being checked
        └── BudgetExceededError  admitting the step would take a budget past its limit

Observation never raises into the agent: ``record()`` repairs or drops bad input and counts it.
Governance is explicit: ``check()``, ``guard()`` and ``reserve()`` raise an
:class:`AgentStoppedError` so a killed or over-budget agent fails closed. Integrations let exactly
this family through to the framework and swallow (and count) anything else of their own.
"""

from __future__ import annotations

__all__ = [
    "AgentKilledError",
    "AgentStoppedError",
    "BudgetExceededError",
    "ConfigError",
    "IntegrityError",
    "InvalidEventError",
    "RedlineError",
    "StoreError",
]


class RedlineError(Exception):
    """Base class of every error Redline raises on purpose."""


class ConfigError(RedlineError):
    """A configuration problem, located as precisely as we can.

    ``errors`` holds one line per problem, each ``file: key.path: what was expected``, so a
    user can fix all of them in one edit instead of one per run.
    """

    def __init__(self, errors: list[str] | str, *, file: str | None = None) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.file = file
        super().__init__("\n".join(self.errors))


class InvalidEventError(RedlineError, ValueError):
    """An event failed validation and the monitor is in strict mode.

    ``problems`` lists each ``(field, issue)`` found, in the order checked.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {issue}" for field, issue in problems))


class StoreError(RedlineError):
    """The store failed. The driver's own exception is chained as ``__cause__``."""


class IntegrityError(StoreError):
    """Stored data does not match its hash chain or checkpoint signatures."""


class AgentStoppedError(RedlineError):
    """Redline deliberately stopped a step: the one exception a governed agent must not swallow.

    Framework integrations re-raise it (or the framework's wrapper around it) so the run aborts
    before the model or tool call; every other failure inside an integration is swallowed.
    """


class AgentKilledError(AgentStoppedError):
    """Raised by ``check()`` and ``guard()`` when a kill switch covers the caller.

    ``scope`` is ``"global"``, ``"agent"`` or ``"session"``; ``target`` the killed agent name or
    session id (``"*"`` for global); ``reason`` what the killer said.
    """

    def __init__(self, scope: str, target: str, reason: str = "", actor: str = "") -> None:
        self.scope = scope
        self.target = target
        self.reason = reason
        self.actor = actor
        what = "all agents" if scope == "global" else f"{scope} {target!r}"
        super().__init__(f"{what} killed" + (f": {reason}" if reason else ""))


class BudgetExceededError(AgentStoppedError):
    """Raised by ``reserve()`` (and ``check()`` for exhausted ``deny`` budgets) when admitting
    the step would take a budget past its limit.

    ``budget`` is the budget's name, ``scope`` its scope (``agent``, ``session``, ``user``,
    ``tenant``, ``model`` or ``fleet``) and ``key`` the scope's value that is over; ``limit``,
    ``spent`` and ``reserved`` are USD at the moment of refusal.
    """

    def __init__(
        self,
        budget: str,
        scope: str,
        key: str,
        limit: float,
        spent: float,
        reserved: float,
        estimate: float = 0.0,
    ) -> None:
        self.budget = budget
        self.scope = scope
        self.key = key
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.estimate = estimate
        super().__init__(
            f"budget {budget!r} ({scope} {key!r}) would exceed ${limit:.4f}: "
            f"spent ${spent:.4f}, reserved ${reserved:.4f}, this step ${estimate:.4f}"
        )
