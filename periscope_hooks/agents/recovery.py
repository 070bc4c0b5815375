"""Recover an agent's messages from its own logs when its capture hooks never ran.

A commit made by Claude Code names its session (CLAUDE_CODE_SESSION_ID) even when no capture
hook ran: `--bare` runs no hooks, or the hooks were installed after the session started.  After
ingest, the flusher looks at the agent commits it has not looked at yet; for a session with no
capture state it finds the transcript by the session id and captures it like the hooks would
have.  The recovered messages land in the spool after the commit, so they go to the next commit
(the commit itself was emitted when it was ingested).  Capture is offset-based, so running
this twice, or alongside the hooks, records nothing twice.

A recovered session is followed: every later flush captures what its transcript gained, until the
transcript has been quiet for a day.  The first recovery usually runs in the background flusher
the agent's own commit started, while the session goes on; without following it, the session's
replies after that commit were never captured (no hook runs, and the session now has capture
state, which is what tells a hook-captured session apart).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from periscope_hooks import statedb
from periscope_hooks.agents import claude_code
from periscope_hooks.state import transaction
from periscope_hooks.statedb import Meta

QUIET_S = 24 * 3600  # a transcript unchanged this long is a finished session: no longer followed


def _follow(session_id: str, written: list[str]) -> bool:
    """Capture what the recovered session's transcript gained; False once it is gone or quiet."""
    transcript = claude_code.find_transcript(session_id)
    try:
        if transcript is None or time.time() - os.path.getmtime(transcript) > QUIET_S:
            return False
    except OSError:
        return False
    written.extend(d for d in claude_code.capture_session(session_id, transcript) if d not in written)
    return True


def recover_sessions(conn: sqlite3.Connection) -> list[str]:
    """Capture the transcripts of agent sessions no hook captured; the state dirs whose spool grew."""
    rows = statedb.agent_links_after(conn, int(statedb.get_meta(conn, Meta.AGENTS_RECOVERY_MARK, "0") or 0))
    followed: list[str] = json.loads(statedb.get_meta(conn, Meta.AGENTS_FOLLOWED, "[]") or "[]")
    if not rows and not followed:
        return []
    written: list[str] = []
    still = [session_id for session_id in followed if _follow(session_id, written)]
    for session_id in dict.fromkeys(session_id for _, session_id in rows if session_id):
        if session_id not in still and not claude_code.has_capture_state(session_id):
            written.extend(d for d in claude_code.recover(session_id) if d not in written)
            still.append(session_id)
    with transaction(conn):
        if rows:
            statedb.set_meta(conn, Meta.AGENTS_RECOVERY_MARK, str(rows[-1][0]))
        if still != followed:
            statedb.set_meta(conn, Meta.AGENTS_FOLLOWED, json.dumps(still))
    return written
