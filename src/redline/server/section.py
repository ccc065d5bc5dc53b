"""``parse_server_config``: a ``server:`` mapping checked exactly as a whole config file is.

Apart from :mod:`redline.server.config` (the structs and their semantic checks) because it uses
the config loader, which itself imports those structs: keeping the two apart is what keeps the
loader and the server's config free of an import circle.
"""

from __future__ import annotations

from typing import Any

from redline.config import parse_config
from redline.exceptions import ConfigError
from redline.server.config import ServerConfig

__all__ = ["parse_server_config"]


def parse_server_config(raw: Any, *, source: str = "<config>") -> ServerConfig:
    """Validate a ``server:`` mapping (already parsed and interpolated) into a config.

    ``None`` gives the defaults. Problems are reported exactly as for a whole config file (the
    section is checked by :func:`redline.config.parse_config`): every one, with its key path.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: server: expected a mapping, got {type(raw).__name__}"])
    return parse_config({"server": raw}, source=source).server
