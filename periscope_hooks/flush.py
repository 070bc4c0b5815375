"""Process a repository's spool and deliver its outbox: what `periscope flush` does.

Only one flusher runs per repository (an flock on flush.lock).  A background
flusher that finds the lock taken exits at once; the running one re-checks the
spool after releasing the lock, so a record appended meanwhile is never left
waiting for the next commit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from pathlib import Path

from periscope_hooks import logfile, paths
from periscope_hooks.agents.recovery import recover_sessions
from periscope_hooks.delivery import DeliveryResult, deliver
from periscope_hooks.ingest import process_spool
from periscope_hooks.state import get_meta, is_corrupt, mark_for_integrity_check, open_state_db, set_meta
from periscope_hooks.statedb import Meta

LOCK_NAME = "flush.lock"


class _Lock:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(str(state_dir / LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def _work_left(state_dir: Path) -> bool:
    """Cheap check (no database write lock): is there spool data past the stored offset?"""
    try:
        size = os.path.getsize(state_dir / paths.SPOOL_NAME)
    except OSError:
        return False
    conn = open_state_db(state_dir)
    try:
        return size > int(get_meta(conn, Meta.SPOOL_OFFSET, "0") or 0)
    finally:
        conn.close()


def flush_state_dir(state_dir: Path, *, wait: bool = True, lock_timeout: float = 60.0) -> DeliveryResult | None:
    """Ingest and deliver.  Returns None when another flusher holds the lock (and `wait` is False)."""
    from periscope_hooks.config import load_user_config
    from periscope_hooks.errors import UserError
    from periscope_hooks.sinks import get_sink

    lock = _Lock(state_dir)
    result: DeliveryResult | None = None
    try:
        while True:
            if not lock.acquire(lock_timeout if wait else 0):
                return result
            try:
                conn = open_state_db(state_dir)
                try:
                    process_spool(state_dir, conn)
                    if recover_sessions(conn):  # an agent's hooks never ran: its messages, from its own log
                        process_spool(state_dir, conn)
                    from periscope_hooks.reconcile import refresh

                    refresh(conn, state_dir)  # after a pull or a hook-less rewrite: usage follows the code
                    try:
                        load_user_config()
                        sink = get_sink()
                    except UserError as e:
                        # A broken config keeps every event in the outbox until it is fixed.
                        set_meta(conn, Meta.LAST_DELIVERY_ERROR, e.message)
                        logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"flush: {e.message}")
                        return DeliveryResult(error=e.message)
                    try:
                        result = deliver(conn, sink)
                    except UserError as e:  # a bad tuning variable: same as a broken config
                        set_meta(conn, Meta.LAST_DELIVERY_ERROR, e.message)
                        logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"flush: {e.message}")
                        return DeliveryResult(error=e.message)
                    finally:
                        sink.close()
                    if result.error:  # one line, never a payload or token (errors are built to be shown)
                        logfile.log_line(
                            state_dir / paths.HOOK_LOG_NAME,
                            f"flush: delivery incomplete: {result.error}; events stay in the outbox",
                        )
                except sqlite3.DatabaseError as e:
                    if is_corrupt(e):
                        mark_for_integrity_check(state_dir)  # the next open checks, and rebuilds from the spool
                    raise
                finally:
                    conn.close()
            finally:
                lock.release()
            if wait or not _work_left(state_dir):
                return result
    finally:
        lock.close()


def background_child(state_dir: str) -> int:
    """Entry of the detached flusher that the hook and `flush --background` start."""
    path = Path(state_dir)
    try:
        os.nice(10)  # yield the CPU to whatever the user runs next (often another git command)
    except OSError:
        pass
    try:
        flush_state_dir(path, wait=False)
    except BaseException as e:
        logfile.log_line(path / paths.HOOK_LOG_NAME, "background flush failed; events stay in the outbox", exc=e)
    return 0
