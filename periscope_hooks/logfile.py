"""Size-bounded log files (hook.log, periscope.log).

Kept import-light: the git hook uses it.  Never raises: logging must not be the
reason a hook fails.
"""

from __future__ import annotations

import os
import time

from periscope_hooks.folders import make_private_dir

MAX_LOG_BYTES = 256 * 1024
# Control characters as Python writes them in a string literal ("\\n", "\\x1b"): a value quoted
# in a log entry or an error (a key of a committed .periscope.toml, a receiver's reason, a path)
# can hold a newline or a terminal escape, and would forge log lines or drive the terminal of
# whoever reads it.  A translate table, not output's pattern: this module stays import-light (no
# `re`) for the hook, and a log line needs only the controls escaped.
CONTROL_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def log_line(path: str | os.PathLike[str], message: str, *, exc: BaseException | None = None) -> bool:
    """Append an entry; False when it could not be written."""
    try:
        path = os.fspath(path)
        if exc is not None:
            # The cause on the entry's own line: `status` shows that line (its "last problem"),
            # which said "hook failed" and left the reason to the traceback below it.
            message = f"{message}: {_cause(exc)}"
        message = message.translate(CONTROL_ESCAPES)  # one line, whatever it quotes
        text = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid={os.getpid()} {message}\n"
        if exc is not None and not _said_in_full(exc):
            import traceback

            from periscope_hooks import __version__

            text += f"  periscope-hooks {__version__}\n"
            text += "".join("  " + ln for ln in traceback.format_exception(type(exc), exc, exc.__traceback__))
        make_private_dir(os.path.dirname(path))  # never a moved repository's old path again
        try:
            if os.path.getsize(path) > MAX_LOG_BYTES:
                # Keep one previous generation; os.replace is atomic.
                os.replace(path, path + ".1")
        except OSError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        finally:
            os.close(fd)
        return True
    except Exception:
        return False


def _said_in_full(exc: BaseException) -> bool:
    """A UserError (a bad setting, say) is its message and hint: no traceback under it."""
    return isinstance(getattr(exc, "message", None), str) and hasattr(exc, "hint")


def _cause(exc: BaseException) -> str:
    if _said_in_full(exc):
        message, hint = getattr(exc, "message", ""), getattr(exc, "hint", None)
        return f"error: {message}" + (f" hint: {hint}" if hint else "")
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def tail(path: str | os.PathLike[str], max_lines: int = 1) -> list[str]:
    """The last lines of a log that start an entry (not traceback continuation lines)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    entries = [ln for ln in data.splitlines() if ln and not ln.startswith(" ")]
    return entries[-max_lines:]
