"""Applying a `reconcile` record: usage moved to the commit that replaced its own.

The move was decided by periscope_hooks/reconcile.py from git and appended to the spool; here
it is applied in spool order like any other record, so a rebuild replays it the same way.  Only
links still on the old commit move: a decision recorded twice, or overtaken by a rewrite,
moves nothing and announces nothing.
"""

from __future__ import annotations

from periscope_hooks import events, statedb
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Reconcile, ReconcileSeen


def apply_reconcile(ctx: IngestContext, rec: Reconcile) -> None:
    pairs = statedb.move_reconciled(ctx.conn, rec.command, rec.pairs, rec.time)
    if not pairs:
        return
    ctx.events.add(
        events.rewrite_event(
            repo_id=ctx.repo_id, repo_url=ctx.repo_url, command=rec.command, pairs=pairs, time_ms=rec.time
        ),
    )
    if ctx.common_dir:
        # The replacements' notes are rewritten whole from the database: the moved usage, once;
        # the replaced commits' notes go (write_pending_notes).
        for worktree, sha in statedb.worktrees_of_commits(ctx.conn, sorted({n for _, n in pairs})):
            if ctx.settings(worktree or "").notes:
                ctx.notes.append(sha)
                ctx.notes.extend(sorted({o for o, n in pairs if n == sha and o != sha}))


def apply_reconcile_seen(ctx: IngestContext, rec: ReconcileSeen) -> None:
    """What a reconciliation run compared and left, kept where the next run reads it."""
    from periscope_hooks.reconcile import Seen

    seen = Seen.load(statedb.get_meta(ctx.conn, statedb.Meta.RECONCILE_SEEN)).changed(rec)
    statedb.set_meta(ctx.conn, statedb.Meta.RECONCILE_SEEN, seen.dump())
