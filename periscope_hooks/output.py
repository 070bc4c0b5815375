"""The one place that prints to the user.

Users see one line (and a hint); tracebacks and versions go to the log.  Tests
capture what is printed through pytest's capsys, since every line goes through
`sys.stdout` / `sys.stderr` here and nowhere else.
"""

from __future__ import annotations

import sys


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def write(text: str) -> None:
    sys.stdout.write(text)


def flush() -> None:
    """Push out what is buffered now (a reader that left then shows as BrokenPipeError here)."""
    sys.stdout.flush()


def info(line: str) -> None:
    sys.stderr.write(line + "\n")


def warn(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")


def error(message: str, hint: str | None = None) -> int:
    """Print `error: message` (and `hint: ...`) to stderr; return exit code 1."""
    text = f"error: {message}"
    if hint:
        text += f" hint: {hint}"
    sys.stderr.write(text + "\n")
    return 1
