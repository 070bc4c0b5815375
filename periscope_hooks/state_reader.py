"""How the read commands (`report`, `status`) get at the state: fresh when they can, never failing
on a damaged or a read-only state.db.

- Normally: open, ingest the spool, read.
- A query meets a damaged page: the database is moved aside and rebuilt from the spool at once
  (the spool is the source of truth), and the read runs again on the rebuilt copy.
- The state folder cannot be written: the database is opened read-only (immutable if need be),
  nothing is ingested or written, and the caller is told so.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable, TypeVar

from periscope_hooks.state import is_corrupt, is_read_only, open_state_db, open_state_db_read_only

T = TypeVar("T")
READ_ONLY_NOTE = "the state folder is read-only: showing what was ingested before (nothing new ingested)"


def _fresh(state_dir: Path, read: Callable[[sqlite3.Connection], T]) -> T:
    from periscope_hooks.ingest import process_spool

    for rebuild in (False, True):
        conn = open_state_db(state_dir, rebuild=rebuild)
        try:
            process_spool(state_dir, conn)
            return read(conn)
        except sqlite3.DatabaseError as e:
            if rebuild or not is_corrupt(e):
                raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def read_state(state_dir: Path, read: Callable[[sqlite3.Connection], T]) -> tuple[T, str | None]:
    """(what `read` returns, a note for the user or None)."""
    try:
        return _fresh(state_dir, read), None
    except (sqlite3.OperationalError, OSError) as e:
        if not is_read_only(e, state_dir):
            raise
    conn = open_state_db_read_only(state_dir)
    try:
        return read(conn), READ_ONLY_NOTE
    finally:
        conn.close()
