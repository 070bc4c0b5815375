"""Making our own folders, private (0700), without re-creating a repository that moved away.

Import-light: the git hook and the log writer use it.
"""

from __future__ import annotations

import os


def _users_own(folder: str) -> bool:
    """Inside the user's XDG state, data or config folder (ours to build from nothing)."""
    from periscope_hooks import paths  # pathlib: only when a parent is missing, off the hook's path

    for home in (paths.state_home(), paths.data_home(), paths.config_home()):
        if folder.startswith(os.path.join(os.path.abspath(home), "")):
            return True
    return False


def make_private_dir(folder: str | os.PathLike[str]) -> None:
    """Create `folder` (0700, whatever the umask) if it is not there.

    Parents are created only for the user's own folders.  A repository's state folder
    (`<git dir>/periscope`) is made only inside a git folder that is there: a background flusher
    or a log line holding a path found before the user moved the repository (`mv repo elsewhere`
    right after a commit) re-created `<old path>/.git/periscope` with its parents, a stray
    folder at the old place, and the move went unnoticed (the old worktree path existed, so the
    usage pending there never followed the repository: tests/test_worktree_moves.py failed ~1 run
    in 30 under load).  Without its git folder the call fails (FileNotFoundError) and whatever
    was to be written stays where it was, in the moved repository's spool.  FileExistsError when
    a file holds the folder's name."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
    except FileNotFoundError:
        if not _users_own(folder):
            raise
        os.makedirs(folder, 0o700, exist_ok=True)
