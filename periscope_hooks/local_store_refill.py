"""A new local store gets every event again: nothing stays only in a damaged copy.

The local store (events.db) is shared by every repository and is not a cache: once it took an
event, the event's body left state.db's outbox.  When the store is made anew (a damaged one moved
aside, or the file deleted), the events it held are in no store.  Each store has a generation
(sinks/local.py, l004), and each state.db remembers, per store path, the one its events went
into (Meta.LOCAL_STORE_GENERATION), noted before a flush stores anything.  A flush that finds
another one at a known path reads the repository's spool into a temporary state.db and stores
every event that makes, byte for byte the events the real one made (a rebuild's invariant), which
the store keeps once each; the real state.db, its books and its outbox are not touched.  The new
generation is remembered only once everything went in: a flush killed or a store locked half way
stores everything again next time.  A store at a path this
state.db never delivered to (flushes run with another XDG_DATA_HOME) is only noted: what went to
the other store stays there, and flushes from both would otherwise refill each in turn.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from periscope_hooks import logfile, outbox, paths
from periscope_hooks.statedb import Meta, get_meta, set_meta

if TYPE_CHECKING:
    from periscope_hooks.sinks import Sink

REFILL_DIR = "refill"  # in the state folder: the temporary state.db a refill reads the spool into


def note_the_store(state_dir: Path, conn: sqlite3.Connection, sink: Sink) -> None:
    """Before a flush's ingest: the store this state.db's events go into from now on, when none
    at its path is known yet.  Noted before anything is stored, not after the flush: a first flush
    killed half way (a rebuild's) had put events into a store it never noted, and a store made
    anew then was taken for the one they all went into.  A refill killed half way leaves its
    folder, removed here (a rebuild since would never refill again)."""
    shutil.rmtree(state_dir / REFILL_DIR, ignore_errors=True)
    now = _generation_of(sink)
    if now is None:
        return
    store = str(getattr(sink, "path", ""))
    known = _generations(conn)
    if store in known:
        return
    # A state.db from before stores had generations that delivered events already, while a
    # damaged store lies moved aside: its events may be only there (the upgrade came after the
    # damage).  Stored again, once: at worst the store already holds them.
    from periscope_hooks.sinks.local import damaged_copies

    # Only a state.db that noted no store at all: one that noted others delivered there, not here.
    delivered = not known and any(c["delivered"] for c in outbox.counts(conn).values())
    known[store] = UNKNOWN if delivered and damaged_copies(Path(store)) else now
    _remember(conn, known)


def store_everything_again_if_new(
    state_dir: Path, conn: sqlite3.Connection, sink: Sink, announce: Callable[[int], None] | None = None
) -> None:
    """After a flush's own ingest and delivery: when the store at the noted path is another than
    the one noted (made anew), every event the spool makes is stored in it.
    `announce(spool bytes)`: told before the spool is read again (a foreground flush says so)."""
    now = _generation_of(sink)
    if now is None:
        return  # another sink, or a store that cannot be read just now: the next flush looks again
    store = str(getattr(sink, "path", ""))
    known = _generations(conn)
    before = known.get(store)
    if before == now:
        return
    if before is not None:  # None: note_the_store could not read the store before the ingest
        if announce is not None:
            try:
                announce(os.stat(state_dir / paths.SPOOL_NAME).st_size)
            except OSError:
                pass  # no spool: nothing to read again
        if not _stored_from_the_spool(state_dir, sink):
            return
    known[store] = now
    _remember(conn, known)


UNKNOWN = "unknown"  # a store noted without its generation: the next check stores everything in it


def _generation_of(sink: Sink) -> str | None:
    generation = getattr(sink, "generation", None)
    return generation() if generation is not None else None


def _generations(conn: sqlite3.Connection) -> dict[str, str]:
    """Store path -> the generation of the store there that this state.db's events went into."""
    try:
        known = json.loads(get_meta(conn, Meta.LOCAL_STORE_GENERATION) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in known.items()} if isinstance(known, dict) else {}


def _remember(conn: sqlite3.Connection, known: dict[str, str]) -> None:
    set_meta(conn, Meta.LOCAL_STORE_GENERATION, json.dumps(known, sort_keys=True))


def _stored_from_the_spool(state_dir: Path, sink: Sink) -> bool:
    """Every event the spool makes, into `sink`; True when all of them went in."""
    from periscope_hooks.delivery import deliver
    from periscope_hooks.ingest import process_spool
    from periscope_hooks.state import open_state_db

    store_now = getattr(sink, "store_now", None)
    # Beside the real one (the flusher holds flush.lock): on the same disk, where a state.db of
    # this size already fits, not in a /tmp that may be memory; one killed half way is removed here.
    work = state_dir / REFILL_DIR
    shutil.rmtree(work, ignore_errors=True)
    try:
        copy = open_state_db(work)
        try:
            process_spool(state_dir, copy, store_now=store_now, write_notes=False, logs=False)
            # What went through its outbox (the store was busy for a batch, say).
            result = deliver(copy, sink, budget_seconds=0, drain=True)
            left = outbox.depth(copy)
        finally:
            copy.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # In the user's log, beside the store's own lines (its damage, its move): a repository's
    # hook.log holds its problems, and `status` shows the newest as one.
    where = f"{paths.local_store_path()}: {state_dir}"
    if left:
        logfile.log_line(
            state_dir / paths.HOOK_LOG_NAME,
            f"flush: the local store was made anew; {left} event(s) could not be stored in it again"
            f" ({result.error or 'not delivered'}); the next flush tries again",
        )
    else:
        logfile.log_line(
            paths.user_log_path(), f"local store made anew ({where}): this repository's events were stored in it again"
        )
    return not left


def stored_again(conn: sqlite3.Connection) -> bool:
    """Whether this state.db's events went into the local store there is now (`status`)."""
    from periscope_hooks.sinks.local import read_generation

    now = read_generation()
    return now is not None and _generations(conn).get(str(paths.local_store_path())) == now
