"""Reading the spool from the stored position: complete lines, in batches, never skipping.

The position (byte offset, the file's inode, and a digest of the last bytes before the offset) is
stored in the same transaction that applies the batch, so a crash re-reads and never skips;
everything applied is idempotent.

A spool with a new inode is either another file (replaced: re-read from the start) or the same
bytes in a new file: a repository copied, restored, or moved to another file system (`mv` there
copies).  The digest tells them apart, so a copy reads on from the stored offset: re-reading a
1M-message spool costs about a minute of CPU and changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from typing import Any, Callable

from periscope_hooks import spool, statedb
from periscope_hooks.statedb import Meta

try:  # 4x faster than json.loads on a spool line (~4 us against ~16 us: a fifth of a message's ingest)
    import orjson
except ImportError:  # pragma: no cover - a dependency; the standard library reads the same records
    orjson = None  # type: ignore[assignment]

# orjson reads an integer past 64 bits as a float (json.loads keeps it exact); 19 digits in a row
# may be one (-9223372036854775809), so such a line is read by json.  Found by mapping every digit
# to "0" and everything else to " " and looking for 19 zeros: 0.4 us a line, where the regex
# [0-9]{19} took 2.6 us (a twentieth of a message's ingest).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19

BATCH_BYTES = 4 << 20
# The bytes before the stored offset that identify the spool: about ten records (each names its
# own id and time), so another spool never has the same ones at the same offset.
TAIL_BYTES = 4096


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, bool]:
    """spool.parse_line, faster: orjson reads a well-formed line; anything it refuses (NaN, a
    lone surrogate, a torn line) or might read otherwise (a long integer) goes to spool.parse_line,
    so a record reads as the standard library reads it (tests/test_spool.py)."""
    if orjson is not None and _NINETEEN_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if type(rec) is dict:
                return rec, False
    return spool.parse_line(raw)


@dataclass
class Batch:
    lines: list[tuple[int, bytes]]
    end_offset: int
    inode: str
    tail: str | None  # tail_digest(spool, end_offset)


def tail_digest(spool_path: str, end: int) -> str | None:
    """Digest of the spool's last TAIL_BYTES bytes before `end` (None: the file has fewer)."""
    start = max(0, end - TAIL_BYTES)
    try:
        fd = os.open(spool_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, end - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != end - start:
        return None
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _same_bytes(conn: sqlite3.Connection, spool_path: str, offset: int) -> bool:
    """Does the file hold, before `offset`, the bytes ingested last (a copy of the same spool)?"""
    stored = statedb.get_meta(conn, Meta.SPOOL_TAIL)
    return stored is not None and tail_digest(spool_path, offset) == stored


def read_batch(
    conn: sqlite3.Connection, spool_path: str, log: Callable[[str], None], max_bytes: int = BATCH_BYTES
) -> Batch | None:
    """The next complete lines after the stored position (call inside the write transaction);
    None when there are none."""
    offset = statedb.meta_int(conn, Meta.SPOOL_OFFSET)
    try:
        st = os.stat(spool_path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        # A FIFO (or a device) in the spool's place: opening it to read would hold the flusher, and
        # flush.lock, until a writer came.  Nothing is read; the hooks cannot write there either.
        log(f"spool is not a regular file ({spool_path}); nothing read: move it aside")
        return None
    ino = str(st.st_ino)
    stored_ino = statedb.get_meta(conn, Meta.SPOOL_INO)
    moved = stored_ino is not None and stored_ino != ino
    reread = st.st_size < offset or (moved and offset > 0 and not _same_bytes(conn, spool_path, offset))
    if reread:
        # The spool was replaced or truncated behind our back: re-read it whole
        # (everything is idempotent) rather than skip what the new file holds.
        log(f"spool was replaced (offset {offset}, size {st.st_size}); re-reading from the start")
        offset = 0
    elif moved:
        log(f"spool is a copy of the one ingested (a new file, the same bytes up to {offset}); reading on from there")
    lines, new_offset = spool.read_lines(spool_path, offset, max_bytes)
    lines = _unglued(lines)
    if new_offset == offset:
        if stored_ino != ino or reread:
            # Nothing to apply, but the position moved to this file (a re-read one from its start).
            store_position(conn, Batch([], offset, ino, tail_digest(spool_path, offset)))
        return None
    return Batch(lines, new_offset, ino, tail_digest(spool_path, new_offset))


# Where two records meet when the newline between them is missing: a writer stopped (the disk
# full) after its record's last byte.  Never in a valid line: between two JSON values stands a comma
# or a colon, and a `"` inside a string is escaped.
_GLUE = b'}{"v"'


def _unglued(lines: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The lines, each holding records glued together split into one line a record (the first
    was skipped as a garbage line, with spool.parse_line recovering only the last).  A torn
    fragment before a record stays a line of its own, skipped as before.  ~0.5 ms a batch."""
    if not any(_GLUE in raw for _, raw in lines):
        return lines
    out: list[tuple[int, bytes]] = []
    for offset, raw in lines:
        start, at = 0, raw.find(_GLUE)
        while at != -1:  # `at` is a glued record's closing brace
            out.append((offset + start, raw[start : at + 1]))
            start, at = at + 1, raw.find(_GLUE, at + 1)
        out.append((offset + start, raw[start:]))
    return out


def unread(conn: sqlite3.Connection, spool_path: str, max_bytes: int = BATCH_BYTES) -> bool:
    """Is there a complete line past the stored position?  A stat, a meta read and a read of what
    is unread (when it is at most a batch; more always holds work: a line that long is skipped as
    garbage): no lock taken.  A torn last line alone is not, since ingest leaves it for its writer
    to finish: a background flusher that counted it flushed again and again, for as long as the
    line stayed torn (a chaos sweep)."""
    unread_count = unread_bytes(conn, spool_path)
    if unread_count <= 0:
        return False
    if unread_count > max_bytes:
        return True
    offset = statedb.meta_int(conn, Meta.SPOOL_OFFSET)
    try:
        with open(spool_path, "rb") as f:
            f.seek(offset)
            return b"\n" in f.read(unread_count)
    except OSError:
        return False


def unread_bytes(conn: sqlite3.Connection, spool_path: str) -> int:
    """Spool bytes past the stored position (0 for a spool shorter than it: read_batch decides
    what a replaced spool needs, not this stat)."""
    try:
        size = os.path.getsize(spool_path)
    except OSError:
        return 0
    return max(0, size - statedb.meta_int(conn, Meta.SPOOL_OFFSET))


def store_position(conn: sqlite3.Connection, batch: Batch) -> None:
    statedb.set_meta(conn, Meta.SPOOL_OFFSET, str(batch.end_offset))
    statedb.set_meta(conn, Meta.SPOOL_INO, batch.inode)
    statedb.set_meta(conn, Meta.SPOOL_TAIL, batch.tail)
