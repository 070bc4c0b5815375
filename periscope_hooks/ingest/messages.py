"""Message records: store each assistant message once and queue its event."""

from __future__ import annotations

from periscope_hooks import events, outbox, statedb
from periscope_hooks.ingest.commits import emit_link
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Message
from periscope_hooks.ingest.worktrees import learn


def apply_message(ctx: IngestContext, rec: Message, line_offset: int) -> None:
    conn = ctx.conn
    worktree = ctx.worktree_of(rec.cwd)
    if worktree and not ctx.settings(worktree).capture:
        return
    learn(ctx, worktree)
    # An agent commit may be waiting for exactly this message (its hold): it takes the message.
    held = statedb.held_link_for_message(conn, rec.id) if rec.id in ctx.held_message_ids() else None
    values = (
        rec.id,
        rec.session_id,
        worktree,
        rec.time,
        rec.provider,
        rec.model,
        rec.agent,
        *rec.tokens,
        rec.cost,
        rec.branch,
        rec.sha,
        line_offset,
        held["id"] if held is not None else None,
    )
    if not statedb.insert_message(conn, values):
        ctx.result.duplicates += 1
        return
    ctx.result.messages += 1
    if rec.session_id and ctx.session(rec.session_id) is None:
        statedb.ensure_session(conn, rec.session_id)
        ctx.forget_session(rec.session_id)
    # The event is built from the values just stored (a rebuild stores and reads the same), not
    # from a re-read row: one query less per message.
    msg = dict(zip(statedb.MESSAGE_COLUMNS, values))
    session = ctx.session(rec.session_id)
    # A message's event id follows from its id, and the message was new: no need to check
    # emitted_events (a B-tree insert per message) for it.
    outbox.enqueue(conn, events.message_event(msg, session, ctx.repo_url if worktree else None), new=True)
    if held is not None:
        ctx.held_message_ids().discard(rec.id)
        emit_link(ctx, held, note=None)
