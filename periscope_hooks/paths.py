"""Where things live (docs/configuration.md, "Where things live").

Every path honours HOME and the XDG variables so tests never touch the real home.
This module only computes paths; it does not create anything.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_SUBDIR = "periscope"
SPOOL_NAME = "spool.jsonl"
STATE_DB_NAME = "state.db"
HOOK_LOG_NAME = "hook.log"
PLUGIN_LOG_NAME = "plugin.log"  # the OpenCode plugin's (resources/opencode-plugin.js), beside hook.log


def home() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~"))


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return home() / default


def config_home() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def data_home() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share")


def state_home() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state")


def no_repo_state_dir() -> Path:
    """State for OpenCode sessions outside any git repository."""
    return state_home() / "periscope" / "no-repo"


def state_dir_for_common_dir(common_dir: str | os.PathLike[str]) -> Path:
    return Path(common_dir) / STATE_SUBDIR


def analytics_config_path() -> Path:
    """The user config the product brief names: ~/.config/opencode/analytics.json."""
    return config_home() / "opencode" / "analytics.json"


def periscope_config_dir() -> Path:
    return config_home() / "periscope"


def token_cache_path() -> Path:
    return periscope_config_dir() / "token_cache.json"


def sign_in_required_path() -> Path:
    """Present while the sign-in has expired; the OpenCode plugin reads it to ask again on start."""
    return periscope_config_dir() / "sign-in-required"


def local_store_path() -> Path:
    return data_home() / "periscope" / "events.db"


def user_log_path() -> Path:
    """periscope.log: what failed outside any one repository (a command's traceback, the local store)."""
    return state_home() / "periscope" / "periscope.log"


def fallback_log_path() -> Path:
    """Where the hook logs when the repository's state dir cannot be written."""
    return state_home() / "periscope" / HOOK_LOG_NAME
