"""A forge built from plain git: a bare "forge" repository, a developer clone with the periscope
hooks installed, and a second clone that plays the forge's web side (squash merge, rebase
merge, merge commit, a conflict resolved in the web editor), committing as "GitHub"."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from testing.util import append_spool, git, message_record, periscope, state_dir

FORGE_ENV = {"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}
OTHER_ENV = {
    "GIT_AUTHOR_NAME": "Other Dev",
    "GIT_AUTHOR_EMAIL": "other@example.com",
    "GIT_COMMITTER_NAME": "Other Dev",
    "GIT_COMMITTER_EMAIL": "other@example.com",
}


def numbered(n: int = 60, prefix: str = "line") -> str:
    return "".join(f"{prefix} {i}\n" for i in range(1, n + 1))


class Forge:
    def __init__(self, root: Path) -> None:
        self.bare = root / "forge.git"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        self.web = root / "web"
        git(root, "clone", "-q", str(self.bare), str(self.web))
        for name in ("a.txt", "b.txt", "c.txt"):
            (self.web / name).write_text(numbered(prefix=name))
        git(self.web, "add", ".")
        git(self.web, "commit", "-q", "-m", "initial")
        git(self.web, "push", "-q", "origin", "main")
        self.dev = root / "dev"
        git(root, "clone", "-q", str(self.bare), str(self.dev))
        periscope("install-hooks", cwd=self.dev)
        self._n = 0

    # --- the developer ------------------------------------------------------------------
    def edit(self, repo: Path, name: str, line: int, text: str) -> None:
        path = repo / name
        lines = path.read_text().splitlines(keepends=True)
        while len(lines) < line:
            lines.append("\n")
        lines[line - 1] = text + "\n"
        path.write_text("".join(lines))

    def dev_commit(
        self, name: str, line: int, text: str | None = None, *, usage: bool = True, env: dict[str, str] | None = None
    ) -> str:
        """Change one line (or a few, `text` may hold newlines) and commit with AI usage."""
        self._n += 1
        if usage:
            append_spool(self.dev, message_record(self.dev, id=f"msg_forge_{id(self)}_{self._n}", cost=0.01 * self._n))
        self.edit(self.dev, name, line, text or f"dev change {self._n}")
        git(self.dev, "add", name)
        git(self.dev, "commit", "-q", "-m", f"dev commit {self._n}", env=env)
        return git(self.dev, "rev-parse", "HEAD")

    def branch(self, name: str) -> None:
        git(self.dev, "checkout", "-q", "-b", name, "origin/main")

    def push(self, branch: str) -> None:
        git(self.dev, "push", "-q", "origin", branch)

    def pull_main(self, *, delete: str | None = None, prune: bool = True) -> None:
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "pull", "-q", *(["--prune"] if prune else []), "--ff-only", "origin", "main")
        if delete:
            git(self.dev, "branch", "-q", "-D", delete)

    # --- the forge's web side -----------------------------------------------------------
    def web_commit(self, name: str, line: int, text: str, env: dict[str, str] | None = None) -> str:
        """Main moves: someone else's change, pushed."""
        git(self.web, "pull", "-q", "--ff-only", "origin", "main")
        self.edit(self.web, name, line, text)
        git(self.web, "add", name)
        git(self.web, "commit", "-q", "-m", f"main: {text}", env=OTHER_ENV if env is None else env)
        git(self.web, "push", "-q", "origin", "main")
        return git(self.web, "rev-parse", "HEAD")

    def _fresh(self, branch: str) -> None:
        git(self.web, "fetch", "-q", "origin")
        git(self.web, "checkout", "-q", "main")
        git(self.web, "reset", "-q", "--hard", "origin/main")

    def squash_merge(
        self, branch: str, number: int, resolve: dict[str, str] | None = None, *, delete_branch: bool = True
    ) -> str:
        """GitHub's Squash and merge: one commit "Title (#N)" by the PR's author, whose tree is
        the merge result (`resolve` gives file contents for a conflict resolved in the editor)."""
        self._fresh(branch)
        author = git(self.web, "log", "-1", "--format=%an <%ae>", f"origin/{branch}")
        git(self.web, "merge", "--squash", f"origin/{branch}", check=not resolve)
        for name, content in (resolve or {}).items():
            (self.web / name).write_text(content)
            git(self.web, "add", name)
        git(self.web, "commit", "-q", "--author", author, "-m", f"Title (#{number})", env=FORGE_ENV)
        git(self.web, "push", "-q", "origin", "main")
        if delete_branch:
            git(self.web, "push", "-q", "origin", "--delete", branch)
        return git(self.web, "rev-parse", "HEAD")

    def rebase_merge(self, branch: str) -> list[str]:
        """GitHub's Rebase and merge: each commit replayed on main with a new committer."""
        self._fresh(branch)
        base = git(self.web, "rev-parse", "main")
        git(self.web, "checkout", "-q", "-B", "pr", f"origin/{branch}")
        git(self.web, "-c", "core.hooksPath=/dev/null", "rebase", "-q", "main", env=FORGE_ENV)
        git(self.web, "checkout", "-q", "main")
        git(self.web, "merge", "-q", "--ff-only", "pr")
        git(self.web, "push", "-q", "origin", "main")
        git(self.web, "push", "-q", "origin", "--delete", branch)
        return git(self.web, "rev-list", "--reverse", f"{base}..main").split()

    def merge_commit(self, branch: str) -> str:
        """GitLab's merge commit: the branch's commits stay as they are."""
        self._fresh(branch)
        git(self.web, "merge", "-q", "--no-ff", "-m", f"Merge branch '{branch}' into 'main'", f"origin/{branch}")
        git(self.web, "push", "-q", "origin", "main")
        return git(self.web, "rev-parse", "HEAD")

    # --- what periscope made of it --------------------------------------------------------
    def reconcile(self) -> Any:
        from periscope_hooks import reconcile, statedb
        from periscope_hooks.ingest import process_spool
        from periscope_hooks.state import open_state_db

        conn = open_state_db(state_dir(self.dev))
        try:
            process_spool(state_dir(self.dev), conn)
            outcome = reconcile.run(conn, state_dir(self.dev))
            if outcome.ran and not outcome.error:
                # The status cache, built on the last run's (only what changed is asked about),
                # says what asking git about every linked commit says.
                common = str(state_dir(self.dev).parent)
                scratch = reconcile.place(common, reconcile.read_refs(common), statedb.linked_commits(conn))
                assert statedb.reconcile_status(conn) == {
                    sha: (bool(r), bool(s)) for sha, (r, s) in scratch.status().items()
                }
            return outcome
        finally:
            conn.close()

    def where(self) -> dict[str, str]:
        """Each linked commit -> the commit its usage is on now."""
        conn = sqlite3.connect(state_dir(self.dev) / "state.db")
        try:
            return dict(conn.execute("SELECT sha, current_sha FROM links").fetchall())
        finally:
            conn.close()

    def rewrite_events(self) -> list[dict[str, Any]]:
        import json

        conn = sqlite3.connect(state_dir(self.dev) / "state.db")
        try:
            bodies = [r[0] for r in conn.execute("SELECT body FROM outbox WHERE type = 'rewrite' ORDER BY seq")]
        finally:
            conn.close()
        return [json.loads(b) for b in bodies]
