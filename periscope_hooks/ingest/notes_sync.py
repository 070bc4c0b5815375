"""Git notes for linked commits, written after the ingest transaction commits (never under its lock)."""

from __future__ import annotations

from periscope_hooks import logfile, paths
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.summary import commit_summary


def write_pending_notes(ctx: IngestContext) -> None:
    if not ctx.notes or not ctx.common_dir:
        ctx.notes = []
        return
    try:
        from periscope_hooks import notes

        for sha in dict.fromkeys(ctx.notes):
            data = commit_summary(ctx.conn, sha)
            if data is not None:
                notes.write_note(ctx.common_dir, sha, data)
    except Exception as e:  # notes are a convenience; the state is already committed
        logfile.log_line(ctx.state_dir / paths.HOOK_LOG_NAME, "writing git notes failed", exc=e)
    ctx.notes = []
