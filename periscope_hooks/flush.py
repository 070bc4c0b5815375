"""Process a repository's spool and deliver its outbox: what `periscope flush` does.

Only one flusher runs per repository (an flock on flush.lock).  A background
flusher that finds the lock taken exits at once; the running one re-checks the
spool after releasing the lock (a background one flushes again, a foreground one
starts a background flusher), so a record appended meanwhile is never left
waiting for the next commit.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

from periscope_hooks import logfile, outbox, paths, repo_registry
from periscope_hooks.agents.recovery import recover_sessions
from periscope_hooks.delivery import DeliveryResult, deliver
from periscope_hooks.errors import UserError
from periscope_hooks.filelock import FileLock
from periscope_hooks.ingest import process_spool
from periscope_hooks.ingest.queue import StoreNow
from periscope_hooks.ingest.spool_reader import unread
from periscope_hooks.local_store_refill import note_the_store, store_everything_again_if_new
from periscope_hooks.state import (
    is_corrupt,
    make_state_dir,
    mark_for_integrity_check,
    open_state_db,
    reclaim_space,
    run_rebuilding_once,
)
from periscope_hooks.state_reader import announce_long_ingest
from periscope_hooks.statedb import Meta, set_meta

LOCK_NAME = "flush.lock"


class StateFolderNotWritable(UserError):
    """The state folder cannot be written, so nothing can be flushed from it (`export` then
    prints what the local store holds)."""


Retrying = Callable[[str, float], None]  # delivery.deliver's `retrying`: (the error, seconds left)


def _work_left(state_dir: Path) -> bool:
    """Cheap check (no database write lock): is there spool data past the stored offset?"""
    conn = open_state_db(state_dir)
    try:
        return unread(conn, str(state_dir / paths.SPOOL_NAME))
    finally:
        conn.close()


def _config_error(conn: sqlite3.Connection, state_dir: Path, message: str) -> DeliveryResult:
    """A broken config or tuning variable keeps every event in the outbox until it is fixed."""
    set_meta(conn, Meta.LAST_DELIVERY_ERROR, message)
    logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"flush: {message}")
    return DeliveryResult(error=message)


def _ingest(
    state_dir: Path,
    conn: sqlite3.Connection,
    after_batch: Callable[[], None] | None = None,
    store_now: StoreNow | None = None,
) -> None:
    process_spool(state_dir, conn, after_batch=after_batch, store_now=store_now)
    if recover_sessions(conn):  # an agent's hooks never ran: its messages, from its own log
        process_spool(state_dir, conn, after_batch=after_batch, store_now=store_now)
    from periscope_hooks.reconcile import refresh

    refresh(conn, state_dir)  # after a pull or a hook-less rewrite: usage follows the code


def _ingest_and_deliver(
    state_dir: Path,
    conn: sqlite3.Connection,
    *,
    drain: bool,
    retrying: Retrying | None = None,
    on_refill: Callable[[int], None] | None = None,
) -> DeliveryResult:
    """Ingest the spool, delivering after each batch while the sink takes them (so a long spool
    never piles up in the outbox), then deliver the rest within the budget, and hand the pages
    of delivered rows back."""
    from periscope_hooks import envvars
    from periscope_hooks.config import load_user_config
    from periscope_hooks.errors import UserError
    from periscope_hooks.sinks import get_sink

    try:
        load_user_config()
        sink = get_sink()
        # The budget is the whole flush's: delivery between batches, the store's waits and the
        # delivery after ingest share it (a flush against a locked store ran to 3x its budget).
        deadline = time.monotonic() + envvars.seconds("PERISCOPE_FLUSH_BUDGET")
        wait_until = getattr(sink, "wait_until", None)
        if wait_until is not None:
            wait_until(deadline)
    except UserError as e:
        _ingest(state_dir, conn)
        return _config_error(conn, state_dir, e.message)
    result = DeliveryResult()
    try:
        healthy = True

        def deliver_batch() -> None:
            nonlocal healthy
            if healthy:
                # No waiting here: at the first failure interleaved delivery stops, and the run
                # below retries within the budget.
                step = deliver(conn, sink, budget_seconds=0, drain=True)
                result.add(step)
                healthy = step.error is None

        # A sink that can take events as ingest creates them (the local store) skips the outbox,
        # once the outbox holds nothing older: events a `report` or `status` ingested wait there,
        # and stored after the newer ones a commit event came after the rewrite that replaces it
        # (a receiver applying rewrites in order kept the usage on the old commit), in an order no
        # rebuild makes.
        note_the_store(state_dir, conn, sink)  # the local store this state.db's events go into
        store_now = getattr(sink, "store_now", None)
        if store_now is not None and outbox.depth(conn):
            deliver_batch()
            if outbox.depth(conn):
                store_now = None  # still waiting (the store is busy, say): everything goes in order
        _ingest(state_dir, conn, after_batch=deliver_batch, store_now=store_now)
        left = max(0.0, deadline - time.monotonic())
        result.add(deliver(conn, sink, budget_seconds=left, drain=drain, retrying=retrying))
        if result.error is None:  # a store locked or unwritable now: the spool is read again once it is not
            store_everything_again_if_new(state_dir, conn, sink, on_refill)  # a store made anew gets them all
    except UserError as e:  # a bad tuning variable: same as a broken config
        return _config_error(conn, state_dir, e.message)
    finally:
        sink.close()
    try:
        reclaim_space(conn)
    except sqlite3.OperationalError as e:  # busy: the next flush frees them
        logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"flush: could not reclaim free pages: {e}")
    return result


def flush_state_dir(
    state_dir: Path,
    *,
    wait: bool = True,
    lock_timeout: float = 60.0,
    retrying: Retrying | None = None,
    on_long_ingest: Callable[[int], None] | None = None,
    on_refill: Callable[[int], None] | None = None,
) -> DeliveryResult | None:
    """Ingest and deliver.  Returns None when another flusher holds the lock (and `wait` is False).
    `wait` (a foreground flush) also drains: delivery goes on while batches go through.
    `retrying`: delivery.deliver's, told when delivery failed and waits to try again.
    `on_long_ingest(unread bytes)`: told once, before a long ingest (as the read commands say it).
    `on_refill(spool bytes)`: told before this repository's events are stored again in a local
    store made anew (local_store_refill.py)."""
    make_state_dir(state_dir)
    if state_dir != paths.no_repo_state_dir():  # `dashboard --all-repos` adds that one on its own
        repo_registry.remember(repo_registry.label_for(state_dir), state_dir)
    try:
        lock = FileLock(state_dir / LOCK_NAME)
    except OSError as e:  # a read-only folder, say: the flush cannot keep anything there
        raise StateFolderNotWritable(
            f"cannot write {state_dir / LOCK_NAME} ({e.strerror or type(e).__name__})",
            "periscope flush keeps its state in that folder, which must be writable (report, status, dashboard"
            " and export read it as it is)",
        ) from None
    result: DeliveryResult | None = None

    def flush_once(conn: sqlite3.Connection) -> DeliveryResult:
        nonlocal on_long_ingest
        outbox.release_dead_flushers_leases(conn)  # we hold flush.lock: no flusher else lives
        if announce_long_ingest(conn, state_dir, on_long_ingest):
            on_long_ingest = None  # once, a rebuild's re-read included
        done = _ingest_and_deliver(state_dir, conn, drain=wait, retrying=retrying, on_refill=on_refill)
        if done.error:  # one line, never a payload or token (errors are built to be shown)
            logfile.log_line(
                state_dir / paths.HOOK_LOG_NAME, f"flush: delivery incomplete: {done.error}; events stay in the outbox"
            )
        return done

    def say_damaged(e: sqlite3.DatabaseError) -> None:
        mark_for_integrity_check(state_dir)
        logfile.log_line(
            state_dir / paths.HOOK_LOG_NAME,
            f"flush: state.db is damaged ({e}); moving it aside and rebuilding it from the spool",
        )

    try:
        while True:
            if not lock.acquire(lock_timeout if wait else 0):
                return result
            try:
                result = run_rebuilding_once(state_dir, flush_once, on_damage=say_damaged)
            except sqlite3.DatabaseError as e:
                if is_corrupt(e):  # again, after the rebuild
                    mark_for_integrity_check(state_dir)  # the next open checks, and rebuilds from the spool
                raise
            finally:
                lock.release()
            if not _work_left(state_dir):
                return result
            if wait:
                # Records came while this foreground flush held the lock (a commit meanwhile: its
                # flusher found the lock taken and left, counting on us to look again).  A flusher
                # in the background takes them, and this flush ends within its budget, as it says
                # (they waited for the next commit or message; found by a chaos sweep).
                from periscope_hooks.hook import spawn_background_flush

                try:
                    spawn_background_flush(str(state_dir))
                except OSError as e:  # what this flush did stands; the records wait in the spool
                    logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"flush: could not start a flusher: {e}")
                return result
    finally:
        lock.close()


def backlog(state_dir: Path, result: DeliveryResult) -> tuple[int, str]:
    """(events left in the outbox, why they are) after a flush: the foreground flush says both."""
    from periscope_hooks.state import now_ms

    conn = open_state_db(state_dir)
    try:
        left = outbox.depth(conn)
        if not left:
            return 0, ""
        leased, backed_off, due = outbox.waiting_summary(conn, now_ms())
    finally:
        conn.close()
    reasons = []
    if result.error:
        reasons.append(f"delivery failed: {result.error}")
    elif result.out_of_time:
        reasons.append("the flush budget (PERISCOPE_FLUSH_BUDGET) ran out")
    if leased:
        reasons.append(f"{leased} leased by another flusher (sent again when its lease ends)")
    if backed_off and due is not None:
        reasons.append(f"{backed_off} backed off until {time.strftime('%H:%M:%S', time.localtime(due / 1000))}")
    return left, "; ".join(reasons) or "not due yet"


def background_child(state_dir: str) -> int:
    """Entry of the detached flusher that the hook and `flush --background` start."""
    from periscope_hooks.hook import inherited_fds

    # The sh hook's spawn closes descriptors 3-9 only (sh names no others): any other one git's
    # caller passed on is closed here, before the flush, so that nobody waits on it for the flush.
    for fd in inherited_fds():
        os.close(fd)
    path = Path(state_dir)
    if not path.is_dir():
        # The repository moved (or went) between the hook and this start, which a loaded machine
        # can delay by seconds: creating the old path again would make the moved worktree look
        # present, and its pending usage would never follow it.  Nothing to flush here anyway.
        return 0
    try:
        os.nice(10)  # yield the CPU to whatever the user runs next (often another git command)
    except OSError:
        pass
    try:
        flush_state_dir(path, wait=False)
    except BaseException as e:
        logfile.log_line(path / paths.HOOK_LOG_NAME, "background flush failed; events stay in the outbox", exc=e)
    return 0
