"""Recover an agent's messages from its own logs when its capture hooks never ran.

A commit made by Claude Code names its session (CLAUDE_CODE_SESSION_ID) even when no capture
hook ran: `--bare` runs no hooks, or the hooks were installed after the session started.  After
ingest, the flusher looks at the agent commits it has not looked at yet; for a session with no
capture state it finds the transcript by the session id and captures it like the hooks would
have.  The recovered messages land in the spool after the commit, so they go to the next commit
(the commit itself was emitted when it was ingested).  Capture is offset-based, so running
this twice, or alongside the hooks, records nothing twice.
"""

from __future__ import annotations

import sqlite3

from periscope_hooks.agents import claude_code
from periscope_hooks.state import get_meta, set_meta, transaction

MARK = "agents_recovery_link_id"  # the highest link id looked at


def recover_sessions(conn: sqlite3.Connection) -> list[str]:
    """Capture the transcripts of agent sessions no hook captured; the state dirs whose spool grew."""
    mark = int(get_meta(conn, MARK, "0") or 0)
    rows = conn.execute(
        "SELECT id, agent_session_id FROM links WHERE id > ? AND origin = 'agent' ORDER BY id", (mark,)
    ).fetchall()
    if not rows:
        return []
    written: list[str] = []
    for session_id in dict.fromkeys(r["agent_session_id"] for r in rows if r["agent_session_id"]):
        if not claude_code.has_capture_state(session_id):
            written.extend(d for d in claude_code.recover(session_id) if d not in written)
    with transaction(conn):
        set_meta(conn, MARK, str(rows[-1]["id"]))
    return written
