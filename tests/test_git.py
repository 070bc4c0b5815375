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
        # a password with an unencoded `/`, `#` or `?` ended the authority before its `@` (a sweep)
        ("https://alice:tok/Secret1@host.example/org/x.git", "https://host.example/org/x.git"),
        ("https://alice:tok#Secret2@host.example/org/x.git", "https://host.example/org/x.git"),
        ("https://alice:t?Secret3@host.example:8443/x.git", "https://host.example:8443/x.git"),
        ("https://host.example/org/x@v1.git", "https://host.example/org/x@v1.git"),  # an @ in a path
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


# --- run_git: the one wrapper ---------------------------------------------------------------------


def test_run_git_finds_the_repository_from_its_arguments_not_from_a_hooks_environment(tmp_path, monkeypatch):
    """Inside a hook, git exports GIT_DIR, GIT_INDEX_FILE, GIT_PREFIX...: they must not redirect us."""
    ours = init_repo(tmp_path / "ours")
    other = init_repo(tmp_path / "other")
    commit(ours, "one")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "no-such-index"))
    assert g.run_git(["rev-parse", "--show-toplevel"], cwd=str(ours)).strip() == str(ours.resolve())
    assert g.run_git(["rev-list", "--count", "HEAD"], git_dir=str(ours / ".git")).strip() == "1"
    assert g.rev_parse_dirs(str(ours)).worktree == str(ours.resolve())


def test_run_git_keeps_the_users_git_settings(tmp_path, monkeypatch):
    """`git -c` settings (GIT_CONFIG_PARAMETERS) and GIT_CONFIG_GLOBAL are the user's: kept."""
    repo = init_repo(tmp_path / "r")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'periscope.fromdashc'='yes'")
    assert g.run_git(["config", "periscope.fromdashc"], cwd=str(repo)).strip() == "yes"
    env = g.no_git_env(
        {"GIT_DIR": "x", "GIT_INDEX_FILE": "y", "GIT_CONFIG_GLOBAL": "z", "GIT_SSH_COMMAND": "s", "A": "1"}
    )
    assert env == {"GIT_CONFIG_GLOBAL": "z", "GIT_SSH_COMMAND": "s", "A": "1"}


def test_run_git_has_one_error_type(tmp_path):
    repo = init_repo(tmp_path / "r")
    with pytest.raises(g.GitError) as failed:
        g.run_git(["rev-parse", "--verify", "no-such-ref"], cwd=str(repo))
    assert failed.value.returncode == 128 and failed.value.stderr.startswith("fatal:")
    assert str(failed.value) == f"git rev-parse --verify failed: {failed.value.stderr}"
    assert g.run_git(["rev-parse", "--verify", "-q", "no-such-ref"], cwd=str(repo), check=False) == ""
    with pytest.raises(g.GitError, match="no answer within 0.5 s"):
        g.run_git(["-c", "alias.slow=!sleep 5", "slow"], cwd=str(repo), timeout=0.5)
    with pytest.raises(g.GitError):
        g.run_git(["status"], cwd=str(tmp_path / "gone"))


def test_run_git_passes_input_and_decodes_any_bytes(tmp_path):
    repo = init_repo(tmp_path / "r")
    sha = g.run_git(["hash-object", "-w", "--stdin"], cwd=str(repo), input="caf\u00e9\n").strip()
    (repo / "latin1.txt").write_bytes(b"caf\xe9\n")  # not UTF-8: replaced, never an exception
    blob = g.run_git(["hash-object", "-w", "latin1.txt"], cwd=str(repo)).strip()
    assert g.run_git(["cat-file", "-p", sha], cwd=str(repo)) == "caf\u00e9\n"
    assert g.run_git(["cat-file", "-p", blob], cwd=str(repo)) == "caf\ufffd\n"
