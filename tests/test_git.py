from __future__ import annotations

import os

import pytest

from periscope_hooks import git as g
from testing.util import commit, git, init_repo


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://user:tok@host.example/x.git", "https://host.example/x.git"),
        ("https://ghp_secret@github.com/org/x.git", "https://github.com/org/x.git"),
        ("https://host.example:8443/x.git?private_token=abc#frag", "https://host.example:8443/x.git"),
        ("ssh://git:pw@host.example:22/org/x.git", "ssh://host.example:22/org/x.git"),
        ("git@github.com:org/x.git", "github.com:org/x.git"),
        ("github.com:org/x.git", "github.com:org/x.git"),
        ("user:hunter2@host.example:org/x.git", "host.example:org/x.git"),  # scp-style with a password
        ("deploy:p:w@host.example:x.git", "host.example:x.git"),
        ("../relative/x.git", "../relative/x.git"),
        ("/srv/git/x.git", "/srv/git/x.git"),
        ("file:///srv/git/x.git", "file:///srv/git/x.git"),
    ],
)
def test_sanitize_url(url, expected):
    assert g.sanitize_url(url) == expected


def test_repo_dirs_head_and_reflog_from_files(tmp_path):
    repo = init_repo(tmp_path / "r")
    sha = commit(repo, "one")
    dirs = g.find_repo_dirs(str(repo / "."), env={})
    assert dirs.worktree == os.path.realpath(repo) and dirs.common_dir == dirs.git_dir
    assert g.read_head(dirs) == (sha, "main")
    old, new, subject = g.read_last_reflog(dirs)
    assert new == sha and subject.startswith("commit (initial)")
    git(repo, "pack-refs", "--all")  # refs only in packed-refs now
    assert g.read_head(dirs) == (sha, "main")
    git(repo, "checkout", "-q", "--detach")
    assert g.read_head(dirs) == (sha, None)


def test_linked_worktree_dirs(tmp_path):
    repo = init_repo(tmp_path / "r")
    commit(repo, "one")
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(wt))
    dirs = g.find_repo_dirs(str(wt), env={})
    assert dirs.common_dir == os.path.realpath(repo / ".git")
    assert dirs.git_dir.startswith(os.path.realpath(repo / ".git" / "worktrees"))
    assert g.read_head(dirs)[1] == "side"
    assert g.rev_parse_dirs(str(wt)).common_dir == dirs.common_dir


def test_not_a_repository(tmp_path):
    assert g.find_repo_dirs(str(tmp_path), env={}) is None
    assert g.rev_parse_dirs(str(tmp_path)) is None


def test_remote_url_is_sanitized(tmp_path):
    repo = init_repo(tmp_path / "r", remote="https://me:hunter2@example.com/a/b.git")
    assert g.remote_url(str(repo / ".git")) == "https://example.com/a/b.git"
