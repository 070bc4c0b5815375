"""What is linked to one commit: the usage `periscope report --by commit` and git notes show."""

from __future__ import annotations

import sqlite3
from typing import Any

from periscope_hooks import events, statedb


def commit_summary(conn: sqlite3.Connection, sha: str) -> dict[str, Any] | None:
    """Everything linked to a commit, including usage moved to it from rewritten commits."""
    links = statedb.links_of_commit(conn, sha)
    if not links:
        return None
    msgs = [events.event_message(m) for m in statedb.link_messages(conn, [link["id"] for link in links])]
    # The commit's own link (made when it was created) describes it.
    own = next((link for link in reversed(links) if link["sha"] == sha), links[-1])
    return {
        "sha": sha,
        "kind": own["kind"],
        "origin": own["origin"],
        "branch": own["branch"],
        **events.usage_summary(msgs, statedb.sessions_by_id(conn, [m[1] for m in msgs])),
    }
