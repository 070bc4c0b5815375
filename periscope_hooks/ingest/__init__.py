"""Ingest the spool into state.db and link usage to commits.

Records are applied in spool order, which is what makes attribution exact: a commit
record takes the messages of its worktree recorded before it; those after it wait for
the next.  Everything is idempotent (messages by id, links by sha+kind+worktree, events
by event id), so re-reading a record, or the whole spool after a rebuild, changes nothing.

One job per module: spool_reader (position and batches), records (lines to typed
records), sessions, messages, commits (linking), rules (the linking decisions as plain
functions), holds (agent commits waiting for their message), notes_sync, summary.
"""

from __future__ import annotations

from periscope_hooks.ingest.context import IngestResult
from periscope_hooks.ingest.rules import classify_commit
from periscope_hooks.ingest.run import process_spool
from periscope_hooks.ingest.summary import commit_summary

__all__ = ["IngestResult", "classify_commit", "commit_summary", "process_spool"]
