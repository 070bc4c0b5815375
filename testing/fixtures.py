"""pytest fixtures shared by the test modules: a pytest plugin (tests/conftest.py lists it in
`pytest_plugins`), so every test module sees them without importing them."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.delivery import point_config_at
from testing.receiver import Receiver
from testing.util import REPO_ROOT, git, home_env, init_repo, periscope, state_dir

# The sign-in redirect's port, one per pytest-xdist worker (gw0, gw1, ...), so that parallel
# workers never race for it; below the kernel's ephemeral range, so no test server's port(0)
# lands on it.  Serially: the first one.
LOGIN_PORT = 14600 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or 0)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Never touch the real home: HOME and XDG dirs in a temp dir, a pinned git author."""
    home = tmp_path_factory.mktemp("home")
    for var, value in home_env(home).items():
        monkeypatch.setenv(var, value)
    for var in [v for v in os.environ if v.startswith("PERISCOPE_") or v.startswith("GIT_DIR") or v == "GIT_WORK_TREE"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PERISCOPE_LOGIN_PORT", str(LOGIN_PORT))
    # subprocesses (the CLI, hooks, the fake browser) import `testing` and the package from here
    # (no empty element: Python reads one as the current folder, a test repository's work tree)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p))
    yield home


class Repo:
    """A real git repository with the periscope hooks installed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, **kw: Any) -> str:
        return git(self.path, *args, **kw)

    def flush(self) -> None:
        periscope("flush", cwd=self.path)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        self.flush()
        out = periscope("export", *(["--type", event_type] if event_type else []), cwd=self.path).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def commit_events(self) -> list[dict[str, Any]]:
        return self.events("commit")

    def report(self, by: str = "commit") -> list[dict[str, Any]]:
        return json.loads(periscope("report", "--by", by, "--format", "json", cwd=self.path).stdout)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    # A path with a space and quotes: the shim and every command must cope.
    path = init_repo(tmp_path / 'my repo\'s "work"')
    periscope("install-hooks", cwd=path)
    return Repo(path)


# git 2.47 (reftable, `git init --ref-format`), built once by scripts/install-git-for-tests.sh;
# scripts/test.sh exports its bin dir as PERISCOPE_TEST_GIT.  Resolved at import, before the
# isolated_home fixture changes HOME.
NEW_GIT_VERSION = "2.47.3"
NEW_GIT_BIN = os.environ.get("PERISCOPE_TEST_GIT") or os.path.expanduser(
    f"~/.cache/periscope-test/git-{NEW_GIT_VERSION}/bin"
)
# (git, ref storage): the system git with files; the new git with files and with reftable.
GIT_MATRIX = [("system", "files"), (NEW_GIT_VERSION, "files"), (NEW_GIT_VERSION, "reftable")]


def use_new_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the new git first on PATH; with CI set, a missing build fails the test (never skips)."""
    if not os.access(os.path.join(NEW_GIT_BIN, "git"), os.X_OK):
        message = f"git {NEW_GIT_VERSION} not found in {NEW_GIT_BIN} (run scripts/install-git-for-tests.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setenv("PATH", NEW_GIT_BIN + os.pathsep + os.environ["PATH"])


@pytest.fixture(params=GIT_MATRIX, ids=["-".join(p) for p in GIT_MATRIX])
def any_git_repo(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A repository with the hooks installed, on each git and ref storage of GIT_MATRIX."""
    version, ref_format = request.param
    if version != "system":
        use_new_git(monkeypatch)
    path = tmp_path / 'my repo\'s "work"'
    path.mkdir()
    git(path, "init", "-q", "-b", "main", *([f"--ref-format={ref_format}"] if ref_format != "files" else []))
    git(path, "remote", "add", "origin", "https://example.com/acme/widgets.git")
    periscope("install-hooks", cwd=path)
    return Repo(path)


@pytest.fixture
def state_conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh state.db (every migration applied), opened the one way the package opens it."""
    from periscope_hooks.state import open_state_db

    conn = open_state_db(tmp_path / "state")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def sd(tmp_path: Path) -> Path:
    """The state dir of a fresh repository (no hooks installed)."""
    return state_dir(init_repo(tmp_path / "r"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real ingest server on 127.0.0.1, and the user config pointing at it."""
    with Receiver() as r:
        point_config_at(r.url)
        yield r
