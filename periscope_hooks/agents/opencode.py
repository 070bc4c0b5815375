"""OpenCode: captured by its own plugin (resources/opencode-plugin.js), which writes the spool
records itself and gives every command it runs PERISCOPE_SESSION_ID and PERISCOPE_MESSAGE_ID."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Mapping
    from typing import Any

NAME = "opencode"


def commit_agent(env: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    session_id = env.get("PERISCOPE_SESSION_ID")
    message_id = env.get("PERISCOPE_MESSAGE_ID")
    if not (session_id or message_id):
        return None
    # No coding_agent key: a commit record without one is OpenCode's (the spool's default).
    return {"session_id": session_id or None, "message_id": message_id or None}
