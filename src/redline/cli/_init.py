"""``init``: a commented starter config, for a pip user who has no ``examples/`` directory.

The file is the quick start's config plus what a first real deployment needs: a durable SQLite
store beside it, a budget, and a ``server:`` section with an admin token. The token itself is shown
once on the terminal and only its SHA-256 digest goes into the file, so the config can be
committed and shared without carrying a credential. The written file is loaded back before
``init`` reports success: what it writes always validates.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from redline.cli._common import CliError, emit_json, out_console, text
from redline.config import load_config
from redline.exceptions import ConfigError

__all__ = ["init"]

_TEMPLATE = """\
# {name}: a Redline config (`redline init` wrote it; docs/configuration.md has every key).
# Check it with `redline -c {name} validate`; see what it will do with `redline -c {name} inspect`.
version: "1.0"
metadata:
  name: my-monitor
  description: Production agent monitoring

# Where events go. Without a path: .redline/events.db beside this file, a SQLite store every
# agent and the CLI using this file share; durable, tamper-evident (hash chain, signed
# checkpoints). A relative path is relative to the working directory. For a fleet:
#   backend: postgres
#   dsn: "${{REDLINE_DSN}}"
storage:
  durability: group   # record() never waits for the disk; `sync` waits for denials and kills

metrics:
  default_window_seconds: 300

# Automatic kill switches: an agent whose metric crosses the threshold is stopped at its next
# check(), in every process sharing the store, until revived (`redline revive NAME`).
kill_switch:
  enabled: true
  policies:
    - name: auto-kill-on-high-cost
      metric: cost_per_minute
      operator: ">"
      threshold: 5.0
      action: kill_agent
      severity: critical

# Budgets are reserved before a call and hold across processes (docs/budgets.md).
budgets:
  - name: per-agent-daily
    scope: agent
    match: "*"
    limit_usd: 20.0
    period: day
    action: deny
    warn_at: [0.5, 0.8]

alerts:
  channels:
    - type: console
  # - type: slack
  #   webhook_url: "${{SLACK_WEBHOOK_URL}}"
  #   min_severity: warning

# `redline -c {name} serve`: the HTTP API, the live stream and the dashboard.
server:
  host: 127.0.0.1
  port: 8765
  tokens:
    # Only the token's SHA-256 digest is kept here; `redline init` printed the token once.
    - name: admin
      role: admin
      token_sha256: "{digest}"
    # An agent that only sends events:
    # - {{name: agents, role: ingest, token: "${{REDLINE_INGEST_TOKEN}}"}}
"""


def init(
    path: Annotated[
        Path, typer.Argument(help="Where to write the config.", show_default=True)
    ] = Path("monitor.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the path, store and token as JSON.")
    ] = False,
) -> None:
    """Write a commented starter config (store, kill policy, budget, server token)."""
    if path.exists() and not force:
        raise CliError(f"{path} exists: pass --force to overwrite it", code=1)
    if path.parent and not path.parent.is_dir():
        raise CliError(f"no such directory: {path.parent}")
    token = secrets.token_urlsafe(32)
    body = _TEMPLATE.format(
        name=path.name, digest=hashlib.sha256(token.encode("utf-8")).hexdigest()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    try:
        db = load_config(path).storage.path
    except ConfigError as exc:  # the template and the schema disagree: a bug, say so loudly
        raise CliError(f"redline init wrote a config that does not load: {exc}") from exc
    if as_json:
        emit_json({"path": str(path), "store": db, "admin_token": token})
        return
    console = out_console()
    console.print(text(f"Wrote {path} (events will be stored in {db}).", "bold"))
    console.print(
        text(
            "\nThe server's admin token (shown once; only its digest is in the file):\n\n"
            f"    {token}\n\nNext:\n"
            f"    redline -c {path} validate\n"
            f"    redline -c {path} serve            # dashboard on http://127.0.0.1:8765/\n"
            f'    in Python: Monitor(load_config("{path}"))   # from redline import ...\n'
        )
    )
