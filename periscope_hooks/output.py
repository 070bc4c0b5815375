"""The one place that prints to the user.

Users see one line (and a hint); tracebacks and versions go to the log.  Tests
capture what is printed through pytest's capsys, since every line goes through
`sys.stdout` / `sys.stderr` here and nowhere else.
"""

from __future__ import annotations

import re
import sys


def width(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide and full-width characters (CJK, most
    emoji) take two, combining marks none.  Table columns padded by len() were shifted by a
    session title or branch in Chinese or with an emoji."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """`text` left-aligned in `columns` terminal columns."""
    return text + " " * (columns - width(text))


def tolerate_the_terminal_encoding() -> None:
    """A character the terminal's encoding lacks (a model or session title in Chinese, an emoji,
    under a Latin-1 locale) is printed as `?`: it stopped a report half-way with
    UnicodeEncodeError.  UTF-8 terminals, the usual case, are unaffected."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and (sys.stdout.encoding or "").lower().replace("-", "") != "utf8":
        reconfigure(errors="replace")


class OutputError(Exception):
    """Standard output could not be written (a full disk, a descriptor closed under us): main.py
    says so in one line instead of a traceback, or Python's noise at exit."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or type(error).__name__)


# What must not reach a terminal as it is: C0 and C1 controls (ESC drives the terminal, CR and
# backspace overwrite what was printed, a newline forges a line), the bidirectional overrides and
# isolates and the invisible characters a name could hide behind (U+202E reverses the rest of a
# table cell; a branch may hold it), the line and paragraph separators, and lone surrogates (a
# path that is not UTF-8, as Python reads it).  Written as Python escapes them (`\x1b`, `\u202e`).
_UNSAFE = "\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff"
_UNSAFE_IN_A_LINE = re.compile(f"[\x00-\x1f{_UNSAFE}]")
_UNSAFE_IN_LINES = re.compile(f"[\x00-\x09\x0b-\x1f{_UNSAFE}]")  # the newline kept


def _escaped(text: str, keep_newlines: bool) -> str:
    pattern = _UNSAFE_IN_LINES if keep_newlines else _UNSAFE_IN_A_LINE
    return pattern.sub(_escape, text)  # a scan in C where nothing matches (a report's JSON)


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def out(line: str = "") -> None:
    """Print a line (or lines: a newline in it is kept); nothing in it drives the terminal."""
    try:
        sys.stdout.write(_escaped(line, keep_newlines=True) + "\n")
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(e) from None


def write(text: str) -> None:
    try:
        sys.stdout.write(text)
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(e) from None


def write_bytes(data: bytes) -> None:
    """Bytes as they are (UTF-8 text read as such, e.g. `export`'s stored lines): no decode and
    re-encode per line, and one write per chunk."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stdout (a test's capture, say)
        write(data.decode("utf-8"))
        return
    try:
        sys.stdout.flush()  # what was written as text goes first
        # In pieces the size of a pipe's buffer: a reader that leaves (`| head`) while a large
        # write is half done is not reported by that write (the buffered writer keeps the partial
        # count), only by the next one.
        view = memoryview(data)
        for start in range(0, len(view), PIPE_PIECE_BYTES):
            buffer.write(view[start : start + PIPE_PIECE_BYTES])
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(e) from None


PIPE_PIECE_BYTES = 1 << 16


def flush() -> None:
    """Push out what is buffered now (a reader that left then shows as BrokenPipeError here)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(e) from None


def info(line: str) -> None:
    sys.stderr.write(line + "\n")


def ingesting(unread_bytes: int) -> None:
    """What a read command says before a long ingest (state_reader.LONG_INGEST_BYTES)."""
    info(f"ingesting {unread_bytes / 1e6:,.0f} MB of new records first (a long history takes a while the first time)")


def storing_again(spool_bytes: int) -> None:
    """What a foreground flush says before it stores a repository's events in a new local store."""
    info(
        f"the local store was made anew: storing this repository's events in it again"
        f" ({spool_bytes / 1e6:,.1f} MB of records)"
    )


def one_line(text: str) -> str:
    """`text` as one line that prints as it reads: newlines too escaped (_UNSAFE_IN_A_LINE)."""
    return _escaped(text, keep_newlines=False)


def warn(line: str) -> None:
    sys.stderr.write(f"warning: {one_line(line)}\n")


def error(message: str, hint: str | None = None) -> int:
    """Print `error: message` (and `hint: ...`) to stderr, on one line; return exit code 1."""
    text = f"error: {message}"
    if hint:
        text += f" hint: {hint}"
    sys.stderr.write(one_line(text) + "\n")
    return 1
