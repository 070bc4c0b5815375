"""One ingest run: spool batches in, records applied in spool order, expired holds recorded."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Union

from periscope_hooks import statedb
from periscope_hooks.ingest import records, rules
from periscope_hooks.ingest.bulk import Run
from periscope_hooks.ingest.commits import apply_commit, apply_rewrite, lookup_parents, recorded_parents
from periscope_hooks.ingest.context import IngestContext, IngestResult
from periscope_hooks.ingest.holds import apply_hold_expired, record_expired_holds
from periscope_hooks.ingest.messages import apply_message
from periscope_hooks.ingest.notes_sync import write_pending_notes
from periscope_hooks.ingest.old_prices import price_old_messages
from periscope_hooks.ingest.queue import StoreNow
from periscope_hooks.ingest.reconciled import apply_reconcile, apply_reconcile_seen
from periscope_hooks.ingest.sessions import apply_session
from periscope_hooks.ingest.spool_reader import BATCH_BYTES, parse_line, read_batch, store_position
from periscope_hooks.ingest.worktrees import apply_worktree_moved
from periscope_hooks.ingest.worktrees import record_moves as record_worktree_moves
from periscope_hooks.state import open_state_db, transaction

Parsed = Union[records.Record, Exception, None]


def _skip(ctx: IngestContext, where: str, log_line: str) -> None:
    ctx.result.skipped += 1
    statedb.count_skipped_line(ctx.conn, where)
    ctx.log(log_line)


def _parse(ctx: IngestContext, line_offset: int, raw: bytes) -> tuple[dict[str, Any] | None, Parsed]:
    rec, garbage = parse_line(raw)
    if garbage:
        # Offset and length only: a garbage line could hold anything.
        _skip(
            ctx,
            f"byte {line_offset} ({len(raw)} bytes)",
            f"spool: skipped a malformed line at byte {line_offset} ({len(raw)} bytes)",
        )
    if rec is None:
        return None, None
    ctx.result.records += 1
    try:
        return rec, records.parse(rec)
    except records.INVALID as e:
        return rec, e


def _apply(
    ctx: IngestContext, line_offset: int, raw: bytes, rec: dict[str, Any], parsed: Parsed, parents: dict[str, list[str]]
) -> None:
    try:
        if isinstance(parsed, Exception):
            raise parsed
        if isinstance(parsed, records.Message):
            apply_message(ctx, parsed, line_offset)
        elif isinstance(parsed, records.Session):
            apply_session(ctx, parsed)
        elif isinstance(parsed, records.Commit):
            apply_commit(ctx, parsed, parents)
        elif isinstance(parsed, records.Rewrite):
            apply_rewrite(ctx, parsed)
        elif isinstance(parsed, records.HoldExpired):
            apply_hold_expired(ctx, parsed)
        elif isinstance(parsed, records.WorktreeMoved):
            apply_worktree_moved(ctx, parsed)
        elif isinstance(parsed, records.Reconcile):
            apply_reconcile(ctx, parsed)
        elif isinstance(parsed, records.ReconcileSeen):
            apply_reconcile_seen(ctx, parsed)
        elif isinstance(parsed, records.Deferred):
            statedb.defer_record(ctx.conn, line_offset, parsed.version, raw.decode("utf-8", "replace"))
            ctx.result.deferred += 1
    except records.INVALID as e:
        kind = rec.get("kind")
        _skip(
            ctx,
            f"byte {line_offset}: {type(e).__name__}",
            f"spool: skipped an invalid {kind} record at byte {line_offset}: {type(e).__name__}: {e}",
        )


def _needs_parents(rec: Parsed) -> bool:
    return (
        isinstance(rec, records.Commit)
        and rec.sha is not None
        and recorded_parents(rec) is None
        and not (rec.hook == "post-merge" and rec.squash)
        and rules.base_kind(rec.hook, rec.subject, rec.rebasing) is not None
    )


def ingest_batch(ctx: IngestContext) -> bool:
    """Apply one batch of complete spool lines in one transaction; False when none were left."""
    with transaction(ctx.conn):
        batch = read_batch(ctx.conn, ctx.spool_path, ctx.log, ctx.batch_bytes)
        if batch is None:
            return False
        ctx.start_batch()
        parsed = [(offset, raw, *_parse(ctx, offset, raw)) for offset, raw in batch.lines]
        parents = lookup_parents(
            ctx, [p.sha for _, _, _, p in parsed if isinstance(p, records.Commit) and p.sha and _needs_parents(p)]
        )

        def apply_one(offset: int, raw: bytes, rec: dict[str, Any], record: Parsed) -> None:
            _apply(ctx, offset, raw, rec, record, parents)

        run = Run(ctx, parents)  # consecutive messages and plain commits, applied together (bulk.py)
        for offset, raw, rec, record in parsed:
            if rec is None:
                continue
            if (isinstance(record, records.Message) and run.takes_message(record)) or (
                isinstance(record, records.Commit) and run.takes_commit(record)
            ):
                run.add((offset, raw, rec, record))
                continue
            run.apply(apply_one)
            _apply(ctx, offset, raw, rec, record, parents)
        run.apply(apply_one)
        ctx.events.write()
        store_position(ctx.conn, batch)
    return True


@contextlib.contextmanager
def _cyclic_gc_per_batch() -> Iterator[None]:
    """Python's cyclic collector off while batches are applied, and run once after each.

    A batch holds ~13,500 parsed records (dicts, typed records, rows) alive at once; allocating
    them set off a young collection every 700 objects, each walking the batch built so far: 30 %
    of a first ingest's CPU (100k messages: 5.33 -> 3.74 s with the collector off).  Ingest makes
    no reference cycles of its own; the collection after each batch still frees any it meets, so
    memory stays bounded by a batch."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _drain(ctx: IngestContext, after_batch: Callable[[], None] | None) -> None:
    with _cyclic_gc_per_batch():
        while ingest_batch(ctx):
            gc.collect(1)
            write_pending_notes(ctx)
            if after_batch is not None:
                after_batch()


def process_spool(
    state_dir: Path,
    conn: sqlite3.Connection | None = None,
    *,
    after_batch: Callable[[], None] | None = None,
    store_now: StoreNow | None = None,
    batch_bytes: int = BATCH_BYTES,
    write_notes: bool = True,
    logs: bool = True,
) -> IngestResult:
    """Ingest everything the spool holds, link it, and record (then apply) expired agent-commit holds.
    `after_batch` runs after each committed batch (the flusher delivers there, so the outbox never
    holds more than about one batch of a long spool).  `store_now`: a sink that takes each batch's
    events before the batch commits (the local store; ingest/queue.py), instead of the outbox.
    `batch_bytes`: spool bytes per batch (per transaction).  `write_notes=False`: no git notes
    (a temporary state.db read from the spool: state_reader.py).  `logs=False`: nothing logged
    (a second read of a spool whose skips were logged: local_store_refill.py)."""
    own = conn is None
    conn = conn or open_state_db(state_dir)
    try:
        ctx = IngestContext(
            conn, state_dir, store_now=store_now, batch_bytes=batch_bytes, write_notes=write_notes, logs=logs
        )
        price_old_messages(ctx)  # before any event is made from them (once per state.db)
        _drain(ctx, after_batch)
        # Decisions made from the clock and the live repository are recorded in the spool first,
        # then applied like any record: a rebuild meets them at the same place.
        if record_worktree_moves(ctx) + record_expired_holds(ctx):
            _drain(ctx, after_batch)
        write_pending_notes(ctx)
        _roll_up_reports(conn)
        return ctx.result
    finally:
        if own:
            conn.close()


def _roll_up_reports(conn: sqlite3.Connection) -> None:
    """Keep the reports' rollups in step with what was ingested (statedb.roll_up_reports): a
    report then sums a few thousand rows instead of grouping every message."""
    if statedb.reports_behind(conn):
        with transaction(conn):
            statedb.roll_up_reports(conn)
