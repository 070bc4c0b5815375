"""A repository whose history has every shape the dashboard must follow (amend, interactive rebase
with squash and drop, a squash merge, a reset-away commit, sub-agents, unlinked usage), built with
real git and the real hooks.  Used by the dashboard's unit and browser tests and to make the README
screenshot."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from testing.util import (
    REPO_ROOT,
    append_spool,
    commit,
    git,
    home_env,
    init_repo,
    message_record,
    periscope,
    session_record,
)

# 2026-03-01T00:00:00Z; messages are spread over ~10 days from here, five hours apart.
T0_MS = 1772323200000
MODELS = (("anthropic", "claude-sonnet-4"), ("openai", "gpt-5"), ("anthropic", "claude-haiku-4"))
EVIL_TITLE = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def isolated_env(home: Path) -> dict[str, str]:
    """What tests/conftest.py's isolated_home sets, for fixtures that outlive one test."""
    return {**home_env(home), "PYTHONPATH": str(REPO_ROOT)}


class Scenario:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.env = env
        self._n = itertools.count()

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return git(self.path, *args, env={**self.env, **(env or {})})

    def usage(self, n: int = 1, *, session: str = "ses_main", cost: float = 0.05) -> None:
        for _ in range(n):
            i = next(self._n)
            provider, model = MODELS[i % len(MODELS)]
            append_spool(
                self.path,
                message_record(
                    self.path,
                    session_id=session,
                    provider=provider,
                    model=model,
                    tokens=(1000 + 37 * i, 200 + 11 * i, 5 * (i % 3), 4000 + 101 * i, 300 * (i % 2)),
                    cost=round(cost * (1 + (i * 7) % 11), 6),
                    time=T0_MS + i * 5 * 3600 * 1000,
                ),
            )

    def commit(self, message: str, *args: str, filename: str = "file.txt") -> str:
        return commit(self.path, message, *args, filename=filename, env=self.env)

    def periscope(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return periscope(*args, cwd=self.path, env={**self.env, **(env or {})})


def build_scenario(path: Path, env: dict[str, str]) -> Scenario:
    repo = init_repo(path)
    s = Scenario(repo, env)
    s.periscope("install-hooks")
    append_spool(
        repo,
        session_record("ses_main", "Fix the login flow", time=T0_MS),
        session_record("ses_sub", "Explore the auth module", parent_id="ses_main", time=T0_MS),
        session_record("ses_evil", EVIL_TITLE, time=T0_MS),
    )
    s.usage(3)
    s.commit("base", filename="base.txt")
    # amend twice
    s.usage(2, session="ses_sub")
    s.commit("one", filename="one.txt")
    s.usage(2)
    s.git("commit", "-q", "--amend", "-m", "one'")
    s.git("commit", "-q", "--amend", "-m", "one''")
    # a topic branch rebased interactively: pick, squash, drop (the dropped commit stays, unreachable)
    s.git("checkout", "-q", "-b", "topic")
    for i, n in enumerate((2, 3, 4)):
        s.usage(n, session="ses_evil" if i == 1 else "ses_main", cost=0.2)
        s.commit(f"topic {i}", filename=f"t{i}.txt")
    editor = "sed -i -e '2s/^pick/squash/' -e '3s/^pick/drop/'"
    s.git("rebase", "-q", "-i", "HEAD~3", env={"GIT_SEQUENCE_EDITOR": editor, "GIT_EDITOR": "true"})
    # a feature squash-merged into main
    s.git("checkout", "-q", "main")
    s.git("checkout", "-q", "-b", "feature")
    s.usage(3, session="ses_sub", cost=0.5)
    s.commit("feature work", filename="feature.txt")
    s.git("checkout", "-q", "main")
    s.git("merge", "-q", "--squash", "feature")
    s.usage(1)
    s.git("commit", "-q", "-m", "squashed feature")
    # a commit reset away (unreachable)
    s.usage(2, cost=1.5)
    s.commit("to reset", filename="reset.txt")
    s.git("reset", "-q", "--hard", "HEAD~1")
    for i in range(6):  # ordinary commits on main, a few messages each
        s.usage(1 + i % 3, cost=0.03)
        s.commit(f"main {i}", filename="main.txt")
    s.usage(2)  # not linked to a commit yet
    return s
