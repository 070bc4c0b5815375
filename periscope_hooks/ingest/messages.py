"""Message records: store each assistant message once and queue its event.

apply_messages() takes a run of consecutive messages in bulk (one INSERT statement for all of
them, their events written straight to JSON, one outbox INSERT): the first ingest of a long
history is almost all messages, and a statement or two per message was most of its cost.
apply_message() is the same for one message, and the path for the rare ones bulk leaves out
(one an agent commit is held for, or a run holding a message stored before).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from periscope_hooks import events, statedb
from periscope_hooks.ingest.commits import emit_link
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Message
from periscope_hooks.ingest.worktrees import learn


def _row(
    ctx: IngestContext, rec: Message, worktree: str | None, line_offset: int, held_link: int | None
) -> tuple[Any, ...]:
    """The message's values in statedb.MESSAGE_COLUMNS order, priced."""
    priced = ctx.prices.price(rec.provider, rec.model, rec.tokens, rec.time, rec.cost if rec.cost_reported else None)
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
    values = _row(ctx, rec, worktree, line_offset, held["id"] if held is not None else None)
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


def bulk_ready(ctx: IngestContext, rec: Message) -> bool:
    """Can this message go with the run around it?  Not when an agent commit waits for it (or for
    a tool call in it): that links and emits the commit right after the message."""
    waiting = ctx.held_message_ids()
    return not waiting or (rec.id not in waiting and not any(t in waiting for t in rec.tool_use_ids))


class _NotAllNew(Exception):
    """A run held a message stored before (a re-read spool, a rebuild): applied one by one."""


def apply_messages(ctx: IngestContext, run: Sequence[tuple[int, Message]]) -> bool:
    """Store a run of messages (all bulk_ready) and queue their events, exactly as apply_message()
    on each in turn would.  False (nothing changed): the run must be applied one by one, because
    one of them was stored before or a value could not be stored."""
    conn = ctx.conn
    rows: list[tuple[Any, ...]] = []
    for line_offset, rec in run:
        worktree = ctx.worktree_of(rec.cwd)
        if worktree and not ctx.settings(worktree).capture:
            continue
        learn(ctx, worktree)  # before the savepoint: kept when the run falls back
        rows.append(_row(ctx, rec, worktree, line_offset, None))
    if not rows:
        return True
    conn.execute("SAVEPOINT ingest_messages")
    try:
        if statedb.insert_messages(conn, rows) != len(rows):
            raise _NotAllNew
        tool_uses = [(t, rec.id) for _, rec in run for t in rec.tool_use_ids]
        if tool_uses:
            statedb.record_tool_uses_of(conn, tool_uses)
        unknown = {row[1] for row in rows if row[1] and ctx.session(row[1]) is None}
        if unknown:
            statedb.ensure_sessions(conn, unknown)
            for sid in unknown:
                ctx.forget_session(sid)
        repo_url = ctx.repo_url
        written = [
            events.message_event_json(
                r[0],
                r[1],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7:12],
                r[12],
                r[13],
                r[14],
                r[17],
                r[18],
                r[19],
                r[21],
                ctx.session(r[1]),
                repo_url if r[2] else None,
            )  # fmt: skip
            for r in rows
        ]
    except (_NotAllNew, sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError):
        conn.execute("ROLLBACK TO ingest_messages")
        conn.execute("RELEASE ingest_messages")
        for sid in {row[1] for row in rows}:
            ctx.forget_session(sid)
        return False
    conn.execute("RELEASE ingest_messages")
    ctx.events.add_written("message", written)
    ctx.result.messages += len(rows)
    return True
