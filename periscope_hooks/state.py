"""The one place that opens a repository's state database (state.db).

SQLite in WAL mode with a busy timeout.  A corrupt database is moved aside and
rebuilt from the spool (the spool is never truncated, so nothing is lost; event
ids are deterministic, so re-created events are deduplicated downstream).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, TypeVar

from periscope_hooks import paths
from periscope_hooks.errors import UserError
from periscope_hooks.filelock import FileLock
from periscope_hooks.folders import make_private_dir
from periscope_hooks.migrations import COMPAT_LEVEL, MIGRATIONS
from periscope_hooks.statedb import Meta, get_meta, raise_compat_level, set_meta

__all__ = ["open_state_db", "transaction", "now_ms"]

DEFAULT_BUSY_TIMEOUT_MS = 5000
INTEGRITY_CHECK_INTERVAL_MS = 6 * 3600 * 1000
CHECK_MARKER_NAME = "state.db.check"
FileIdentity = Optional[tuple[int, int]]  # (device, inode) of a database file; None when there is none
Damage = tuple[FileIdentity, str]  # the file a query or write met damage in, and the error it met


class NewerStateError(UserError):
    pass


def owner_only(db_path: Path) -> None:
    """Make a database readable by its owner only, before SQLite opens it: state.db and the local
    store hold session titles (drawn from the user's prompts), paths, and whatever a receiver said
    back; with the usual umask they were 0644, where the spool and the logs are 0600.  A new file
    is created 0600 (SQLite gives its -wal and -shm files the database's mode); an existing one
    loses group and other access.  Best effort: a file of another user's is left as it is.

    An existing file is never opened: closing a descriptor drops every POSIX lock the process
    holds on that file, SQLite's own included, so a connection already open in this process lost
    its locks each time another was opened (another process could then truncate the WAL under its
    reads: `disk I/O error`).  Changed by path instead, and only a regular file (never a link's target)."""
    try:
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        return  # a new, empty file: SQLite makes it a database, and its -wal and -shm take its mode
    except FileExistsError:
        pass
    except OSError:
        return  # a folder that cannot be written, say: sqlite3.connect says what is wrong
    db_mode = None
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                continue
            mode = stat.S_IMODE(st.st_mode)
            # The -wal and -shm files take the database's owner bits: SQLite gave them its mode
            # when it made them, and a state.db made writable again (after a chmod 444) left them
            # read-only, every write refused with "attempt to write a readonly database".
            want = mode & 0o700 if db_mode is None else db_mode
            if db_mode is None:
                db_mode = want
            if mode != want:
                os.chmod(path, want)
        except OSError:
            continue  # missing (-wal, -shm), or not ours to change


class DatabaseUnopenable(sqlite3.OperationalError):
    """SQLite's "unable to open database file", naming the file and why: every command said
    `OperationalError: unable to open database file` and never which one.  Still an
    OperationalError with that text (state_reader's read-only fallback reads it)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path
        if db_path.is_dir():
            self.why = "it is a folder"
        elif db_path.exists() and not os.access(db_path, os.R_OK | os.W_OK):
            self.why = "you cannot read and write it"
        elif not os.access(db_path.parent, os.W_OK | os.X_OK):
            self.why = "its folder cannot be written"
        else:
            self.why = "SQLite could not open it"
        super().__init__(f"unable to open database file {db_path}: {self.why}")


def named_if_unopenable(db_path: Path, e: BaseException) -> BaseException:
    """`e`, or DatabaseUnopenable naming `db_path` when SQLite could not open it."""
    if isinstance(e, sqlite3.OperationalError) and str(e).startswith("unable to open database file"):
        return DatabaseUnopenable(db_path)
    return e


def _connect(db_path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    owner_only(db_path)
    try:
        conn = sqlite3.connect(str(db_path), timeout=busy_timeout_ms / 1000, isolation_level=None)
    except sqlite3.OperationalError as e:
        raise named_if_unopenable(db_path, e) from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Takes effect on a new database only (before its first table): delivered outbox rows leave
        # free pages that reclaim_space() hands back (see there for older databases).
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        enable_wal(conn, busy_timeout_ms)
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException as e:
        conn.close()  # a damaged file is moved aside next: no connection left open on it
        raise named_if_unopenable(db_path, e) from None
    return conn


def enable_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Switch a database to WAL, waiting out other openers: SQLite answers a mode change that races
    another connection with "database is locked" at once, without calling the busy handler."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    if all(name in applied for name, _ in MIGRATIONS):
        _check_compat(conn)
        return
    with transaction(conn):
        # Re-read inside the write lock: another process may have just migrated.
        applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
        for name, fn in MIGRATIONS:
            if name not in applied:
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)", (name, int(time.time() * 1000))
                )
        raise_compat_level(conn, COMPAT_LEVEL)
    _check_compat(conn)


def _check_compat(conn: sqlite3.Connection) -> None:
    level = get_meta(conn, Meta.COMPAT_LEVEL)
    if level is not None and int(level) > COMPAT_LEVEL:
        raise NewerStateError(
            "state.db was written by a newer periscope-hooks",
            "upgrade periscope-hooks (the spool keeps everything meanwhile)",
        )


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _integrity_check_due(conn: sqlite3.Connection, state_dir: Path) -> bool:
    if (state_dir / CHECK_MARKER_NAME).exists():
        return True
    last = get_meta(conn, Meta.INTEGRITY_CHECKED_MS)
    return last is None or not last.isdigit() or now_ms() - int(last) > INTEGRITY_CHECK_INTERVAL_MS


def mark_for_integrity_check(state_dir: Path) -> None:
    """Make the next open run the full check (and rebuild if it fails): called after a
    query hit a malformed page that the periodic check had not caught yet."""
    try:
        (state_dir / CHECK_MARKER_NAME).touch()
    except OSError:
        pass


def _record_integrity(conn: sqlite3.Connection, state_dir: Path, rebuilt_from: str | None = None) -> None:
    """The database is known good (checked, or new): note when, and clear a pending request."""
    with transaction(conn):
        set_meta(conn, Meta.INTEGRITY_CHECKED_MS, str(now_ms()))
        if rebuilt_from:
            set_meta(conn, Meta.REBUILT_FROM, rebuilt_from)
    try:
        os.unlink(state_dir / CHECK_MARKER_NAME)
    except FileNotFoundError:
        pass


def file_identity(path: Path) -> FileIdentity:
    """Which file `path` is now: a database moved aside and made anew is another file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


@contextmanager
def _rebuild_lock(db_path: Path, timeout_ms: int, *, shared: bool = False) -> Iterator[None]:
    """`<name>.rebuild.lock`, held while a damaged database is moved aside (milliseconds: the
    re-ingest from the spool runs after it).  Without it, two processes that both met the damage
    (a report and the background flusher) each moved "the" database aside: the second moved away
    the first's new one, open and in use, and the first then failed with `disk I/O error`
    (tests/test_state.py).  Bounded, as SQLite's own busy wait is.

    `shared`: held while a database is opened and first read, so that no process moves the file
    aside meanwhile.  SQLite names a database's journal, WAL and index by its path, so a
    connection opened on the damaged file just before another process moved it aside took the new
    database's journal for its own: it rolled the new one's first transaction back into the moved
    file (truncating it) and went on with the new WAL (tests/test_state.py, 8 processes meeting
    one damaged file: the moved copy came out an empty database).  A folder where the lock cannot
    be made (read-only) opens without it: nothing can be moved aside there either."""
    try:
        lock = FileLock(db_path.with_name(db_path.name + ".rebuild.lock"))
    except OSError:
        if not shared:
            raise
        yield
        return
    try:
        if not lock.acquire(timeout_ms / 1000, shared=shared):
            raise sqlite3.OperationalError("database is locked (another process is rebuilding it)")
        yield
    finally:
        lock.close()


def move_aside_if_unchanged(db_path: Path, seen: FileIdentity, timeout_ms: int) -> Path | None:
    """Move a damaged database (with its WAL and index) to `<name>.corrupt-<epoch>`, one process at
    a time, and only if `db_path` is still the file `seen` damaged; the new name, or None when
    another process moved it meanwhile (the file may even be missing for an instant, before its
    new one is made): then open what is there now."""
    with _rebuild_lock(db_path, timeout_ms):
        if seen is None or file_identity(db_path) != seen:
            return None
        stamp = int(time.time())
        aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():  # another damaged copy moved aside within the same second: keep both
            aside = db_path.with_name(f"{db_path.name}.corrupt-{stamp}-{n}")
            n += 1
        # Its WAL first: killed between the moves, a WAL left behind would be replayed into the new
        # database made beside it, where a database left behind is met (and moved) again.
        for suffix in ("-wal", "-shm"):
            try:
                os.replace(str(db_path) + suffix, str(aside) + suffix)
            except FileNotFoundError:
                pass
        os.replace(db_path, aside)
        return aside


def open_moving_damage_aside(
    db_path: Path, open_db: Callable[[], sqlite3.Connection], timeout_ms: int, *, damaged: Damage | None = None
) -> tuple[sqlite3.Connection, tuple[Path, str] | None]:
    """open_db(); when it meets a damaged file (or `damaged` names the file a query or write met
    damage in, and it is still that file), the file is moved aside (move_aside_if_unchanged) and
    open_db() runs again on what is there then.  The connection, and (the damaged copy's new name,
    the error met) when this call moved one.  Another process may have moved it meanwhile: its new
    database is opened, and nothing is moved twice."""

    def opened() -> sqlite3.Connection:
        with _rebuild_lock(db_path, timeout_ms, shared=True):
            return open_db()

    for _ in range(3):  # a new attempt only when another process replaced the file meanwhile
        seen, why = damaged if damaged is not None else (file_identity(db_path), "")
        if damaged is None or seen != file_identity(db_path):
            try:
                return opened(), None
            except sqlite3.DatabaseError as e:
                if not is_corrupt(e):
                    raise
                why = str(e)
        damaged = None
        aside = move_aside_if_unchanged(db_path, seen, timeout_ms)
        if aside is not None:
            return opened(), (aside, why)
    return opened(), None


def raise_if_damaged(conn: sqlite3.Connection) -> None:
    """SQLite's quick_check of every page (state.db when due, the local store when a reader met
    damage): a DatabaseError that is_corrupt knows when it finds any."""
    found = conn.execute("PRAGMA quick_check(1)").fetchone()
    if found is None or found[0] != "ok":  # it reports damage as a row, not as an exception
        raise sqlite3.DatabaseError(f"database disk image is malformed (quick_check: {found and found[0]})")


def _checked(db_path: Path, state_dir: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open and migrate state.db, and run quick_check when due; a DatabaseError if it is damaged."""
    conn = _connect(db_path, busy_timeout_ms)
    try:
        _migrate(conn)
        # quick_check reads every page (80 ms at 100,000 messages): run it every few hours, and
        # at once when a flusher saw a malformed page, rather than on every background flush.
        if _integrity_check_due(conn, state_dir):
            raise_if_damaged(conn)
            _record_integrity(conn, state_dir)
    except BaseException:
        conn.close()
        raise
    return conn


def make_state_dir(state_dir: Path) -> None:
    """Create a repository's state folder (.git/periscope); one clear line when a file holds its
    name (it was the catch-all's `FileExistsError` from every command), or when its git folder is
    gone (folders.make_private_dir never makes it again)."""
    try:
        make_private_dir(state_dir)
    except (FileExistsError, NotADirectoryError):
        raise UserError(
            f"{state_dir} is not a folder",
            hint="periscope keeps the spool and its state there: move that file aside"
            f" (mv '{state_dir}' '{state_dir}.aside') and run the command again",
        ) from None
    except FileNotFoundError:  # its git folder went (moved or deleted) after the path was found
        raise UserError(
            f"{state_dir.parent} is gone", hint="the repository was moved or deleted: run the command where it is now"
        ) from None


def open_state_db(
    state_dir: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, damaged: Damage | None = None
) -> sqlite3.Connection:
    """Open (creating, migrating, and checking when due) a repository's state.db.  `damaged`: the
    state.db a query met a damaged page in (file_identity, error); if state.db is still that file,
    it is moved aside at once and started again from the spool.

    A damaged database is moved aside by one process at a time, and only if state.db is still the
    file found damaged: another process may have rebuilt it meanwhile, and its new one is used."""
    make_state_dir(state_dir)
    db_path = state_dir / paths.STATE_DB_NAME
    conn, moved = open_moving_damage_aside(
        db_path, lambda: _checked(db_path, state_dir, busy_timeout_ms), busy_timeout_ms, damaged=damaged
    )
    if moved is not None:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        _record_integrity(conn, state_dir, rebuilt_from=f"{moved[0].name} at {when}")
    return conn


T = TypeVar("T")


def run_rebuilding_once(
    state_dir: Path,
    work: Callable[[sqlite3.Connection], T],
    on_damage: Callable[[sqlite3.DatabaseError], None] | None = None,
) -> T:
    """`work` on state.db; when it meets a damaged page, state.db is moved aside and rebuilt from
    the spool at once (open_state_db's `damaged`) and `work` runs once more, on the rebuilt one.
    `on_damage(error)` is told before the rebuild; damage met again is raised.  The flusher and
    the read commands both: a flusher that met damage logged a traceback and left the rebuild,
    and the commit that started it, to the next flush (a chaos sweep)."""
    damaged: Damage | None = None
    for attempt in range(2):
        conn = open_state_db(state_dir, damaged=damaged)
        opened = file_identity(state_dir / paths.STATE_DB_NAME)  # the file it uses (unless replaced this instant)
        try:
            return work(conn)
        except sqlite3.DatabaseError as e:
            if attempt or not is_corrupt(e):
                raise
            damaged = (opened, str(e))
            if on_damage is not None:
                on_damage(e)
        finally:
            conn.close()
    raise AssertionError("unreachable")


def is_read_only(exc: BaseException, state_dir: Path) -> bool:
    """Did opening or writing fail because the state folder (or database) cannot be written?"""
    if isinstance(exc, PermissionError):
        return True
    text = str(exc).lower()
    # "locking protocol": a WAL index SQLite cannot recover without writing (a chaos sweep, once).
    unwritable = ("unable to open" in text or "locking protocol" in text) and not os.access(state_dir, os.W_OK)
    return "readonly" in text or "read-only" in text or unwritable


def open_state_db_read_only(state_dir: Path) -> sqlite3.Connection | None:
    """state.db for reading only, writing nothing (not even a WAL index): for `report` and `status`
    when the state folder is read-only.  None when there is none, or none that reads."""
    db_path = state_dir / paths.STATE_DB_NAME
    if db_path.exists():
        quoted = urllib.parse.quote(str(db_path))
        # mode=ro still needs to create the WAL index beside the database; immutable does not
        # (it reads the file as it is: the last checkpoint, which closing the database makes).
        for uri in (f"file:{quoted}?mode=ro", f"file:{quoted}?immutable=1"):
            try:
                conn = sqlite3.connect(uri, uri=True, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute("SELECT count(*) FROM messages").fetchone()
                return conn
            except sqlite3.DatabaseError:
                conn.close()
    return None


RECLAIM_MIN_PAGES = 256  # 1 MiB at the default page size: below that, reuse beats a vacuum


def reclaim_space(conn: sqlite3.Connection) -> int:
    """Give the pages freed by delivered (deleted) outbox rows back to the file system.

    At 1M messages the outbox's delivered bodies left 61-70 % of a 1.41 GB state.db free.  A
    database made with auto_vacuum=INCREMENTAL frees them with `incremental_vacuum` (cheap, only
    the free pages); an older one is switched over once, by a VACUUM, when most of it is free.
    Returns the pages freed (0 when nothing was worth it)."""
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if free < RECLAIM_MIN_PAGES:
        return 0
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
        # executescript steps the pragma to completion; execute() frees a single page.
        conn.executescript("PRAGMA incremental_vacuum;")
        return free
    if free * 2 < int(conn.execute("PRAGMA page_count").fetchone()[0]):
        return 0
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")
    return free


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def now_ms() -> int:
    return int(time.time() * 1000)
