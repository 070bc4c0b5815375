"""pytest fixtures shared by the test modules (imported from tests/conftest.py)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.util import git, init_repo, periscope


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


@pytest.fixture
def state_conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh state.db (every migration applied), opened the one way the package opens it."""
    from periscope_hooks.state import open_state_db

    conn = open_state_db(tmp_path / "state")
    try:
        yield conn
    finally:
        conn.close()
