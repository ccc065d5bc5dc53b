"""``python -m redline.cli``: the same as the ``redline`` command."""

from __future__ import annotations

from redline.cli._app import main

raise SystemExit(main())
