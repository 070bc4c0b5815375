"""Spool lines to typed records: what a line says, checked once, before anything is applied.

A record that cannot be read raises ValueError (or KeyError/TypeError/AttributeError from
the malformed value); the caller counts it as skipped.  Nothing here touches a database.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Union

from periscope_hooks import events, spool
from periscope_hooks.agents import DEFAULT_CODING_AGENT
from periscope_hooks.pricing import FAST

TOKEN_FIELDS = events.TOKEN_FIELDS

# What reading or applying a record with a bad value raises: a field of the wrong type or shape,
# including one SQLite cannot store (a list where text goes, an integer past 64 bits).  Such a
# record is skipped with its reason (ingest/run.py); a bulk run falls back to record by record.
INVALID = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)
# A session title is the only free text recorded: the plugin keeps 200 characters, and so does
# ingest, whatever wrote the line (a title is shown in every report and page).
MAX_TITLE_CHARS = 200
# Bounds on one message's figures.  Reports sum costs exactly as int64 units of 1e-10 dollars and
# token counts as int64, so two messages with a cost of $5e8 (a plugin writing the wrong unit) made
# every flush, report and status of the repository fail with "integer overflow", for good (the
# spool is never shortened).  The dearest message today (a 1M-token context on the dearest model)
# costs ~$25: past these bounds a figure is a unit mistake, and the message is skipped with it.
MAX_MESSAGE_COST = 10_000.0
MAX_TOKENS = 10**12
# A record's time is before the year 10000 (ms since 1970): an event's time is written with four
# digits of year, and past ~2**31 years `time.gmtime` raises OSError, which no record's try caught
# (an OpenCode time of 1e21 stopped every flush, report and status for good; stop 33's fuzzing).
TIME_LIMIT_MS = 253_402_300_800_000
HOLD_EXPIRED = "hold-expired"
WORKTREE_MOVED = "worktree-moved"
RECONCILE_SEEN = "reconcile-seen"


@dataclass  # not frozen: a frozen dataclass's __init__ cost 4x (~4 us of a message's ~20 at ingest)
class Message:
    id: str
    session_id: str | None
    cwd: str
    time: int
    provider: str | None
    model: str | None
    agent: str | None
    tokens: tuple[int, int, int, int, int]
    cost: float
    branch: str | None
    sha: str | None
    coding_agent: str = DEFAULT_CODING_AGENT  # which tool wrote it (issue 14)
    tool_use_ids: tuple[str, ...] = ()  # Claude Code: the tool calls in the message
    cost_reported: bool = True  # False: the record has no cost (Claude Code); `cost` is then 0
    # The part of the cache writes kept for an hour (Claude Code's transcript tells; billed at 2x
    # input against 1.25x for five minutes).  Never more than cache_write.
    cache_write_1h: int = 0
    web_searches: int = 0  # server-side web searches the request ran (billed per search)
    speed: str | None = None  # "fast": a fast-mode request (priced as the table's variant); None standard


@dataclass(frozen=True)
class Session:
    id: str
    title: str | None
    parent_id: str | None
    agent: str | None
    time: Any
    coding_agent: str = DEFAULT_CODING_AGENT


@dataclass(frozen=True)
class Commit:
    """A post-commit or post-merge record."""

    hook: str
    worktree: str
    time: int
    sha: str | None
    branch: Any
    reflog: tuple[Any, Any, str]  # (old, new, subject) of HEAD's newest reflog entry
    # HEAD's reflog entry before the newest, as the hook saw it at commit time ("reflog_prev").
    # None: there was none.  Absent from older records (`has_reflog_prev` False): ingest then
    # reads the live reflog, the only way those records can be judged.
    reflog_prev: tuple[Any, Any, str] | None
    has_reflog_prev: bool
    rebasing: bool
    squash: bool
    agent: bool
    agent_session_id: Any
    agent_message_id: Any
    parents: tuple[str, ...] | None  # recorded at commit time, or None (looked up once per batch)
    # Claude Code: the tool call that ran the commit (its message may be recorded after the commit).
    agent_tool_use_id: Any = None
    # Made at a rebase's `edit` stop: (the commit it stopped at, the commit its pick left at HEAD).
    rebase_stop: tuple[str, str] | None = None
    # Made while rebasing at no pick's stop (hook.rebase_at_break): at a `break`, by an `exec`, or
    # the sequencer's own squash or reword commit (its reflog subject says `rebase (...)`).
    rebase_break: bool = False

    @property
    def subject(self) -> str:
        """The reflog subject of the entry that made this commit ("" when the newest entry the
        hook saw is not this commit's): what rules.base_kind reads."""
        return self.reflog[2] if self.reflog[1] == self.sha else ""


@dataclass(frozen=True)
class Rewrite:
    worktree: str
    command: str
    pairs: list[list[str]]
    time: int
    rebasing: bool = False  # written while a rebase was under way in the worktree
    # A rebase's own record (hook.rebase_facts): the commit it replayed onto, and the old commits
    # git folded by a fixup or squash where two pairs share their new commit.  None: not recorded
    # (a record from before these facts, or none applies).
    onto: str | None = None
    squashed: frozenset[str] | None = None
    head: str | None = None  # HEAD when the hook ran: for a rebase, its last commit
    made: frozenset[str] | None = None  # the commits a rebase made that HEAD holds (None: not recorded)
    merges: tuple[str, ...] = ()  # the merges of the branch before a rebase (hook.rebase_facts)


@dataclass(frozen=True)
class HoldExpired:
    """The flusher's decision that an agent commit stopped waiting for its message: recorded in
    the spool, so a rebuild takes it at the same point in the spool's order."""

    worktree: str
    sha: str
    commit_kind: str
    message_id: Any
    time: int


@dataclass(frozen=True)
class WorktreeMoved:
    """The flusher saw a worktree move (its pending usage follows it): recorded, like a hold's end."""

    old: str
    new: str
    time: int


@dataclass(frozen=True)
class Reconcile:
    """Moves decided by reconciliation (periscope_hooks/reconcile.py), recorded in the spool so
    that a rebuild replays them without asking git."""

    command: str
    pairs: list[list[str]]
    time: int


@dataclass(frozen=True)
class ReconcileSeen:
    """What a reconciliation run compared and left (reconcile.Seen), as a change to what the
    records before it made: recorded, so a rebuild compares exactly what the first state would."""

    reset: bool  # start from nothing compared (the run left nothing to remember)
    tips_added: tuple[str, ...]
    tips_dropped: tuple[str, ...]
    upstream: str | None
    examined: dict[str, str]  # commit -> its class when compared ("lost", "live"), new or changed
    forgotten: tuple[str, ...]  # commits no longer remembered
    time: int


@dataclass(frozen=True)
class Deferred:
    """A record this version does not understand: kept for a newer periscope-hooks."""

    version: str


Record = Union[Message, Session, Commit, Rewrite, HoldExpired, WorktreeMoved, Reconcile, ReconcileSeen, Deferred]


def _reflog_entry(value: Any) -> tuple[Any, Any, str]:
    value = value or {}
    subject = value.get("subject") or ""
    if type(subject) is not str:  # the commit rules read it as text (rules.py): the record is skipped
        raise ValueError(f"the reflog subject is not text: {str(subject)[:80]!r}")
    return (_commit_or_none(value.get("old")), _commit_or_none(value.get("new")), subject)


# A commit's name as the hooks write it: git's full hex object name (40 digits, 64 in a SHA-256
# repository; fewer only from a hand-written line).  Checked for every commit a record names:
# a name that is not one (a number, a list, "--output=FILE") reached `git log` as an argument, where
# it stopped every later ingest for good (a TypeError outside the record's own try) or was read
# as an option (stop 33's spool fuzzing).
_HEX = frozenset("0123456789abcdefABCDEF")


def _is_commit_name(value: Any) -> bool:
    return type(value) is str and 4 <= len(value) <= 64 and _HEX.issuperset(value)


def _commit_name(value: Any) -> str:
    """`value` if it is a commit's hex name, else ValueError (the record is skipped)."""
    if not _is_commit_name(value):
        raise ValueError(f"not a commit's name: {str(value)[:80]!r}")
    return str(value)


def _commit_or_none(value: Any) -> str | None:
    """A reflog side: a commit's name, or None for anything else (the hooks write git's zeros for
    none; the value is only compared, never handed to git)."""
    return str(value) if _is_commit_name(value) else None


def _commits(value: Any) -> list[str] | None:
    """A list of commits' names (parents, made, squashed), None when the record has none."""
    return [_commit_name(c) for c in value] if isinstance(value, list) else None


def text(value: Any) -> str | None:
    """A name or id a plugin recorded, as text: a string, an integer's digits, else None.  Before,
    a number or an object in `model` or `title` made ingest skip the whole record, usage and all (a
    plugin's type slip is not a reason to lose what the message cost).  A lone UTF-16 half in a
    string was made U+FFFD where the line was read (spool.parse_line)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    return str(value) if kind is int else None


def _time(rec: dict[str, Any]) -> int:
    """A record's own time, required as a message's is: dated by the clock at ingest, a rebuild
    from the spool made the same event (same id) with another time (stop 33's fuzzing)."""
    when = rec.get("time")
    if type(when) is int and 0 <= when < TIME_LIMIT_MS:
        return when
    if type(when) is float and 0 <= when < TIME_LIMIT_MS:  # NaN fails both comparisons
        return int(when)
    raise ValueError("the record has no time (milliseconds since 1970, before the year 10000)")


def message(rec: dict[str, Any]) -> Message:
    # Written out, not looped over TOKEN_FIELDS: this runs once per message at ingest.
    token = (rec.get("tokens") or {}).get
    counts = (
        int(token("input") or 0),
        int(token("output") or 0),
        int(token("reasoning") or 0),
        int(token("cache_read") or 0),
        int(token("cache_write") or 0),
    )
    if min(counts) < 0:
        raise ValueError("negative token count")
    if max(counts) > MAX_TOKENS:
        raise ValueError(f"a token count over {MAX_TOKENS:,} is not a real message's")
    hour_writes = token("cache_write_1h")
    if hour_writes:
        # Part of cache_write: more than it would bill writes that were never counted.
        hour_writes = min(int(hour_writes), counts[4])
        if hour_writes < 0:
            raise ValueError("negative token count")
    gitinfo = rec.get("git") or {}
    get = rec.get
    when = get("time")
    if type(when) is not int:
        # Without its own time the event was dated by the clock at ingest: a rebuild from the spool
        # then made the same event (same id) with another time, which the local store keeps twice
        # (its key is time and id), and the price in force was looked up at 1970.
        if type(when) is not float or not math.isfinite(when) or when < 0:
            raise ValueError("the message has no time (milliseconds since 1970)")
        when = int(when)
    if not 0 <= when < TIME_LIMIT_MS:
        raise ValueError(f"the message's time {when} is not between 1970 and the year 10000")
    cost = get("cost")
    dollars = float(cost or 0)
    if not math.isfinite(dollars):
        # json reads NaN, Infinity and 1e999 (and float() "inf"); no event, report or sum can hold them.
        raise ValueError("cost is not a finite number")
    if not 0 <= dollars <= MAX_MESSAGE_COST:
        raise ValueError(f"cost {dollars!r} is not a plausible dollar figure for one message")
    searches = get("web_searches")
    if type(searches) is not int or not 0 < searches <= MAX_TOKENS:
        searches = 0  # not a count: the message (its tokens) is kept, priced without searches
    tool_use_ids = get("tool_use_ids")
    message_id = rec["id"]
    if type(message_id) is not str:
        message_id = text(message_id)
        if message_id is None:
            raise ValueError("the message id is not a string")
    # Each name is text() written out for the usual case (a string): 0.5 us a message as calls.
    session_id, cwd, provider, model, agent = get("session_id"), get("cwd"), get("provider"), get("model"), get("agent")
    branch, sha, coding_agent = gitinfo.get("branch"), gitinfo.get("sha"), get("coding_agent")
    return Message(
        message_id,
        session_id if type(session_id) is str else text(session_id),
        cwd if type(cwd) is str else text(cwd) or "",
        when,
        provider if type(provider) is str else text(provider),
        model if type(model) is str else text(model),
        agent if type(agent) is str else text(agent),
        counts,
        dollars,
        branch if type(branch) is str else text(branch),
        sha if type(sha) is str else text(sha),
        coding_agent if type(coding_agent) is str and coding_agent else DEFAULT_CODING_AGENT,
        tuple(str(t) for t in tool_use_ids if isinstance(t, str)) if tool_use_ids else (),
        cost is not None,
        hour_writes or 0,
        searches,
        FAST if get("speed") == FAST else None,  # any other speed is the standard one
    )


def session(rec: dict[str, Any]) -> Session:
    session_id = text(rec["session_id"])
    if session_id is None:
        raise ValueError("the session id is not a string")
    title = text(rec.get("title"))
    return Session(
        id=session_id,
        title=title[:MAX_TITLE_CHARS] if title else title,
        parent_id=text(rec.get("parent_id")),
        agent=text(rec.get("agent")),
        time=rec.get("time"),
        coding_agent=text(rec.get("coding_agent")) or DEFAULT_CODING_AGENT,
    )


def _worktree(rec: dict[str, Any]) -> str:
    """The worktree a hook record names: its absolute top, or "" (none).  A relative path would
    name a folder by where the flush runs, not by what was recorded."""
    worktree = str(rec.get("worktree") or "")
    if worktree and not worktree.startswith("/"):
        raise ValueError(f"the worktree is not an absolute path: {worktree[:80]!r}")
    return worktree


def _pairs(value: Any) -> list[list[str]]:
    return [[_commit_name(old), _commit_name(new)] for old, new in (value or [])]


# The hooks that write a commit record (post-checkout writes none).
RECORDING_HOOKS = ("post-commit", "post-merge", "post-rewrite")


def commit(rec: dict[str, Any]) -> Commit | Rewrite:
    hook = rec["hook"]
    if hook not in RECORDING_HOOKS:
        raise ValueError(f"no hook of ours writes {str(hook)[:80]!r}")
    worktree = _worktree(rec)
    sha = _commit_name(rec["sha"]) if rec.get("sha") else None
    if hook == "post-rewrite":
        squashed, made, merges = _commits(rec.get("squashed")), _commits(rec.get("made")), _commits(rec.get("merges"))
        return Rewrite(
            worktree=worktree,
            command=str(rec.get("command") or "rebase"),
            pairs=_pairs(rec.get("pairs")),
            time=_time(rec),
            rebasing=bool(rec.get("rebasing")),
            onto=_commit_name(rec["onto"]) if rec.get("onto") else None,
            squashed=None if squashed is None else frozenset(squashed),
            head=sha,
            made=None if made is None else frozenset(made),
            merges=tuple(merges or ()),
        )
    agent = rec.get("agent") or None
    parents = _commits(rec.get("parents"))
    return Commit(
        hook=hook,
        worktree=worktree,
        time=_time(rec),
        sha=sha,
        branch=rec.get("branch"),
        reflog=_reflog_entry(rec.get("reflog")),
        reflog_prev=_reflog_entry(rec["reflog_prev"]) if rec.get("reflog_prev") else None,
        has_reflog_prev="reflog_prev" in rec,
        rebasing=bool(rec.get("rebasing")),
        squash=bool(rec.get("squash")),
        agent=bool(agent),
        agent_session_id=(agent or {}).get("session_id"),
        agent_message_id=(agent or {}).get("message_id"),
        parents=None if parents is None else tuple(parents),
        agent_tool_use_id=(agent or {}).get("tool_use_id"),
        rebase_stop=_rebase_stop(rec.get("rebase_stop")),
        rebase_break=rec.get("rebase_break") is True,
    )


def _rebase_stop(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, dict) or not value.get("commit") or not value.get("head"):
        return None
    return (_commit_name(value["commit"]), _commit_name(value["head"]))


def hold_expired(rec: dict[str, Any]) -> HoldExpired:
    return HoldExpired(
        worktree=_worktree(rec),
        sha=_commit_name(rec["sha"]),
        commit_kind=str(rec["commit_kind"]),
        message_id=rec.get("message_id"),
        time=_time(rec),
    )


def reconcile(rec: dict[str, Any]) -> Reconcile:
    from periscope_hooks.reconcile import COMMANDS

    command = str(rec["command"])
    if command not in COMMANDS:
        raise ValueError(f"unknown reconcile command {command!r}")
    return Reconcile(command=command, pairs=_pairs(rec["pairs"]), time=_time(rec))


def reconcile_seen(rec: dict[str, Any]) -> ReconcileSeen:
    examined = rec.get("examined") or {}
    if not isinstance(examined, dict) or any(v not in ("lost", "live") for v in examined.values()):
        raise ValueError("examined: not a map of commits to lost or live")
    upstream = rec.get("upstream")
    return ReconcileSeen(
        reset=rec.get("reset") is True,
        tips_added=tuple(_commits(rec.get("tips_added")) or ()),
        tips_dropped=tuple(_commits(rec.get("tips_dropped")) or ()),
        upstream=None if upstream is None else _commit_name(upstream),
        examined={_commit_name(c): str(v) for c, v in examined.items()},
        forgotten=tuple(_commits(rec.get("forgotten")) or ()),
        time=_time(rec),
    )


def hold_expired_line(worktree: str, sha: str, commit_kind: str, message_id: Any, time_ms: int) -> dict[str, Any]:
    return {
        "v": spool.SPOOL_VERSION,
        "kind": HOLD_EXPIRED,
        "worktree": worktree,
        "sha": sha,
        "commit_kind": commit_kind,
        "message_id": message_id,
        "time": time_ms,
    }


def worktree_moved(rec: dict[str, Any]) -> WorktreeMoved:
    return WorktreeMoved(old=str(rec["from"]), new=str(rec["to"]), time=_time(rec))


def worktree_moved_line(old: str, new: str, time_ms: int) -> dict[str, Any]:
    return {"v": spool.SPOOL_VERSION, "kind": WORKTREE_MOVED, "from": old, "to": new, "time": time_ms}


_READERS: dict[str, Callable[[dict[str, Any]], Record]] = {
    "message": message,
    "session": session,
    "commit": commit,
    HOLD_EXPIRED: hold_expired,
    WORKTREE_MOVED: worktree_moved,
    "reconcile": reconcile,
    RECONCILE_SEEN: reconcile_seen,
}


def parse(rec: dict[str, Any]) -> Record:
    """The typed record for a parsed spool line."""
    version = rec.get("v")
    if version != spool.SPOOL_VERSION:
        return Deferred(str(version))  # a newer plugin wrote this: keep it, don't drop it
    kind = rec.get("kind")
    reader: Callable[[dict[str, Any]], Record] | None = _READERS.get(kind)  # type: ignore[arg-type]
    if reader is None:
        return Deferred(f"1/{kind}")
    return reader(rec)


def squash_reflog_json(entry: tuple[Any, Any, str]) -> str:
    return json.dumps(list(entry))
