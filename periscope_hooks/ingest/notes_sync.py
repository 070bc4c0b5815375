"""Git notes for linked commits, written after the ingest transaction commits (never under its lock)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from periscope_hooks import logfile, paths
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.summary import commit_summary

NOTES_LOCK_NAME = "notes.lock"


@contextlib.contextmanager
def _notes_lock(ctx: IngestContext) -> Iterator[None]:
    """One writer of notes at a time per repository.  Two ingest runs (a background flusher and a
    `report`) each write the notes of the commits their batches touched, reading the usage after
    their own commit; without this, the older run's read could land between the newer run's commit
    and its note, and its note (0 tokens on an amended commit, seen under load) the last written."""
    import fcntl

    try:
        fd = os.open(str(ctx.state_dir / NOTES_LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only state folder: nothing is ingested there either
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a few `git notes` calls, each bounded by run_git
        yield
    finally:
        os.close(fd)


def write_pending_notes(ctx: IngestContext) -> None:
    if not ctx.notes or not ctx.common_dir or not ctx.write_notes:
        ctx.notes = []
        return
    try:
        from periscope_hooks import notes

        with _notes_lock(ctx):
            moved_away = []
            for sha in dict.fromkeys(ctx.notes):
                data = commit_summary(ctx.conn, sha)  # read under the lock: the newest committed usage
                if data is not None:
                    notes.write_note(ctx.common_dir, sha, data)
                else:
                    moved_away.append(sha)  # a rewritten commit: its usage is noted on its replacement
            if moved_away:
                notes.remove_notes(ctx.common_dir, moved_away)
    except Exception as e:  # notes are a convenience; the state is already committed
        logfile.log_line(ctx.state_dir / paths.HOOK_LOG_NAME, "writing git notes failed", exc=e)
    ctx.notes = []
