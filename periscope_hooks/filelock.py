"""An exclusive lock on a file of its own (flock), waited for up to a timeout; or a shared one.

flush.lock (one flusher per repository) and `<database>.rebuild.lock` (one process moves a damaged
database aside) take it; install-hooks and uninstall-hooks take the git dir itself.  The kernel releases it when its holder dies, kill -9 included.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path


class FileLock:
    def __init__(self, path: Path, *, folder: bool = False) -> None:
        """`folder`: lock an existing folder itself (flock takes a folder opened read-only), which
        leaves no file behind: install-hooks and uninstall-hooks lock the git dir."""
        self.fd = os.open(str(path), os.O_RDONLY) if folder else os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout: float | None, *, shared: bool = False) -> bool:
        """True once held; False when `timeout` seconds passed first (None: wait as long as it takes).
        `shared`: held beside other shared holders, never beside an exclusive one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(self.fd, mode | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)  # releases the lock if held
