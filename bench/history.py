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
from testing.util import home_env  # noqa: E402

__all__ = ["MESSAGE_STEP_MS", "T0", "commit_line", "make_commits", "message_line", "write_history"]


def bench_env(home: str, **extra: str) -> dict[str, str]:
    """The environment for git and periscope in a bench's children: the caller's GIT_* and
    PERISCOPE_* dropped, then the tests' isolation (testing.util.home_env: HOME and the XDG
    folders inside `home`, a pinned author, a git configuration of its own), `extra` on top
    (e.g. PERISCOPE_BACKGROUND="0")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PERISCOPE_"))}
    return {**env, **home_env(Path(home)), **extra}


def isolated_env(home: str) -> dict[str, str]:
    """The same isolation (the background flush off) set in this process's own environment, for
    benches that run periscope in-process as well as in children; returns the variables set."""
    env = {**home_env(Path(home)), "PERISCOPE_BACKGROUND": "0"}
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
