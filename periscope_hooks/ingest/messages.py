"""Message records: store each assistant message once and queue its event."""

from __future__ import annotations

from periscope_hooks import events, outbox, statedb
from periscope_hooks.ingest.commits import emit_link
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Message


def apply_message(ctx: IngestContext, rec: Message, line_offset: int) -> None:
    conn = ctx.conn
    worktree = ctx.worktree_of(rec.cwd)
    if worktree and not ctx.settings(worktree).capture:
        return
    # An agent commit may be waiting for exactly this message (its hold): it takes the message.
    # A Claude Code commit waits for a tool call in it instead (its message came later).
    held = statedb.held_link_for_message(conn, rec.id, *rec.tool_use_ids)
    priced = ctx.prices.price(rec.provider, rec.model, rec.tokens, rec.time, rec.cost if rec.cost_reported else None)
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
        priced.list_cost_micro,
        priced.source,
        priced.snapshot,
        rec.cost_reported,
        rec.coding_agent,
    )
    if not statedb.insert_message(conn, values):
        ctx.result.duplicates += 1
        return
    ctx.result.messages += 1
    statedb.record_tool_uses(conn, rec.id, rec.tool_use_ids)
    if rec.session_id:
        statedb.ensure_session(conn, rec.session_id)
    # Built from the stored row, so the event carries exactly what a rebuild would read back.
    msg = statedb.message(conn, rec.id)
    assert msg is not None
    session = statedb.sessions_by_id(conn, [msg["session_id"]]).get(msg["session_id"])
    outbox.enqueue(conn, events.message_event(msg, session, ctx.repo_url if worktree else None))
    if held is not None:
        if held["agent_message_id"] != rec.id:  # it waited for a tool call: now its message is known
            statedb.set_link_agent_message(conn, held["id"], rec.id)
            held = statedb.link(conn, held["id"])
        emit_link(ctx, held, note=None)
