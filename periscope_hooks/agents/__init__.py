"""Coding agents: one adapter module per agent, with a small common interface.

Every adapter module has:

- `NAME`: the value of `coding_agent` in spool records and events ("opencode", "claude-code").
- `commit_agent(env)`: the `agent` block of a commit record when the commit was made by a
  command this agent ran (None otherwise).  Called by the commit hook, so it runs on the hot
  path: os only, no json, no subprocess (tests/test_hook_imports.py guards this).

Agents that are captured by periscope itself rather than by a plugin of their own (Claude Code)
also have `capture(hook_input)` (a hook run by the agent) and `recover(session_id)` (find the
agent's own log by session id and capture it, for when the hooks never ran).

A third agent (Codex CLI: `CODEX_SESSION_ID`, rollout JSONL with token counts) is one more
module here and one more name in `commit_agent`'s list.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Mapping
    from typing import Any

# Records written before there was more than one agent name none: they are OpenCode's.
DEFAULT_CODING_AGENT = "opencode"


def commit_agent(env: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The `agent` block of a commit record made by a coding agent's command, or None (a human)."""
    from periscope_hooks.agents import claude_code, opencode

    # The first that answers wins (Claude Code's variables are the more specific).
    return claude_code.commit_agent(env) or opencode.commit_agent(env)
