"""Per-repository settings: `[tool.periscope]` in pyproject.toml, or `.periscope.toml`.

A repository's files are data, never authority: they may switch capture off or
choose report options, but keys that would change where events go or whose
token is used are ignored (and logged).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

ALLOWED: dict[str, type | tuple[type, ...]] = {
    "capture": bool,
    "notes": bool,
    "idle_window_minutes": (int, float),
    "agent_hold_minutes": (int, float),
}
FORBIDDEN = {"endpoint", "client_id", "authority", "scopes", "token", "token_cache", "sink"}


@dataclass
class RepoSettings:
    capture: bool = True
    notes: bool = False
    # A commit with no pending AI usage emits an event only if this worktree had
    # an assistant message within this many minutes before it.
    idle_window_minutes: float = 30.0
    # How long an agent-made commit's event waits for its in-flight message.
    agent_hold_minutes: float = 15.0
    problems: list[str] = field(default_factory=list)


def _load_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    with open(path, "rb") as f:
        raw = f.read()
    # A file saved with a byte-order mark (some Windows editors) is the same settings: TOML
    # refused it, and the repository's settings were dropped for the defaults.
    data: dict[str, Any] = tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    return data


def load_settings(worktree: str) -> RepoSettings:
    settings = RepoSettings()
    if not worktree:
        return settings
    data: Any = {}  # a table's value may be anything: checked below
    dotfile = os.path.join(worktree, ".periscope.toml")
    pyproject = os.path.join(worktree, "pyproject.toml")
    try:
        if os.path.isfile(dotfile):
            data = _load_toml(dotfile)
            data = data.get("tool", {}).get("periscope", data) if "tool" in data else data
            source = dotfile
        elif os.path.isfile(pyproject):
            data = _load_toml(pyproject).get("tool", {}).get("periscope", {})
            source = pyproject
        else:
            return settings
    except Exception as e:
        settings.problems.append(f"could not read per-repo settings: {type(e).__name__}: {e}; using defaults")
        return settings
    if not isinstance(data, dict):
        return settings
    for key, value in data.items():
        if key in FORBIDDEN:
            settings.problems.append(f"{source}: '{key}' is ignored: a repository cannot change where events go")
        elif key not in ALLOWED:
            settings.problems.append(f"{source}: unknown setting '{key}' ignored")
        elif not isinstance(value, ALLOWED[key]) or (ALLOWED[key] is not bool and isinstance(value, bool)):
            settings.problems.append(f"{source}: '{key}' has the wrong type; using the default")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 <= value < math.inf:
            # nan linked no commit without pending usage (every comparison false), inf every one
            settings.problems.append(f"{source}: '{key}' is not a number of minutes (0 or more); using the default")
        else:
            setattr(settings, key, value)
    return settings
