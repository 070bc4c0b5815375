"""Session records: titles, parents and agents of the sessions that messages belong to."""

from __future__ import annotations

from periscope_hooks import statedb
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Session


def apply_session(ctx: IngestContext, rec: Session) -> None:
    statedb.upsert_session(ctx.conn, rec.id, rec.title, rec.parent_id, rec.agent, rec.time, rec.coding_agent)
    ctx.forget_session(rec.id)
    ctx.result.sessions += 1
