"""User configuration: ~/.config/opencode/analytics.json (the file the product brief names).

Only the user's own config may choose where events go and which sign-in is used;
a repository's files never can (see settings.py for per-repo settings).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

from periscope_hooks import paths
from periscope_hooks.errors import UserError


@dataclass
class UserConfig:
    endpoint: Optional[str] = None
    client_id: Optional[str] = None
    authority: Optional[str] = None
    scopes: List[str] = field(default_factory=list)
    path: str = ""


def load_user_config() -> UserConfig:
    """Read and validate the user config; raise UserError (one line + hint) when it is broken."""
    path = paths.analytics_config_path()
    cfg = UserConfig(path=str(path))
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path} is not valid JSON ({e})", f"fix or remove {path}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} must hold a JSON object", f"fix or remove {path}")
        cfg.endpoint = data.get("endpoint") or None
        cfg.client_id = data.get("client_id") or None
        cfg.authority = data.get("authority") or None
        cfg.scopes = list(data.get("scopes") or [])
    cfg.endpoint = os.environ.get("PERISCOPE_ENDPOINT", cfg.endpoint) or None
    return cfg
