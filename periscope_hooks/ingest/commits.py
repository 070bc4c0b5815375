"""Commit records: link a worktree's pending usage to a new commit and queue its event.

The decisions are rules.py's; this module gathers their inputs (from the record, and
from state.db for what earlier records decided) and stores the outcome.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from periscope_hooks import events, git, statedb
from periscope_hooks.ingest import rules
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import Commit, Rewrite, squash_reflog_json
from periscope_hooks.ingest.worktrees import learn

PARENTS_CHUNK = 500  # SHAs per `git log --no-walk` call


def lookup_parents(ctx: IngestContext, shas: Iterable[str]) -> dict[str, list[str]]:
    """Parents of the commits a batch's records name but did not record: one git call per
    PARENTS_CHUNK commits (not one `git rev-list` per commit, which cost ~2 ms each).
    Unknown SHAs (gone, or never in this repository) are left out."""
    wanted = list(dict.fromkeys(shas))
    found: dict[str, list[str]] = {}
    if not wanted or not ctx.common_dir:
        return found
    for i in range(0, len(wanted), PARENTS_CHUNK):
        chunk = wanted[i : i + PARENTS_CHUNK]
        try:
            out = git.run_git(
                ["log", "--no-walk=unsorted", "--ignore-missing", "--format=%H %P", *chunk], git_dir=ctx.common_dir
            )
        except git.GitError as e:
            ctx.log(f"could not read the parents of {len(chunk)} commit(s): {e}")
            continue
        for line in out.splitlines():
            parts = line.split()
            if parts:
                found[parts[0]] = parts[1:]
    return found


def recorded_parents(rec: Commit) -> list[str] | None:
    """The commit's parents as its record tells them (its own, or its reflog entry's), or None:
    then git is asked (lookup_parents)."""
    if rec.parents is not None:
        return list(rec.parents)
    return rules.parents_from_reflog(rec.subject, rec.reflog[0])


def parents_of(rec: Commit, parents_found: dict[str, list[str]]) -> list[str]:
    """The commit's parents: as recorded, else as lookup_parents found them ([] when unknown)."""
    recorded = recorded_parents(rec)
    if recorded is not None:
        return recorded
    return parents_found.get(rec.sha or "", [])


def _live_reflog_before(worktree: str, sha: str) -> list[str | None] | None:
    """For records older than `reflog_prev`: the HEAD reflog entry before `sha`'s, read now."""
    dirs = git.find_repo_dirs(worktree, env={}) if worktree and os.path.isdir(worktree) else None
    entries = git.read_reflog(dirs) if dirs else []
    at = max((i for i, e in enumerate(entries) if e[1] == sha), default=-1)
    if at <= 0:
        return None
    old, new, subject = entries[at - 1]
    return [old, new, git.reflog_action(subject)]


def _is_squash(rec: Commit, squash_reflog: str | None) -> bool:
    """The first commit after `merge --squash` is the squash, unless the squash was abandoned."""
    if not squash_reflog:
        return True  # unknown (an older record): counts as not abandoned
    assert rec.sha is not None
    if rec.has_reflog_prev:
        before = list(rec.reflog_prev) if rec.reflog_prev is not None and rec.reflog[1] == rec.sha else None
    else:
        before = _live_reflog_before(rec.worktree, rec.sha)
    return not rules.squash_abandoned(before, json.loads(squash_reflog))


def apply_commit(ctx: IngestContext, rec: Commit, parents_found: dict[str, list[str]]) -> None:
    conn = ctx.conn
    worktree = rec.worktree
    if worktree and not ctx.settings(worktree).capture:
        return
    learn(ctx, worktree)
    sha = rec.sha
    if not sha:
        ctx.log(f"{rec.hook}: no HEAD commit recorded; skipped")
        return
    ended = rules.rebase_ended(rec.rebasing, rec.reflog_prev)
    if ended is not None:
        _settle_an_ended_rebase(ctx, worktree, *ended, rec.time)
    if rec.rebase_stop:
        # The commit an `edit` stop stopped at lives on as the one its pick left (rules.rebase_moves).
        statedb.add_rebase_facts(conn, worktree, "stop", [list(rec.rebase_stop)])
    if rec.rebasing and rec.rebase_break and rec.subject and not rec.subject.startswith("rebase"):
        # Made by the user (`commit`, `cherry-pick`...) at a `break` or by an `exec`: no pick's
        # replacement, whatever git maps to it later.  The sequencer's own commits (a squash or
        # reword it commits through `git commit`: `rebase (squash)`) run the hook there too.
        statedb.add_rebase_facts(conn, worktree, "break", [[sha, sha]])
    if rec.hook == "post-merge" and rec.squash:
        statedb.set_squash_pending(conn, worktree, squash_reflog_json(rec.reflog))
        return
    kind = rules.base_kind(rec.hook, rec.subject, rec.rebasing)
    if kind is None:
        return
    if kind == "cherry-pick":
        statedb.remember_cherry_pick(conn, sha)  # a copy, AI-related or not (reconcile.py)
    if kind == "commit" and rec.hook != "post-merge":
        squash = statedb.squash_state(conn, worktree)
        if squash is not None and squash["squash_pending"]:
            if _is_squash(rec, squash["squash_reflog"]):
                kind = "squash"
            statedb.clear_squash_pending(conn, worktree)
    if rec.rebasing and kind != "amend" and rec.reflog[1] == sha and rec.reflog[0]:
        # A commit made at a rebase's stop: its first parent, as the reflog recorded it (what the
        # rebase's own post-rewrite is judged by: rules.rebase_moves).
        statedb.add_rebase_facts(conn, worktree, "parent", [[str(rec.reflog[0]), sha]])
    parents = parents_of(rec, parents_found)
    final_kind = rules.kind_from_parents(kind, rec.hook, parents)
    if final_kind is None:
        return
    origin = "agent" if rec.agent else "human"
    settings = ctx.settings(worktree)
    pending, _ = statedb.pending_summary(conn, worktree)
    last = statedb.last_message_time(conn, worktree) if not pending and origin == "human" else None
    if not rules.within_idle_window(origin, pending, last, rec.time, settings.idle_window_minutes):
        return  # no AI session active in this worktree lately: not an AI-related commit
    message_id = rec.agent_message_id
    if not message_id and rec.agent_tool_use_id:
        # Claude Code names the tool call that ran the commit: the message holding it, once
        # recorded, is the in-flight message; until then the commit waits for the call.
        tool_use_id = str(rec.agent_tool_use_id)
        message_id = statedb.message_for_tool_use(conn, tool_use_id) or tool_use_id
    hold_until = None
    if message_id:
        hold_until = rules.hold_until(
            message_id,
            statedb.message_is_known(conn, message_id),
            statedb.held_link_for_message(conn, message_id) is not None,
            rec.time,
            settings.agent_hold_minutes,
        )
    link_id = statedb.insert_link(
        conn,
        worktree=worktree,
        sha=sha,
        kind=final_kind,
        origin=origin,
        branch=rec.branch,
        parents_json=json.dumps(parents),
        time_ms=rec.time,
        agent_session_id=rec.agent_session_id,
        # Kept whether or not the commit waits: another commit may have taken the message first
        # (a human commit made while the agent's command ran), and the event then says so.
        agent_message_id=message_id if origin == "agent" else None,
        hold_until_ms=hold_until,
    )
    if link_id is None:  # this commit was linked before
        _say_if_a_commit_went_unrecorded(ctx, rec, sha)
        return
    msgs = statedb.link_pending_messages_for_event(conn, link_id, worktree)
    ctx.result.commits += 1
    if hold_until is None:
        emit_link(ctx, statedb.link(conn, link_id), note=None, msgs=msgs)
    else:
        ctx.held_message_ids().add(message_id)


def _say_if_a_commit_went_unrecorded(ctx: IngestContext, rec: Commit, sha: str) -> None:
    """git hands post-commit no SHA: the hook reads HEAD.  Two commits made in one worktree within
    milliseconds (two agents at once) can both have their hooks read the second, and the first is
    never recorded: its usage goes to the second (a sweep with both real agents).  Which hook was
    whose cannot be told afterwards, so nothing is moved; the second record of a commit made right
    after another commit says so in the log."""
    prev = rec.reflog_prev
    if rec.hook != "post-commit" or rec.reflog[1] != sha or prev is None:
        return
    if prev[1] == rec.reflog[0] and str(prev[2]).startswith("commit"):  # made right after a commit
        ctx.log(
            f"post-commit: a second record names {sha[:12]}: two commits made at the same moment in"
            f" {rec.worktree}? {str(prev[1])[:12]} may not have been recorded (its usage is on {sha[:12]})"
        )


def emit_link(
    ctx: IngestContext,
    link: sqlite3.Row | dict[str, Any],
    note: str | None,
    msgs: Sequence[events.EventMessage] | None = None,
    *,
    stored_emitted: bool = False,
) -> None:
    """Queue a link's commit event; `link`: its row (or the same keys, ingest/bulk.py); `msgs`: its
    messages as link_messages_for_event reads them (events.EVENT_MESSAGE_FIELDS);
    `stored_emitted`: the link was inserted marked emitted (with no note), nothing to update."""
    conn = ctx.conn
    if msgs is None:
        msgs = statedb.link_messages_for_event(conn, link["id"])
    agent = None
    if link["origin"] == "agent":
        in_flight = link["agent_message_id"]
        included = in_flight is None or any(m[0] == in_flight for m in msgs)
        agent = {"session_id": link["agent_session_id"], "message_included": included}
        if not included and note is None:
            # Recorded before the commit (Claude Code records the message that runs a tool first),
            # it went with the commit before this one: a human's made while the command ran, or a
            # first commit of the same command.  It stays there: usage belongs to one commit.
            note = f"in-flight message {in_flight} went to an earlier commit; emitted without it"
    event = events.commit_event(
        repo_id=ctx.repo_id,
        repo_url=ctx.repo_url,
        branch=link["branch"],
        sha=link["sha"],
        parents=json.loads(link["parents"]),
        kind=link["kind"],
        origin=link["origin"],
        time_ms=link["time_ms"],
        messages=msgs,
        # The batch's session rows (read once per batch, dropped when a record changes one).
        sessions={sid: row for sid in {m[1] for m in msgs} if (row := ctx.session(sid)) is not None},
        agent=agent,
        note=note,
    )
    ctx.events.add(event)
    if not stored_emitted:
        statedb.mark_link_emitted(conn, link["id"], note)
    if ctx.common_dir and ctx.settings(link["worktree"] or "").notes:
        ctx.notes.append(link["current_sha"])


def apply_rewrite(ctx: IngestContext, rec: Rewrite) -> None:
    if rec.worktree and not ctx.settings(rec.worktree).capture:
        return
    if not rec.pairs:
        return
    conn = ctx.conn
    if rec.command == "amend" and rec.rebasing:
        # An amend inside a rebase (a fixup or squash the sequencer applies, an amend at an `edit`
        # stop): when the rebase finishes, its own post-rewrite maps each original commit to its
        # final one, and a rebase aborted rewrote nothing.  Moved now, an aborted rebase left the
        # usage on a commit no branch holds, while the original was back on its branch.  Kept for
        # the rebase's post-rewrite, which follows what its pairs do not name (rules.rebase_moves).
        statedb.add_rebase_facts(conn, rec.worktree, "amend", rec.pairs)
        return
    pairs = rec.pairs
    if rec.command == "rebase":
        facts = statedb.rebase_facts(conn, rec.worktree)
        pairs = rules.rebase_moves(rec.pairs, rec.onto, rec.squashed, rec.head, facts, rec.made, _merges(conn, rec))
        statedb.clear_rebase_facts(conn, rec.worktree)  # the rebase is over
        if not pairs:
            return
    _move(ctx, rec.worktree, rec.command, pairs, rec.time)


def _merges(conn: sqlite3.Connection, rec: Rewrite) -> dict[str, list[str]]:
    """The merges a rebase's record lists that hold usage, with their parents as their links
    recorded them (rules.rebase_moves)."""
    found: dict[str, list[str]] = {}
    for m in rec.merges:
        own = [row["parents"] for row in statedb.links_of_commit(conn, m) if row["sha"] == m]
        if own:
            found[m] = json.loads(own[0])
    return found


def _settle_an_ended_rebase(ctx: IngestContext, worktree: str, end: str, head: str, time_ms: int) -> None:
    """A rebase that ended without a post-rewrite (rules.rebase_ended), its facts still kept: one
    that finished moves the usage of the commits amended while it ran that HEAD kept (an amend at
    its last `break`), as its post-rewrite would have; one aborted moves nothing, and its amends no
    longer lead a later rebase's commits astray.  The facts are dropped either way."""
    conn = ctx.conn
    facts = statedb.rebase_facts(conn, worktree)
    if not facts:
        return
    statedb.clear_rebase_facts(conn, worktree)
    pairs = rules.rebase_moves([], None, None, head, facts) if end == "finish" else []
    if pairs:
        _move(ctx, worktree, "rebase", pairs, time_ms)


def _move(ctx: IngestContext, worktree: str, command: str, pairs: list[list[str]], time_ms: int) -> None:
    """Move links by a rewrite's pairs, record it, and queue its event (and notes)."""
    conn = ctx.conn
    mapping = dict((o, n) for o, n in pairs)
    statedb.record_rewrites(conn, command, pairs, time_ms)
    statedb.move_links(conn, mapping)
    ctx.events.add(
        events.rewrite_event(repo_id=ctx.repo_id, repo_url=ctx.repo_url, command=command, pairs=pairs, time_ms=time_ms),
    )
    if ctx.common_dir and ctx.settings(worktree).notes:
        # The replacements' notes are rewritten whole from the database, so they carry the moved
        # usage exactly once; the rewritten commits' notes go (write_pending_notes).
        ctx.notes.extend(sorted(statedb.commits_with_links(conn, sorted(set(mapping.values())))))
        ctx.notes.extend(sorted(set(mapping) - set(mapping.values())))
