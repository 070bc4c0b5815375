"""User configuration: ~/.config/opencode/analytics.json (the file the product brief names).

Only the user's own config (and environment) may choose where events go and
which sign-in is used; a repository's files never can (see settings.py).

    {
      "endpoint": "https://ingest.periscope.example/v1/events",
      "client_id": "00000000-0000-0000-0000-000000000000",
      "authority": "https://login.periscope.example/tenant",
      "scopes": ["api://periscope/ingest"]
    }

Environment variables override each key: PERISCOPE_ENDPOINT, PERISCOPE_CLIENT_ID,
PERISCOPE_AUTHORITY, PERISCOPE_SCOPES (space-separated).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from periscope_hooks import paths
from periscope_hooks.errors import UserError

KNOWN_KEYS = {"endpoint", "client_id", "authority", "scopes", "$schema"}
ENV = {
    "endpoint": "PERISCOPE_ENDPOINT",
    "client_id": "PERISCOPE_CLIENT_ID",
    "authority": "PERISCOPE_AUTHORITY",
    "scopes": "PERISCOPE_SCOPES",
}


@dataclass
class UserConfig:
    endpoint: str | None = None
    client_id: str | None = None
    authority: str | None = None
    scopes: list[str] = field(default_factory=list)
    path: str = ""

    @property
    def signs_in(self) -> bool:
        return bool(self.client_id and self.authority)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str, source: str) -> None:
    """HTTPS, or plain HTTP to a loopback address only."""
    parts = urlsplit(url)
    if "@" in url.split("://", 1)[-1]:
        # Never echo it: it may hold a password.  (A '/' or '#' in a password breaks URL parsing,
        # so any '@' is refused rather than trusting urlsplit to find the user info.)
        raise UserError(
            f"{what} in {source} contains credentials (user:password@)",
            f"remove them from '{what}': sign-in uses client_id and authority, never the URL",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{what} in {source} is not an http(s) URL: {_redact(url)}", f"fix '{what}' in {source}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UserError(
            f"{what} in {source} uses http:// for a non-loopback host ({parts.hostname})",
            f"use https:// in {source} (plain http is allowed only for 127.0.0.1 / localhost)",
        )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        return url.replace(parts.netloc, parts.hostname or "", 1)
    return url


def load_user_config() -> UserConfig:
    """Read and validate the user config; raise UserError (one line + hint) when it is broken.

    A missing file is not an error: no endpoint means the local store is the sink.
    """
    path = paths.analytics_config_path()
    cfg = UserConfig(path=str(path))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UserError(f"{path} is not valid JSON ({e})", f"fix or remove {path}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} must hold a JSON object", f"fix or remove {path}")
        unknown = sorted(set(data) - KNOWN_KEYS)
        if unknown:
            raise UserError(
                f"{path} has unknown key(s): {', '.join(unknown)}",
                f"remove them; known keys: {', '.join(sorted(KNOWN_KEYS - {'$schema'}))}",
            )
        for key in ("endpoint", "client_id", "authority"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise UserError(f"'{key}' in {path} must be a string", f"fix '{key}' in {path}")
        scopes = data.get("scopes")
        if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise UserError(f"'scopes' in {path} must be a list of strings", f"fix 'scopes' in {path}")
    cfg.endpoint = data.get("endpoint") or None
    cfg.client_id = data.get("client_id") or None
    cfg.authority = data.get("authority") or None
    cfg.scopes = list(data.get("scopes") or [])
    for key, var in ENV.items():
        value = os.environ.get(var)
        if value:
            setattr(cfg, key, value.split() if key == "scopes" else value)
    if cfg.endpoint:
        check_url(cfg.endpoint, "endpoint", os.environ.get("PERISCOPE_ENDPOINT") and "$PERISCOPE_ENDPOINT" or str(path))
    if cfg.authority:
        check_url(
            cfg.authority, "authority", os.environ.get("PERISCOPE_AUTHORITY") and "$PERISCOPE_AUTHORITY" or str(path)
        )
    if cfg.endpoint and bool(cfg.client_id) != bool(cfg.authority):
        raise UserError(
            f"{path} names {'client_id' if cfg.client_id else 'authority'} without"
            f" {'authority' if cfg.client_id else 'client_id'}",
            f"set both (or neither) in {path}",
        )
    return cfg
