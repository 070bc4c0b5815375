"""The spool: JSON lines appended by the OpenCode plugin and (for commits) the git hooks.

Appends are single O_APPEND writes of whole lines, so concurrent writers never
interleave within a line.  Readers take complete lines only: a torn last line
(a writer mid-append, or one that crashed) is left for the next read.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Iterator
    from typing import Any


SPOOL_VERSION = 1


def _dumps(value: Any) -> str:
    """Compact JSON for the plain values a record holds (dict, list, str, int, float, bool, None).

    The commit hook writes records on every commit; the json package would pull
    in `re` and more at import time, so the hot path uses this and the C string
    escaper `_json` that json itself uses.
    """
    from _json import encode_basestring_ascii

    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinities are not JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        return "{" + ",".join(_dumps(str(k)) + ":" + _dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the spool")


def append(path: str, record: dict[str, Any]) -> None:
    line = (_dumps(record) + "\n").encode("utf-8")
    # O_NONBLOCK: no effect on a file; a FIFO in the spool's place with no reader fails at once
    # (ENXIO, logged) where opening it held the commit until the hook's alarm (10 s).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_lines(
    path: str, offset: int, max_bytes: int = 4 << 20, max_line: int = 0
) -> tuple[list[tuple[int, bytes]], int]:
    """Complete lines from `offset`: ([(line_offset, line_bytes)], offset after the last complete line).
    A line longer than `max_bytes` is read whole when it is at most `max_line` bytes."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
            while b"\n" not in data and len(data) == max_bytes and max_bytes < max_line:
                more = f.read(max_bytes)  # one long line: read on, doubling, up to max_line
                data += more
                max_bytes *= 2
                if len(more) < max_bytes // 2:
                    break
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        if len(data) >= max_bytes:
            # One line longer than max_bytes: nothing sane writes that; skip it as garbage.
            return [(offset, data)], offset + len(data)
        return [], offset
    lines = []
    pos = 0
    for raw in data[: end + 1].split(b"\n")[:-1]:
        lines.append((offset + pos, raw))
        pos += len(raw) + 1
    return lines, offset + end + 1


# How many `{"v"` a garbage line is searched at (from its end) for a record glued to a fragment.
# A torn append leaves one fragment (a few when writers died in a row), so the record is among
# the last few; the bound keeps a long garbage line linear (each try re-reads the line's rest).
FRAGMENT_CANDIDATES = 64


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, bool]:
    """(record or None, whether garbage was skipped).

    A writer that died mid-append leaves a fragment that the next append
    completes into one bad line: `<fragment>{"v":1,...}`.  The record at the
    end is recovered rather than lost with the fragment.

    Its `{"v"` is the one whose rest of the line is one JSON object.  At most one
    is: a `{"v"` inside a valid object starts a nested object, which ends before
    the line does.  So they are tried from the end, FRAGMENT_CANDIDATES of them:
    tried from the start, a 1 MB line of `{"v"` garbage took 13 s of CPU (each
    try copies and decodes the rest of the line) and stopped every flush, report
    and status of the repository.
    """
    import json

    raw = raw.strip()
    if not raw:
        return None, False
    try:
        rec = json.loads(raw)
        if isinstance(rec, dict):
            return _well_formed(rec) if _may_escape_a_surrogate(raw) else rec, False
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the interpreter's limit
        pass
    start = raw.rfind(b'{"v"', 1)
    for _ in range(FRAGMENT_CANDIDATES):
        if start <= 0:
            break
        try:
            rec = json.loads(raw[start:])
            if isinstance(rec, dict):
                return _well_formed(rec) if _may_escape_a_surrogate(raw) else rec, True
        except (ValueError, RecursionError):
            pass
        start = raw.rfind(b'{"v"', 1, start)
    return None, True


def _may_escape_a_surrogate(raw: bytes) -> bool:
    return b"\\ud" in raw or b"\\uD" in raw


def _well_formed(rec: dict[str, Any]) -> dict[str, Any]:
    """`rec` with every lone UTF-16 half (a JSON `\\ud800` escape, which json reads and orjson
    refuses) made U+FFFD: SQLite and the events hold UTF-8, which cannot encode one, so a model
    name or title holding one made ingest skip the whole record, usage and all.  (json.loads
    pairs the halves that belong together: a half left in a string is a lone one.)"""
    import re

    lone = re.compile("[\ud800-\udfff]")

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return lone.sub("\ufffd", value)
        if isinstance(value, dict):
            return {fix(k): fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    try:
        return fix(rec)  # type: ignore[no-any-return]
    except RecursionError:  # nested to json's limit: left as read (ingest skips what it cannot store)
        return rec


def iter_records(path: str) -> Iterator[dict[str, Any]]:
    """Every parseable record (for tests and diagnostics)."""
    offset = 0
    while True:
        lines, end = read_lines(path, offset)
        if end == offset:
            return
        for _, raw in lines:
            rec, _ = parse_line(raw)
            if rec is not None:
                yield rec
        offset = end
