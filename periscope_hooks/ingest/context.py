"""What one ingest run knows about its repository: remote, repository id, per-worktree settings."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from periscope_hooks import git, logfile, paths, pricing, statedb
from periscope_hooks.ingest.queue import EventQueue, StoreNow
from periscope_hooks.ingest.spool_reader import BATCH_BYTES
from periscope_hooks.settings import RepoSettings, load_settings

REPO_ID_NAME = "repo-id"  # in the state dir, beside the spool


@dataclass
class IngestResult:
    records: int = 0
    messages: int = 0
    duplicates: int = 0
    sessions: int = 0
    commits: int = 0
    skipped: int = 0
    deferred: int = 0


@dataclass
class IngestContext:
    conn: sqlite3.Connection
    state_dir: Path
    result: IngestResult = field(default_factory=IngestResult)
    # SHAs whose git note is (re)written after the transaction commits: never inside the write lock.
    notes: list[str] = field(default_factory=list)
    common_dir: str | None = None
    _repo_url: str | None = None
    _repo_url_known: bool = False
    _repo_id: str | None = None
    _settings: dict[str, RepoSettings] = field(default_factory=dict)
    _worktrees: dict[str, str] = field(default_factory=dict)
    _prices: pricing.Pricer | None = None
    # Per batch (one transaction; another process may ingest between two): session rows by id,
    # and the message ids agent commits are waiting for (None: not loaded yet).
    _sessions: dict[Any, Any] = field(default_factory=dict)
    _held_ids: set[str] | None = None
    known_worktrees: set[str] = field(default_factory=set)  # paths whose identity this run stored
    # The flusher's local store, when it takes events as they are created (ingest/queue.py).
    store_now: StoreNow | None = None
    # Spool bytes per batch (one transaction); tests make it tiny to apply records one at a time.
    batch_bytes: int = BATCH_BYTES
    write_notes: bool = True  # False: a temporary state.db, whose commits' git notes are not written
    # False: a second read of a spool the real state.db read and logged already (a local store's
    # refill): its skips are not logged again.
    logs: bool = True
    events: EventQueue = field(init=False)

    def __post_init__(self) -> None:
        self.events = EventQueue(self.conn, self.store_now)
        if self.common_dir is None and (self.state_dir.parent / "HEAD").exists():
            self.common_dir = str(self.state_dir.parent)

    def start_batch(self) -> None:
        self.events.discard()  # a batch that rolled back took its events with it
        self._sessions.clear()
        self._held_ids = None

    def session(self, sid: Any) -> Any:
        """The stored session row (None: unknown), read once per batch."""
        if sid in self._sessions:
            return self._sessions[sid]
        row = statedb.session_row(self.conn, sid)
        self._sessions[sid] = row
        return row

    def forget_session(self, sid: Any) -> None:
        self._sessions.pop(sid, None)

    def forget_sessions(self) -> None:
        self._sessions.clear()

    def held_message_ids(self) -> set[str]:
        """Message ids that a held agent commit waits for: one query per batch, not per message."""
        if self._held_ids is None:
            self._held_ids = statedb.held_message_ids(self.conn)
        return self._held_ids

    @property
    def spool_path(self) -> str:
        return str(self.state_dir / paths.SPOOL_NAME)

    def log(self, message: str) -> None:
        if self.logs:
            logfile.log_line(self.state_dir / paths.HOOK_LOG_NAME, message)

    @property
    def repo_url(self) -> str | None:
        if not self._repo_url_known:
            self._repo_url = git.remote_url(self.common_dir) if self.common_dir else None
            self._repo_url_known = True
        return self._repo_url

    @property
    def repo_id(self) -> str:
        """The repository part of commit and rewrite event ids.  Fixed at first use in a file beside
        the spool (which outlives a rebuilt state.db), so that adding or changing a remote later
        never gives an already-sent commit a second id."""
        if self._repo_id is None:
            path = self.state_dir / REPO_ID_NAME
            try:
                self._repo_id = path.read_text(encoding="utf-8").strip() or None
            except OSError:
                pass
            if self._repo_id is None:
                self._repo_id = self.repo_url or f"local:{self.common_dir}"
                try:
                    tmp = path.with_name(f"{REPO_ID_NAME}.{os.getpid()}.tmp")
                    tmp.write_text(self._repo_id + "\n", encoding="utf-8")
                    os.replace(tmp, path)
                except OSError as e:
                    self.log(f"could not save {REPO_ID_NAME} ({e}); event ids use the current remote")
        return self._repo_id

    @property
    def prices(self) -> pricing.Pricer:
        """List prices (pricing.Pricer: genai-prices is imported only for a model not priced before)."""
        if self._prices is None:
            self._prices = pricing.Pricer(self.conn)
        return self._prices

    def settings(self, worktree: str) -> RepoSettings:
        s = self._settings.get(worktree)
        if s is None:
            s = self._settings[worktree] = load_settings(worktree)
            for problem in s.problems:
                self.log(problem)
        return s

    def worktree_of(self, cwd: str) -> str:
        """The worktree top holding `cwd` (the plugin sends the top already; older records may not)."""
        if not cwd.startswith("/"):
            # None, or a relative folder: one that would be found from wherever the flush runs,
            # not from what was recorded (a rebuild elsewhere gave it to another worktree).
            return ""
        wt = self._worktrees.get(cwd)
        if wt is None:
            wt = d = os.path.realpath(cwd)
            # A folder that is gone (a linked worktree moved or removed since) is taken as the top
            # it was recorded as: walked up, it landed in whatever holds it (the main worktree, for
            # a worktree kept inside the repository's folder; a dotfiles repository around a home
            # folder), which took its usage, and a rebuild decided otherwise than the first ingest.
            while os.path.exists(d):
                if os.path.exists(os.path.join(d, ".git")):
                    wt = d
                    break
                parent = os.path.dirname(d)
                if parent == d:
                    break
                d = parent
            self._worktrees[cwd] = wt
        return wt
