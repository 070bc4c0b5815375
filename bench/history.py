"""The scale benchmarks' history (made by testing/history.py, which the tests share: a real git
repository whose spool holds N message records with a commit record every K messages), the
isolated environment the benchmarks run it in, and copies of one built history for code versions
measured side by side.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: testing/

from testing.history import MESSAGE_STEP_MS, T0, commit_line, make_commits, message_line, write_history  # noqa: E402

__all__ = ["MESSAGE_STEP_MS", "T0", "commit_line", "make_commits", "message_line", "write_history"]


def isolated_env(tmp: str) -> dict[str, str]:
    env = {
        "HOME": tmp,
        "XDG_STATE_HOME": f"{tmp}/state",
        "XDG_DATA_HOME": f"{tmp}/data",
        "XDG_CONFIG_HOME": f"{tmp}/config",
        "XDG_CACHE_HOME": f"{tmp}/cache",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": f"{tmp}/.gitconfig",
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
        "PERISCOPE_BACKGROUND": "0",
    }
    os.environ.update(env)
    return env


# --- code versions side by side on one history -------------------------------------------------
# Each version gets its own copy of a built history (one version's migrations or caches must not
# help another), renamed to one path for each of its runs: spool records and state.db hold the
# worktree's path, and a repository found at a new path is a moved one (a different, much slower
# flush or report).


def version_copies(base: Path, pristine: Path, names: list[str]) -> None:
    """base/<name> for each name: a copy of the built history at `pristine` (made once)."""
    import shutil

    for name in names:
        if not (base / name).exists():
            shutil.copytree(pristine, base / name, symlinks=True)


class AtLivePath:
    """`with AtLivePath(base, name) as live:` the copy base/<name> renamed to base/live meanwhile."""

    def __init__(self, base: Path, name: str) -> None:
        self.copy, self.live = base / name, base / "live"

    def __enter__(self) -> Path:
        self.copy.rename(self.live)
        return self.live

    def __exit__(self, *exc: object) -> None:
        self.live.rename(self.copy)


def code_env(live: Path, code: Path | None) -> None:
    """The isolated environment of the history at `live`, running the source tree `code`
    (PYTHONPATH; None: whatever `python -m periscope_hooks` finds)."""
    isolated_env(str(live))
    if code is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = str(code)
