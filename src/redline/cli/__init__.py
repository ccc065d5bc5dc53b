"""``redline``: the command line (Typer + Rich).

Commands: ``validate``, ``inspect``, ``status``, ``events``, ``kill``, ``revive``, ``check``,
``export``, ``verify``, ``tail``, ``prune``, ``replay`` (see ``docs/cli.md``). Every command reads
the same config as the agents (``-c monitor.yaml``) and talks to the same store; nothing the CLI
does lives only in the CLI process.

``python -m redline.cli`` runs the same :func:`main` as the installed ``redline`` script.

Exit codes: ``0`` ok; ``1`` the command ran and found a problem (``verify`` found damage,
``check`` found a kill); ``2`` usage, config or store error (the command could not run).
"""

from __future__ import annotations

from redline.cli._app import app, main

__all__ = ["app", "main"]
