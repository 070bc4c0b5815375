"""Agent commits waiting for their in-flight message, and the decision that one stops waiting.

The decision is made on the clock, so it is recorded: the flusher appends a `hold-expired`
record to the spool, and only that record (applied in spool order like any other) emits the
commit without its message.  A rebuild from the spool then meets the record at the same point
and decides the same: a message that arrived after it waits for the next commit, as it did.
"""

from __future__ import annotations

from periscope_hooks import spool, statedb
from periscope_hooks.ingest.commits import emit_link
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import HoldExpired, hold_expired_line
from periscope_hooks.state import now_ms


def record_expired_holds(ctx: IngestContext, now: int | None = None) -> int:
    """Append a `hold-expired` record for every hold past its time; the next ingest applies them.
    Returns how many were recorded (0 when the spool cannot be written: the holds then wait)."""
    now = now_ms() if now is None else now
    rows = statedb.expired_holds(ctx.conn, now)
    recorded = 0
    for link in rows:
        try:
            spool.append(
                ctx.spool_path,
                hold_expired_line(link["worktree"] or "", link["sha"], link["kind"], link["agent_message_id"], now),
            )
            recorded += 1
        except OSError as e:
            ctx.log(f"could not record an expired hold for {link['sha'][:12]} ({e}); it keeps waiting")
            break
    return recorded


def apply_hold_expired(ctx: IngestContext, rec: HoldExpired) -> None:
    link = statedb.held_link(ctx.conn, rec.sha, rec.commit_kind, rec.worktree)
    if link is None:
        return  # its message arrived first (or this record was applied before)
    ctx.held_message_ids().discard(link["agent_message_id"])
    emit_link(
        ctx,
        link,
        note=f"in-flight message {link['agent_message_id']} was not recorded in time; emitted without it",
    )
