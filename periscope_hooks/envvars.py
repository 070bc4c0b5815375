"""Numeric environment variables: one table, one rule for all of them.

Unset or empty means the default.  Anything else must be a finite, non-negative number (above 0 for a timeout; a port:
a whole number from 1 to 65535); otherwise a UserError names the variable and its value, so a
typo (`PERISCOPE_HTTP_TIMEOUT=15s`) is one line at the command line and a logged line (events
kept) in a background flush, never a traceback nor a silent fallback to the default.
"""

from __future__ import annotations

import math
import os

from periscope_hooks.errors import UserError

SECONDS = {
    "PERISCOPE_FLUSH_BUDGET": 60.0,  # what one flusher run may spend on retries
    "PERISCOPE_BACKOFF_BASE": 0.5,  # the retry backoff's first step
    "PERISCOPE_BACKOFF_CAP": 30.0,  # and its ceiling
    "PERISCOPE_HTTP_TIMEOUT": 15.0,  # per HTTP request
    "PERISCOPE_HOOK_READ_BUDGET": 6.0,  # what one Claude Code hook run may spend reading transcripts
}
# Zero would mean every request fails at once (httpx: "could not reach the endpoint" for ever).
ABOVE_ZERO = frozenset({"PERISCOPE_HTTP_TIMEOUT"})
PORTS = {"PERISCOPE_LOGIN_PORT": 14550}  # the sign-in redirect (must match the client's redirect URI)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value.strip()


def seconds(name: str) -> float:
    """A duration in seconds from SECONDS' variables."""
    default = SECONDS[name]
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    above_zero = name in ABOVE_ZERO
    if not math.isfinite(value) or value < 0 or (value == 0 and above_zero):
        raise UserError(
            f"{name}={raw!r} is not a number of seconds" + (" above 0" if above_zero else ""),
            f"unset it or set a {'number above 0' if above_zero else 'non-negative number'}, e.g. {name}={default:g}",
        )
    return value


def port(name: str) -> int:
    default = PORTS[name]
    raw = _raw(name)
    if raw is None:
        return default
    # isascii: str.isdigit is true of "²" (int() refuses it) and of "١٢" (int() reads 12).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 5 or not 1 <= int(raw) <= 65535:
        raise UserError(
            f"{name}={raw!r} is not a port number", f"unset it or set a port from 1 to 65535, e.g. {name}={default}"
        )
    return int(raw)


def check_all() -> None:
    """Raise the first bad variable's UserError (commands call this before starting work)."""
    for name in SECONDS:
        seconds(name)
    for name in PORTS:
        port(name)
