"""Ingest the spool into state.db and link usage to commits.

The spool is read from a stored byte offset inside the same transaction that
stores the new offset, so a crash re-reads and never skips.  Records are applied
in spool order, which is what makes attribution exact: a commit record takes the
messages of its worktree recorded before it; those after it wait for the next.
Everything is idempotent (messages by id, links by sha+kind+worktree, events by
event id), so re-reading a record, or the whole spool after a rebuild, changes
nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from periscope_hooks import events, git, logfile, outbox, paths, spool
from periscope_hooks.settings import RepoSettings, load_settings
from periscope_hooks.state import get_meta, now_ms, open_state_db, set_meta, transaction

BATCH_BYTES = 4 << 20
REPO_ID_NAME = "repo-id"  # in the state dir, beside the spool
TOKEN_FIELDS = events.TOKEN_FIELDS


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
class _After:
    """Work done after the transaction commits (git notes): never inside the write lock."""

    notes: list[str] = field(default_factory=list)  # SHAs whose note is (re)written


def classify_commit(subject: str) -> str | None:
    """The commit kind from HEAD's reflog subject; None for a rebase replay (takes no usage)."""
    head = subject.split(":", 1)[0]
    if (
        head.startswith("rebase")
        or head.startswith("pull --rebase")
        or head.endswith(("(pick)", "(reword)", "(squash)", "(fixup)", "(edit)"))
    ):
        return None
    if head == "commit (amend)":
        return "amend"
    if head == "commit (merge)":
        return "merge"
    if head.startswith("cherry-pick"):
        return "cherry-pick"
    if head.startswith("revert"):
        return "revert"
    return "commit"


class Processor:
    def __init__(self, conn: sqlite3.Connection, state_dir: Path) -> None:
        self.conn = conn
        self.state_dir = state_dir
        self.common_dir: str | None = str(state_dir.parent) if (state_dir.parent / "HEAD").exists() else None
        self._repo_url: str | None = None
        self._repo_url_known = False
        self._repo_id: str | None = None
        self._settings: dict[str, RepoSettings] = {}
        self._worktrees: dict[str, str] = {}
        self.after = _After()
        self.result = IngestResult()

    # --- helpers -----------------------------------------------------------------
    def log(self, message: str) -> None:
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

    def squash_abandoned(self, worktree: str, sha: str, squash_reflog: str | None) -> bool:
        """True when HEAD's reflog shows something (a reset, a checkout) between `merge --squash`
        and this commit.  Unknown (no reflog, an older record) counts as not abandoned."""
        if not squash_reflog:
            return False
        dirs = git.find_repo_dirs(worktree, env={}) if worktree and os.path.isdir(worktree) else None
        entries = git.read_reflog(dirs) if dirs else []
        at = max((i for i, e in enumerate(entries) if e[1] == sha), default=-1)
        if at <= 0:
            return False
        old, new, subject = entries[at - 1]
        recorded: list[str] = json.loads(squash_reflog)
        return [old, new, git.reflog_action(subject)] != recorded

    def settings(self, worktree: str) -> RepoSettings:
        s = self._settings.get(worktree)
        if s is None:
            s = self._settings[worktree] = load_settings(worktree)
            for problem in s.problems:
                self.log(problem)
        return s

    def worktree_of(self, cwd: str) -> str:
        """The worktree top holding `cwd` (the plugin sends the top already; older records may not)."""
        if not cwd:
            return ""
        wt = self._worktrees.get(cwd)
        if wt is None:
            wt = d = os.path.realpath(cwd)
            while True:
                if os.path.exists(os.path.join(d, ".git")):
                    wt = d
                    break
                parent = os.path.dirname(d)
                if parent == d:
                    break
                d = parent
            self._worktrees[cwd] = wt
        return wt

    def sessions_for(self, ids: list[str]) -> dict[str, Any]:
        return _sessions(self.conn, ids)

    # --- spool ---------------------------------------------------------------------
    def ingest_batch(self) -> bool:
        """Apply one batch of complete spool lines in one transaction; False when none were left."""
        spool_path = str(self.state_dir / paths.SPOOL_NAME)
        with transaction(self.conn):
            offset = int(get_meta(self.conn, "spool_offset", "0") or 0)
            try:
                st = os.stat(spool_path)
            except FileNotFoundError:
                return False
            ino = str(st.st_ino)
            stored_ino = get_meta(self.conn, "spool_ino")
            if (stored_ino is not None and stored_ino != ino) or st.st_size < offset:
                # The spool was replaced or truncated behind our back: re-read it whole
                # (everything is idempotent) rather than skip what the new file holds.
                self.log(f"spool was replaced (offset {offset}, size {st.st_size}); re-reading from the start")
                offset = 0
            lines, new_offset = spool.read_lines(spool_path, offset, BATCH_BYTES)
            if new_offset == offset:
                if stored_ino != ino:
                    set_meta(self.conn, "spool_ino", ino)
                return False
            for line_offset, raw in lines:
                self.apply_line(line_offset, raw)
            set_meta(self.conn, "spool_offset", str(new_offset))
            set_meta(self.conn, "spool_ino", ino)
        return True

    def apply_line(self, line_offset: int, raw: bytes) -> None:
        rec, garbage = spool.parse_line(raw)
        if garbage:
            self.result.skipped += 1
            n = int(get_meta(self.conn, "skipped_lines", "0") or 0) + 1
            set_meta(self.conn, "skipped_lines", str(n))
            # Offset and length only: a garbage line could hold anything.
            set_meta(self.conn, "last_skipped", f"byte {line_offset} ({len(raw)} bytes)")
            self.log(f"spool: skipped a malformed line at byte {line_offset} ({len(raw)} bytes)")
        if rec is None:
            return
        self.result.records += 1
        version = rec.get("v")
        if version != spool.SPOOL_VERSION:
            # A newer plugin wrote this: keep it for a newer periscope-hooks, don't drop it.
            self.conn.execute(
                "INSERT OR IGNORE INTO deferred_records (spool_offset, version, line) VALUES (?, ?, ?)",
                (line_offset, str(version), raw.decode("utf-8", "replace")),
            )
            self.result.deferred += 1
            return
        kind = rec.get("kind")
        try:
            if kind == "message":
                self.apply_message(rec, line_offset)
            elif kind == "session":
                self.apply_session(rec)
            elif kind == "commit":
                self.apply_commit(rec)
            elif kind == "reconcile":
                self.apply_reconcile(rec)
            else:
                self.conn.execute(
                    "INSERT OR IGNORE INTO deferred_records (spool_offset, version, line) VALUES (?, ?, ?)",
                    (line_offset, f"1/{kind}", raw.decode("utf-8", "replace")),
                )
                self.result.deferred += 1
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            self.result.skipped += 1
            n = int(get_meta(self.conn, "skipped_lines", "0") or 0) + 1
            set_meta(self.conn, "skipped_lines", str(n))
            set_meta(self.conn, "last_skipped", f"byte {line_offset}: {type(e).__name__}")
            self.log(f"spool: skipped an invalid {kind} record at byte {line_offset}: {type(e).__name__}: {e}")

    # --- records -------------------------------------------------------------------
    def apply_session(self, rec: dict[str, Any]) -> None:
        sid = str(rec["session_id"])
        self.conn.execute(
            "INSERT INTO sessions (id, title, parent_id, agent, time_ms) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET title = coalesce(excluded.title, title),"
            " parent_id = coalesce(excluded.parent_id, parent_id), agent = coalesce(excluded.agent, agent)",
            (sid, rec.get("title"), rec.get("parent_id"), rec.get("agent"), rec.get("time")),
        )
        self.result.sessions += 1

    def apply_message(self, rec: dict[str, Any], line_offset: int) -> None:
        mid = str(rec["id"])
        tokens = rec.get("tokens") or {}
        values = {f: int(tokens.get(f) or 0) for f in TOKEN_FIELDS}
        if any(v < 0 for v in values.values()):
            raise ValueError("negative token count")
        cost = float(rec.get("cost") or 0)
        gitinfo = rec.get("git") or {}
        worktree = self.worktree_of(str(rec.get("cwd") or ""))
        if worktree and not self.settings(worktree).capture:
            return
        held = self.conn.execute(
            "SELECT * FROM links WHERE agent_message_id = ? AND emitted = 0 ORDER BY id LIMIT 1", (mid,)
        ).fetchone()
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages (id, session_id, worktree, time_ms, provider, model, agent, input, output,"
            " reasoning, cache_read, cache_write, cost, branch, sha, spool_offset, link_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                mid,
                rec.get("session_id"),
                worktree,
                rec.get("time"),
                rec.get("provider"),
                rec.get("model"),
                rec.get("agent"),
                *values.values(),
                cost,
                gitinfo.get("branch"),
                gitinfo.get("sha"),
                line_offset,
                held["id"] if held is not None else None,
            ),
        )
        if cur.rowcount == 0:
            self.result.duplicates += 1
            return
        self.result.messages += 1
        if rec.get("session_id"):
            self.conn.execute("INSERT OR IGNORE INTO sessions (id) VALUES (?)", (rec["session_id"],))
        msg = self.conn.execute("SELECT * FROM messages WHERE id = ?", (mid,)).fetchone()
        session = self.sessions_for([msg["session_id"]]).get(msg["session_id"])
        outbox.enqueue(self.conn, events.message_event(msg, session, self.repo_url if worktree else None))
        if held is not None:
            self.emit_link(held, note=None)

    def apply_commit(self, rec: dict[str, Any]) -> None:
        hook = rec["hook"]
        worktree = str(rec.get("worktree") or "")
        if worktree and not self.settings(worktree).capture:
            return
        if hook == "post-rewrite":
            self.apply_rewrite(rec)
            return
        sha = rec.get("sha")
        if not sha:
            self.log(f"{hook}: no HEAD commit recorded; skipped")
            return
        reflog = rec.get("reflog") or {}
        subject = reflog.get("subject") or "" if reflog.get("new") == sha else ""
        squash_row = self.conn.execute(
            "SELECT squash_pending, squash_reflog FROM worktree_state WHERE worktree = ?", (worktree,)
        ).fetchone()
        if hook == "post-merge":
            if rec.get("squash"):
                last = json.dumps([reflog.get("old"), reflog.get("new"), reflog.get("subject") or ""])
                self.conn.execute(
                    "INSERT INTO worktree_state (worktree, squash_pending, squash_reflog) VALUES (?, 1, ?)"
                    " ON CONFLICT(worktree) DO UPDATE SET squash_pending = 1, squash_reflog = excluded.squash_reflog",
                    (worktree, last),
                )
                return
            if "fast-forward" in subject.lower():
                return  # no new commit: usage stays pending for the next commit
            kind: str | None = "merge"
        else:
            kind = classify_commit(subject) if subject else ("commit" if not rec.get("rebasing") else None)
            if kind is None:
                return  # a rebase replays commits; their usage follows through post-rewrite
            if kind == "commit" and squash_row is not None and squash_row["squash_pending"]:
                if not self.squash_abandoned(worktree, sha, squash_row["squash_reflog"]):
                    kind = "squash"
                self.conn.execute("UPDATE worktree_state SET squash_pending = 0 WHERE worktree = ?", (worktree,))
        try:
            parents = git.commit_parents(self.common_dir, sha) if self.common_dir else []
        except git.GitError as e:
            self.log(f"{hook}: could not read the parents of {sha[:12]}: {e}")
            parents = []
        if kind == "commit" and len(parents) > 1:
            kind = "merge"
        if hook == "post-merge" and parents and len(parents) < 2:
            return  # not a merge commit (a fast-forward without the usual reflog subject)
        agent = rec.get("agent") or None
        origin = "agent" if agent else "human"
        time_ms = int(rec.get("time") or now_ms())
        settings = self.settings(worktree)
        pending = self.conn.execute(
            "SELECT count(*), max(time_ms) FROM messages WHERE worktree = ? AND link_id IS NULL", (worktree,)
        ).fetchone()
        if not pending[0] and origin == "human":
            last = self.conn.execute("SELECT max(time_ms) FROM messages WHERE worktree = ?", (worktree,)).fetchone()[0]
            if last is None or time_ms - int(last) > settings.idle_window_minutes * 60_000:
                return  # no AI session active in this worktree lately: not an AI-related commit
        message_id = (agent or {}).get("message_id")
        hold_until = None
        if message_id:
            known = self.conn.execute("SELECT link_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            reserved = self.conn.execute(
                "SELECT 1 FROM links WHERE agent_message_id = ? AND emitted = 0", (message_id,)
            ).fetchone()
            if known is None and reserved is None:
                hold_until = time_ms + int(settings.agent_hold_minutes * 60_000)
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO links (worktree, sha, current_sha, kind, origin, branch, parents, time_ms,"
            " agent_session_id, agent_message_id, hold_until_ms, emitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                worktree,
                sha,
                sha,
                kind,
                origin,
                rec.get("branch"),
                json.dumps(parents),
                time_ms,
                (agent or {}).get("session_id"),
                message_id if hold_until else None,
                hold_until,
            ),
        )
        if cur.rowcount == 0:
            return  # this commit record was applied before
        link_id = cur.lastrowid
        self.conn.execute("UPDATE messages SET link_id = ? WHERE worktree = ? AND link_id IS NULL", (link_id, worktree))
        self.result.commits += 1
        if hold_until is None:
            link = self.conn.execute("SELECT * FROM links WHERE id = ?", (link_id,)).fetchone()
            self.emit_link(link, note=None)

    def emit_link(self, link: sqlite3.Row, note: str | None) -> None:
        msgs = self.conn.execute(
            "SELECT * FROM messages WHERE link_id = ? ORDER BY spool_offset", (link["id"],)
        ).fetchall()
        agent = None
        if link["origin"] == "agent":
            included = link["agent_message_id"] is None or any(m["id"] == link["agent_message_id"] for m in msgs)
            agent = {"session_id": link["agent_session_id"], "message_included": included}
        event = events.commit_event(
            repo_id=self.repo_id,
            repo_url=self.repo_url,
            branch=link["branch"],
            sha=link["sha"],
            parents=json.loads(link["parents"]),
            kind=link["kind"],
            origin=link["origin"],
            time_ms=link["time_ms"],
            messages=msgs,
            sessions=self.sessions_for([m["session_id"] for m in msgs]),
            agent=agent,
            note=note,
        )
        outbox.enqueue(self.conn, event)
        self.conn.execute("UPDATE links SET emitted = 1, note = ? WHERE id = ?", (note, link["id"]))
        if self.common_dir and self.settings(link["worktree"] or "").notes:
            self.after.notes.append(link["current_sha"])

    def apply_rewrite(self, rec: dict[str, Any]) -> None:
        pairs = [[str(o), str(n)] for o, n in (rec.get("pairs") or [])]
        if not pairs:
            return
        command = str(rec.get("command") or "rebase")
        time_ms = int(rec.get("time") or now_ms())
        mapping = dict((o, n) for o, n in pairs)
        for o, n in pairs:
            self.conn.execute(
                "INSERT INTO rewrites (command, old_sha, new_sha, time_ms) VALUES (?, ?, ?, ?)",
                (command, o, n, time_ms),
            )
        # One pass over the links, so a chain inside one rewrite never moves a link twice.
        marks = ",".join("?" * len(mapping))
        for row in self.conn.execute(
            f"SELECT id, current_sha FROM links WHERE current_sha IN ({marks})", list(mapping)
        ).fetchall():
            self.conn.execute("UPDATE links SET current_sha = ? WHERE id = ?", (mapping[row["current_sha"]], row["id"]))
        outbox.enqueue(
            self.conn,
            events.rewrite_event(
                repo_id=self.repo_id, repo_url=self.repo_url, command=command, pairs=pairs, time_ms=time_ms
            ),
        )
        worktree = str(rec.get("worktree") or "")
        if self.common_dir and self.settings(worktree).notes:
            # The replacements' notes are rewritten whole from the database, so they
            # carry the moved usage exactly once.
            targets = sorted(set(mapping.values()))
            moved = {
                r[0]
                for r in self.conn.execute(
                    f"SELECT DISTINCT current_sha FROM links WHERE current_sha IN ({','.join('?' * len(targets))})",
                    targets,
                )
            }
            self.after.notes.extend(sorted(moved))

    def apply_reconcile(self, rec: dict[str, Any]) -> None:
        """A move decided by reconciliation (periscope_hooks/reconcile.py), replayed as recorded."""
        from periscope_hooks import reconcile

        command = str(rec["command"])
        if command not in reconcile.COMMANDS:
            raise ValueError(f"unknown reconcile command {command!r}")
        time_ms = int(rec["time"])
        pairs = reconcile.apply_pairs(self.conn, command, [(str(o), str(n)) for o, n in rec["pairs"]], time_ms)
        if not pairs:
            return  # moved before (a decision recorded twice, or a rewrite since): nothing to announce
        outbox.enqueue(
            self.conn,
            events.rewrite_event(
                repo_id=self.repo_id, repo_url=self.repo_url, command=command, pairs=pairs, time_ms=time_ms
            ),
        )
        if self.common_dir:
            targets = sorted({n for _, n in pairs})
            for worktree, sha in self.conn.execute(
                f"SELECT DISTINCT worktree, current_sha FROM links WHERE current_sha IN ({','.join('?' * len(targets))})",
                targets,
            ).fetchall():
                if self.settings(worktree or "").notes:
                    self.after.notes.append(sha)

    def release_expired_holds(self, now: int | None = None) -> int:
        now = now_ms() if now is None else now
        with transaction(self.conn):
            rows = self.conn.execute(
                "SELECT * FROM links WHERE emitted = 0 AND hold_until_ms IS NOT NULL AND hold_until_ms <= ?", (now,)
            ).fetchall()
            for link in rows:
                self.emit_link(
                    link,
                    note=f"in-flight message {link['agent_message_id']} was not recorded in time; emitted without it",
                )
        return len(rows)

    def run_after(self) -> None:
        if not self.after.notes or not self.common_dir:
            return
        try:
            from periscope_hooks import notes

            for sha in dict.fromkeys(self.after.notes):
                data = commit_summary(self.conn, sha)
                if data is not None:
                    notes.write_note(self.common_dir, sha, data)
        except Exception as e:  # notes are a convenience; the state is already committed
            logfile.log_line(self.state_dir / paths.HOOK_LOG_NAME, "writing git notes failed", exc=e)
        self.after = _After()


def _sessions(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sid in set(ids):
        row = conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        if row is not None:
            out[sid] = row
    return out


def commit_summary(conn: sqlite3.Connection, sha: str) -> dict[str, Any] | None:
    """Everything linked to a commit, including usage moved to it from rewritten commits
    (what `periscope report` and the git notes show)."""
    links = conn.execute("SELECT * FROM links WHERE current_sha = ? ORDER BY id", (sha,)).fetchall()
    if not links:
        return None
    ids = [link["id"] for link in links]
    msgs = conn.execute(
        f"SELECT * FROM messages WHERE link_id IN ({','.join('?' * len(ids))}) ORDER BY spool_offset", ids
    ).fetchall()
    # The commit's own link (made when it was created) describes it.
    own = next((link for link in reversed(links) if link["sha"] == sha), links[-1])
    return {
        "sha": sha,
        "kind": own["kind"],
        "origin": own["origin"],
        "branch": own["branch"],
        **events.usage_summary(msgs, _sessions(conn, [m["session_id"] for m in msgs])),
    }


def process_spool(state_dir: Path, conn: sqlite3.Connection | None = None) -> IngestResult:
    """Ingest everything the spool holds, link it, and release expired agent-commit holds."""
    own = conn is None
    conn = conn or open_state_db(state_dir)
    try:
        p = Processor(conn, state_dir)
        while p.ingest_batch():
            p.run_after()
        p.release_expired_holds()
        p.run_after()
        return p.result
    finally:
        if own:
            conn.close()
