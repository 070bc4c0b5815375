"""What a git command started in the background, found by a token in its processes' environment.

Every process a command starts inherits its environment: a token set there marks the detached
flusher a hook starts, awaited by polling /proc for it (it sleeps 0.2 s before it starts Python,
and is forked before the hook returns, so right after git returns it is there until it has
finished), never by sleeping."""

from __future__ import annotations

import os
import time

TOKEN_VAR = "PERISCOPE_TEST_CHECKOUT_TOKEN"


def started_by(token: str) -> list[int]:
    """PIDs of live processes whose environment carries the token (what the checkout started)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def await_finished(token: str, deadline_s: float = 120.0) -> None:
    """Until no process carries the token, seen on five polls in a row (0.1 s): while a process
    execs (the flusher's `sh -c 'sleep; exec python'`), its /proc/<pid>/environ reads empty for a
    moment, and one poll landing there once let a test read state.db before the flusher made it."""
    end = time.monotonic() + deadline_s
    quiet = 0
    while quiet < 5:
        quiet = 0 if started_by(token) else quiet + 1
        assert time.monotonic() < end, "the background flusher did not finish in time"
        time.sleep(0.02)
