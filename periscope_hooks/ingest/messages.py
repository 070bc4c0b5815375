"""Message records: store each assistant message once and queue its event.

apply_message() stores one; runs of messages and plain commits go through ingest/bulk.py, which
takes its rows from message_row() and leaves this path the rare messages a run cannot take (one
an agent commit is held for, or a run holding a message stored before).
"""

from __future__ import annotations

from typing import Any

from periscope_hooks import events, statedb
from periscope_hooks.ingest.commits import emit_link
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Message
from periscope_hooks.ingest.worktrees import learn


def message_row(
    ctx: IngestContext, rec: Message, worktree: str | None, line_offset: int, held_link: int | None
) -> tuple[Any, ...]:
    """The message's values in statedb.MESSAGE_COLUMNS order, priced."""
    priced = ctx.prices.price(
        rec.provider,
        rec.model,
        rec.tokens,
        rec.time,
        rec.cost if rec.cost_reported else None,
        rec.cache_write_1h,
        rec.web_searches,
        rec.speed,
    )
    return (
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
        held_link,
        priced.list_cost_micro,
        priced.source,
        priced.snapshot,
        rec.cost_reported,
        rec.coding_agent,
        rec.cache_write_1h,
        rec.web_searches,
        rec.speed,
    )


def apply_message(ctx: IngestContext, rec: Message, line_offset: int) -> None:
    conn = ctx.conn
    worktree = ctx.worktree_of(rec.cwd)
    if worktree and not ctx.settings(worktree).capture:
        return
    learn(ctx, worktree)
    # An agent commit may be waiting for exactly this message (its hold): it takes the message.
    # A Claude Code commit waits for a tool call in it instead (its message came later).
    # The keys held links wait for are read once per batch: no query per message.
    waiting = ctx.held_message_ids()
    held = (
        statedb.held_link_for_message(conn, rec.id, *rec.tool_use_ids)
        if waiting and (rec.id in waiting or any(t in waiting for t in rec.tool_use_ids))
        else None
    )
    values = message_row(ctx, rec, worktree, line_offset, held["id"] if held is not None else None)
    if not statedb.insert_message(conn, values):
        ctx.result.duplicates += 1
        return
    ctx.result.messages += 1
    if rec.tool_use_ids:
        statedb.record_tool_uses(conn, rec.id, rec.tool_use_ids)
    if rec.session_id and ctx.session(rec.session_id) is None:
        statedb.ensure_session(conn, rec.session_id)
        ctx.forget_session(rec.session_id)
    # The event is built from the values just stored (a rebuild stores and reads the same), not
    # from a re-read row: one query less per message.
    msg = dict(zip(statedb.MESSAGE_COLUMNS, values))
    session = ctx.session(rec.session_id)
    # A message's event id follows from its id, and the message was new: no need to check
    # emitted_events (a B-tree insert per message) for it.
    ctx.events.add(events.message_event(msg, session, ctx.repo_url if worktree else None), new=True)
    if held is not None:
        waiting.discard(held["agent_message_id"])
        if held["agent_message_id"] != rec.id:  # it waited for a tool call: now its message is known
            statedb.set_link_agent_message(conn, held["id"], rec.id)
            held = statedb.link(conn, held["id"])
        emit_link(ctx, held, note=None)
