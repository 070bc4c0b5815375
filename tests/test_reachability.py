from __future__ import annotations

from periscope_hooks.reachability import unreachable
from testing.util import commit, git, init_repo


def test_reset_and_dropped_commits_are_unreachable(tmp_path):
    repo = init_repo(tmp_path / "r")
    a = commit(repo, "a")
    b = commit(repo, "b")
    git(repo, "reset", "-q", "--hard", a)
    assert unreachable(str(repo / ".git"), [a, b]) == {b}
    git(repo, "tag", "keep", b)
    assert unreachable(str(repo / ".git"), [a, b]) == set()


def test_failure_reports_nothing(tmp_path):
    assert unreachable(str(tmp_path), ["0" * 40]) == set()
    assert unreachable(str(tmp_path), []) == set()
