"""A whole request within a time limit.

httpx's timeouts bound each operation (connect, one write, one read), not the request: a server
that answers one byte every two seconds never trips a 15 s read timeout, and held a flusher, with
flush.lock, for as long as it kept dripping (a foreground `periscope flush` then waited a minute
and failed with "another flush is still running").  The limit is an interval timer: its signal
interrupts the blocked read, and the handler's exception leaves the request.  Only the main
thread can take signals, and an outer limit already set (the hooks' own) is left alone: there the
request keeps httpx's per-operation bounds, as before.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

# The whole request may take this many times the per-operation timeout: a batch of up to 1 MB
# going out over a slow link (0.5 Mbit/s: 16 s) must still fit, where the 15 s each read and write
# may take would not; a server that drips its answer is cut off all the same.
WHOLE_REQUEST_TIMEOUTS = 4


class RequestTooSlow(Exception):
    """The request (connect, send, receive) took longer than its limit."""


@contextlib.contextmanager
def whole_request_within(timeout: float) -> Iterator[None]:
    """The request in the block ends (RequestTooSlow) after WHOLE_REQUEST_TIMEOUTS times `timeout`,
    the per-operation timeout its client was given."""
    seconds = timeout * WHOLE_REQUEST_TIMEOUTS
    if (
        seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or signal.getitimer(signal.ITIMER_REAL)[0] > 0  # someone else's limit is running
    ):
        yield
        return

    def too_slow(signum: int, frame: Any) -> None:
        raise RequestTooSlow

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
