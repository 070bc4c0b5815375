"""How the read commands (`report`, `status`) get at the state: fresh when they can, never failing
on a damaged or a read-only state.db.

- Normally: open, ingest the spool, read.
- A query meets a damaged page: the database is moved aside and rebuilt from the spool at once
  (the spool is the source of truth), and the read runs again on the rebuilt copy.
- The state folder cannot be written: the database is opened read-only (immutable if need be),
  nothing is ingested or written, and the caller is told so.  With no state.db there that reads
  (none yet, or a damaged one nobody may move aside), the spool is read into a temporary one
  instead, which is deleted afterwards: the report shows every record, and says how it was made.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, TypeVar

from periscope_hooks.state import (
    is_corrupt,
    is_read_only,
    open_state_db,
    open_state_db_read_only,
    run_rebuilding_once,
)

T = TypeVar("T")
READ_ONLY_NOTE = "the state folder is read-only: showing what was ingested before (nothing new ingested)"
FROM_SPOOL_NOTE = (
    "{folder} cannot be written and holds no state.db that reads: showing the spool, read into a"
    " temporary copy (nothing saved); make the folder writable by you to keep it"
)
READ_ONLY_FILES_NOTE = (
    "{folder}: state.db (or its -wal or -shm file) cannot be written: showing what was ingested before"
    " (nothing new ingested); make them writable by you, or delete state.db* (it is rebuilt from the spool)"
)


def read_only_note(state_dir: Path) -> str:
    """What the user is told when state.db could not be written: the folder, or files in it."""
    import os

    if os.access(state_dir, os.W_OK):
        return READ_ONLY_FILES_NOTE.format(folder=state_dir)
    return READ_ONLY_NOTE


# Unread spool past which a read command says it ingests first: ~25,000 records, a second or two
# (a first ingest of a long history, 1M messages, took 70-80 s here: silence that long looks hung).
LONG_INGEST_BYTES = 8 << 20


def announce_long_ingest(
    conn: sqlite3.Connection, state_dir: Path, on_long_ingest: Callable[[int], None] | None
) -> bool:
    """Call `on_long_ingest(unread bytes)` when LONG_INGEST_BYTES or more wait in the spool; whether it did."""
    from periscope_hooks import paths
    from periscope_hooks.ingest.spool_reader import unread_bytes

    if on_long_ingest is None:
        return False
    backlog = unread_bytes(conn, str(state_dir / paths.SPOOL_NAME))
    if backlog < LONG_INGEST_BYTES:
        return False
    on_long_ingest(backlog)
    return True


def _fresh(state_dir: Path, read: Callable[[sqlite3.Connection], T], on_long_ingest: Callable[[int], None] | None) -> T:
    from periscope_hooks.ingest import process_spool

    def ingest_and_read(conn: sqlite3.Connection) -> T:
        nonlocal on_long_ingest
        if announce_long_ingest(conn, state_dir, on_long_ingest):
            on_long_ingest = None  # once, a rebuild's re-read included
        process_spool(state_dir, conn)
        return read(conn)

    return run_rebuilding_once(state_dir, ingest_and_read)


def read_state(
    state_dir: Path, read: Callable[[sqlite3.Connection], T], on_long_ingest: Callable[[int], None] | None = None
) -> tuple[T, str | None]:
    """(what `read` returns, a note for the user or None).  `on_long_ingest(unread bytes)` is
    called first when the spool holds LONG_INGEST_BYTES or more not ingested yet."""
    try:
        return _fresh(state_dir, read, on_long_ingest), None
    except (sqlite3.OperationalError, OSError) as e:
        if not is_read_only(e, state_dir):
            raise
    conn = open_state_db_read_only(state_dir)
    if conn is not None:
        try:
            return read(conn), read_only_note(state_dir)
        except sqlite3.DatabaseError as e:
            if not is_corrupt(e):
                raise
        finally:
            conn.close()
    return _from_spool(state_dir, read, on_long_ingest), FROM_SPOOL_NOTE.format(folder=state_dir)


def _from_spool(
    state_dir: Path, read: Callable[[sqlite3.Connection], T], on_long_ingest: Callable[[int], None] | None
) -> T:
    """`read` of the spool ingested into a temporary state.db (the source of truth, read afresh);
    nothing is written beside the spool but what any ingest appends to it (expired holds, moves)."""
    import tempfile

    from periscope_hooks.ingest import process_spool

    with tempfile.TemporaryDirectory(prefix="periscope-read-") as tmp:
        conn = open_state_db(Path(tmp))
        try:
            announce_long_ingest(conn, state_dir, on_long_ingest)
            process_spool(state_dir, conn, write_notes=False)
            return read(conn)
        finally:
            conn.close()
