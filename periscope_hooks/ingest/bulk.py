"""Runs of messages and plain commits, applied together (issue 11: first-ingest speed).

A first ingest is almost all messages with a commit every 10-50 of them.  Applied one record at a
time, each message was stored pending (an insert into the pending index) and each commit then
counted, linked and re-read its worktree's pending messages (a count, an UPDATE ... RETURNING
that deleted them from the pending index again, a link re-read: ~8 statements a commit).

A run keeps each worktree's pending messages in memory instead: a plain commit (a human one, no
squash pending in its worktree) takes them as it is linked, so a message is stored once, with its
link already set, and the run's messages go in one statement at the end.  What the commit rules
read from state.db (rules.py: the pending count, the worktree's last message time) is the stored
value plus what the run holds, so every decision is the one the record-by-record path makes.
Anything else (a session record, an agent commit, a squash, a message a held commit waits for)
ends the run first, so records still apply in spool order.  A run that meets a message stored
before (a re-read spool, a rebuild) is rolled back and applied record by record
(`apply_one`), which handles every case; tests/test_ingest.py checks that both give the same
state and events.
"""

from __future__ import annotations

import json
from operator import itemgetter
from typing import Any, Callable, Union

from periscope_hooks import events, statedb
from periscope_hooks.ingest import rules
from periscope_hooks.ingest.commits import emit_link, parents_of
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.messages import message_row
from periscope_hooks.ingest.records import INVALID, Commit, Message
from periscope_hooks.ingest.worktrees import learn

# One record of a run: (spool offset, raw line, parsed line, typed record).
Item = tuple[int, bytes, dict[str, Any], Union[Message, Commit]]
ApplyOne = Callable[[int, bytes, dict[str, Any], Union[Message, Commit]], None]

LINK_ID = statedb.MESSAGE_COLUMNS.index("link_id")
TIME_MS = statedb.MESSAGE_COLUMNS.index("time_ms")
# A message row's EVENT_MESSAGE_COLUMNS values, in that order: what a commit event reads.
_event_values = itemgetter(*(statedb.MESSAGE_COLUMNS.index(c) for c in statedb.EVENT_MESSAGE_COLUMNS))


class _NotAllNew(Exception):
    """The run held a message stored before (or twice): it is applied record by record."""


class Run:
    """Consecutive messages and plain commits of one batch, applied in one go by apply()."""

    def __init__(self, ctx: IngestContext, parents: dict[str, list[str]]) -> None:
        self.ctx = ctx
        self.parents = parents
        self.items: list[Item] = []
        self._squash_pending: dict[str, bool] = {}  # per worktree, read once per run

    def takes_message(self, rec: Message) -> bool:
        """Not when an agent commit waits for it (or a tool call in it): that commit is linked and
        emitted right after the message, on the record-by-record path."""
        if type(rec.time) is not int:
            return False  # the idle-window rule compares times: integers only here
        waiting = self.ctx.held_message_ids()
        return not waiting or (rec.id not in waiting and not any(t in waiting for t in rec.tool_use_ids))

    def takes_commit(self, rec: Commit) -> bool:
        """A human post-commit/post-merge record with a SHA, no squash to resolve, not rebasing."""
        if rec.agent or not rec.sha or (rec.hook == "post-merge" and rec.squash) or rec.rebasing:
            return False  # a commit while rebasing records a fact for the rebase (commits.apply_commit)
        if rules.rebase_ended(rec.rebasing, rec.reflog_prev) is not None:
            return False  # the first commit after a rebase ended (commits.apply_commit)
        pending = self._squash_pending.get(rec.worktree)
        if pending is None:
            row = statedb.squash_state(self.ctx.conn, rec.worktree)
            pending = self._squash_pending[rec.worktree] = row is not None and bool(row["squash_pending"])
        return not pending

    def add(self, item: Item) -> None:
        self.items.append(item)

    def apply(self, apply_one: ApplyOne) -> None:
        """Apply (and empty) the run; record by record through `apply_one` when it cannot go whole."""
        items, self.items = self.items, []
        self._squash_pending.clear()  # the record after the run may change it
        if not items:
            return
        ctx = self.ctx
        # Outside the savepoint, as the record-by-record path does it: worktrees learned (state.db
        # and the run's memory of them) and prices looked up are kept when the run falls back.
        rows: list[list[Any] | None] = []
        try:
            for offset, _, _, rec in items:
                row = None
                worktree = ctx.worktree_of(rec.cwd) if isinstance(rec, Message) else rec.worktree
                if not worktree or ctx.settings(worktree).capture:
                    learn(ctx, worktree)
                    if isinstance(rec, Message):
                        row = list(message_row(ctx, rec, worktree, offset, None))
                rows.append(row)
        except INVALID:  # a value the one-by-one path skips with its reason
            _one_by_one(items, apply_one)
            return
        marks = (len(ctx.events.rows), len(ctx.notes), ctx.result.messages, ctx.result.commits)
        try:
            with statedb.savepoint(ctx.conn, "ingest_run"):
                _apply_linked(ctx, items, rows, self.parents)
        except (_NotAllNew, *INVALID):
            del ctx.events.rows[marks[0] :]
            del ctx.notes[marks[1] :]
            ctx.result.messages, ctx.result.commits = marks[2], marks[3]
            ctx.forget_sessions()
            _one_by_one(items, apply_one)


def _one_by_one(items: list[Item], apply_one: ApplyOne) -> None:
    for offset, raw, rec_dict, rec in items:
        apply_one(offset, raw, rec_dict, rec)


def _apply_linked(
    ctx: IngestContext, items: list[Item], rows: list[list[Any] | None], parents_found: dict[str, list[str]]
) -> None:
    conn = ctx.conn
    stored = [r for r in rows if r is not None]
    unknown = {r[1] for r in stored if r[1] and ctx.session(r[1]) is None}
    if unknown:
        statedb.ensure_sessions(conn, unknown)
        for sid in unknown:
            ctx.forget_session(sid)
    tool_uses = [
        (t, rec.id)
        for (_, _, _, rec), row in zip(items, rows)
        if row is not None and isinstance(rec, Message)  # stored messages only, as apply_message
        for t in rec.tool_use_ids
    ]
    if tool_uses:
        statedb.record_tool_uses_of(conn, tool_uses)
    repo_url = ctx.repo_url
    pending: dict[str, list[list[Any]]] = {}  # worktree -> the run's messages not linked yet
    newest: dict[str, int] = {}  # worktree -> the newest time among the run's messages so far
    stored_pending: dict[str, int] = {}  # worktree -> its messages stored pending before the run
    written: list[tuple[str, str, str]] = []  # message events not queued yet (queued before a commit's)
    for (_, _, _, rec), row in zip(items, rows):
        if row is not None:
            worktree = row[2]
            pending.setdefault(worktree, []).append(row)
            if row[TIME_MS] > newest.get(worktree, row[TIME_MS] - 1):
                newest[worktree] = row[TIME_MS]
            written.append(
                events.message_event_json(
                    row[0],
                    row[1],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    row[7:12],
                    row[12],
                    row[13],
                    row[14],
                    row[17],
                    row[18],
                    row[19],
                    row[21],
                    ctx.session(row[1]),
                    repo_url if worktree else None,
                    row[22],
                    row[23],
                    row[24],
                )  # fmt: skip
            )
        elif isinstance(rec, Commit):
            if written:
                ctx.events.add_written("message", written)
                written = []
            _link_commit(ctx, rec, parents_found, pending, newest, stored_pending)
    if written:
        ctx.events.add_written("message", written)
    if stored and statedb.insert_messages(conn, stored) != len(stored):
        raise _NotAllNew
    ctx.result.messages += len(stored)


def _link_commit(
    ctx: IngestContext,
    rec: Commit,
    parents_found: dict[str, list[str]],
    pending: dict[str, list[list[Any]]],
    newest: dict[str, int],
    stored_pending: dict[str, int],
) -> None:
    """commits.apply_commit for a plain commit (Run.takes_commit), its worktree's pending messages
    being those stored before the run plus those the run holds."""
    conn = ctx.conn
    worktree = rec.worktree
    if worktree and not ctx.settings(worktree).capture:
        return
    sha = rec.sha
    assert sha is not None
    kind = rules.base_kind(rec.hook, rec.subject, rec.rebasing)
    if kind is None:
        return
    if kind == "cherry-pick":
        statedb.remember_cherry_pick(conn, sha)  # a copy, AI-related or not (reconcile.py)
    parents = parents_of(rec, parents_found)
    final_kind = rules.kind_from_parents(kind, rec.hook, parents)
    if final_kind is None:
        return
    held = pending.get(worktree, [])
    before = stored_pending.get(worktree)
    if before is None:
        before = stored_pending[worktree] = statedb.pending_summary(conn, worktree)[0]
    count = before + len(held)
    last = None
    if not count:
        stored_last = statedb.last_message_time(conn, worktree)
        run_last = newest.get(worktree)
        last = stored_last if run_last is None else run_last if stored_last is None else max(stored_last, run_last)
    if not rules.within_idle_window("human", count, last, rec.time, ctx.settings(worktree).idle_window_minutes):
        return
    parents_json = json.dumps(parents)
    link_id = statedb.insert_link(
        conn,
        worktree=worktree,
        sha=sha,
        kind=final_kind,
        origin="human",
        branch=rec.branch,
        parents_json=parents_json,
        time_ms=rec.time,
        agent_session_id=None,
        agent_message_id=None,
        hold_until_ms=None,
        emitted=True,  # its event is queued below, in this savepoint
    )
    if link_id is None:
        return  # this commit record was applied before: its worktree's messages stay pending
    msgs = statedb.link_pending_messages_for_event(conn, link_id, worktree) if before else []
    stored_pending[worktree] = 0
    for row in held:
        row[LINK_ID] = link_id
        msgs.append(_event_values(row))
    held.clear()
    ctx.result.commits += 1
    link = {
        "id": link_id,
        "worktree": worktree,
        "sha": sha,
        "current_sha": sha,
        "kind": final_kind,
        "origin": "human",
        "branch": rec.branch,
        "parents": parents_json,
        "time_ms": rec.time,
        "agent_session_id": None,
        "agent_message_id": None,
    }
    emit_link(ctx, link, note=None, msgs=msgs, stored_emitted=True)
