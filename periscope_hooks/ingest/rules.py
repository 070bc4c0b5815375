"""The commit-linking rules, as plain functions of what the spool recorded.

No database, no git, no clock: each answer depends only on its arguments, which is
what makes a rebuild from the spool decide exactly what the first ingest decided.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from periscope_hooks.git import is_sha


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
    if head.startswith("cherry-pick") or head == "commit (cherry-pick)":
        # "commit (cherry-pick)": one finished after a conflict (`cherry-pick --continue`, or
        # `git commit` while CHERRY_PICK_HEAD is there) is a copy all the same.
        return "cherry-pick"
    if head.startswith("revert"):
        return "revert"
    return "commit"


# Reflog actions whose commit has exactly one parent, HEAD before it (the entry's old value):
# `git commit` (not a merge: that is "commit (merge)"; not an amend), a cherry-pick and a revert.
_ONE_PARENT_HEAD_BEFORE = frozenset(("commit", "cherry-pick", "commit (cherry-pick)", "revert"))


def parents_from_reflog(subject: str, head_before: Any) -> list[str] | None:
    """A commit's parents as its own reflog entry tells them (`subject`: rules' reading of it, ""
    when the entry is not the commit's), or None when it cannot (an amend, a merge): git is asked.
    Recorded, so a rebuild gives the same parents: asked of git, a commit gone since (collected)
    or a git that failed once gave none, and the commit's event then had two bodies."""
    if subject == "commit (initial)":
        return []
    one_parent = subject in _ONE_PARENT_HEAD_BEFORE and isinstance(head_before, str)
    if one_parent and is_sha(head_before) and head_before.strip("0"):
        return [head_before]
    return None


def base_kind(hook: str, subject: str, rebasing: bool) -> str | None:
    """The kind before squash and parent facts; None: the commit takes no usage.

    `subject` is the reflog subject of the entry that made this commit ("" when the
    recorded reflog entry is not this commit's)."""
    if hook == "post-merge":
        if "fast-forward" in subject.lower():
            return None  # no new commit: usage stays pending for the next commit
        return "merge"
    if subject:
        return classify_commit(subject)  # None: a rebase replays; usage follows through post-rewrite
    return None if rebasing else "commit"


def squash_abandoned(before_commit: Sequence[str | None] | None, squash_reflog: Sequence[str | None]) -> bool:
    """True when HEAD's reflog entry just before the commit is not the one recorded at
    `merge --squash` time: something (a reset, a checkout) came between, so the squash was
    abandoned and the commit is an ordinary one.  No entry before the commit: not abandoned."""
    if before_commit is None:
        return False
    return list(before_commit) != list(squash_reflog)


def kind_from_parents(kind: str, hook: str, parents: Sequence[str]) -> str | None:
    """A commit with two parents is a merge; a post-merge whose HEAD has one parent made no
    merge commit (a fast-forward without the usual reflog subject): None, takes no usage.
    Unknown parents ([]) change nothing."""
    if kind == "commit" and len(parents) > 1:
        return "merge"
    if hook == "post-merge" and parents and len(parents) < 2:
        return None
    return kind


def within_idle_window(
    origin: str, pending: int, last_message_ms: int | None, commit_ms: int, idle_window_minutes: float
) -> bool:
    """Does the commit take (possibly empty) usage?  A human commit with nothing pending is
    AI-related only when the worktree saw a message within the idle window before it."""
    if pending or origin != "human":
        return True
    return last_message_ms is not None and commit_ms - last_message_ms <= idle_window_minutes * 60_000


def hold_until(
    message_id: str | None, message_known: bool, already_reserved: bool, commit_ms: int, hold_minutes: float
) -> int | None:
    """Until when an agent commit waits for its in-flight message (None: it does not wait).

    It waits only when the message is neither stored yet nor waited for by another commit."""
    if not message_id or message_known or already_reserved:
        return None
    return commit_ms + int(hold_minutes * 60_000)


def rebase_ended(rebasing: bool, reflog_prev: tuple[Any, Any, str] | None) -> tuple[str, str] | None:
    """("finish" or "abort", HEAD) when a commit's record shows a rebase just ended: its HEAD reflog
    entry before the commit's is `rebase (finish)` or `rebase (abort)` (`returning to ...`); else
    None.  git runs no post-rewrite for a rebase that rewrote nothing it lists (every pick
    fast-forwarded, an amend at its last `break`) nor for one aborted, so their facts (rebase_moves)
    are settled here: applied for the one, dropped for the other (its amends are on no branch)."""
    if rebasing or reflog_prev is None:
        return None
    _, new, action = reflog_prev
    if not isinstance(action, str) or not action.startswith("rebase") or not isinstance(new, str) or not new:
        return None
    for end in ("finish", "abort"):
        if action.endswith(f"({end})"):
            return end, new
    return None


def rebase_moves(
    pairs: Sequence[Sequence[str]],
    onto: str | None,
    squashed: Collection[str] | None,
    head: str | None,
    facts: Sequence[tuple[str, str, str]],
    made: Collection[str] | None = None,
    merges: Mapping[str, Sequence[str]] | None = None,
) -> list[list[str]]:
    """The moves a finished rebase makes: git's old -> new pairs (its post-rewrite), corrected by
    what the spool told about this rebase (docs/design.md, "What a rebase's pairs do not say").

    `onto`, `squashed`, `head`, `made`: the rebase's own record (hook.rebase_facts; `made`, the
    commits the rebase made that HEAD holds, None in records from before it); `facts`: (kind, old,
    new) recorded while it ran: `amend` (old amended to new: the sequencer's fixups and squashes, an
    amend at a stop), `parent` (old is the first parent of new, a commit made at a stop), `stop`
    (an `edit` stop at old left new at HEAD: old itself, or its replay) and `break` (new, made at a
    `break` or by an `exec`, at no pick's stop).

    - A pick or edit git maps to `onto`, to a new commit an earlier pair already took (other
      than by a fixup or squash), to a commit the rebase did not make (not in `made`: an
      unchanged pick git fast-forwarded over), or to a commit made at a `break` or by an `exec`
      (that does not hold it), made nothing: it was skipped after a conflict or
      became empty (git 2.39 and 2.47 still list it).  Its usage stays on the old commit, as a
      dropped commit's does.
    - An old commit still in its new commit's history, as itself or as the commit its `edit` stop
      left (`stop` facts), was not replaced by that new commit: new commits were made on top of it
      at the stop (git maps the stopped commit to HEAD at `--continue`).  Unchanged, it keeps its
      usage; replayed or amended, its usage goes to that commit (`parent` facts: a commit made at a
      stop and its first parent).
    - A new commit amended later in the rebase (an amend at a stop, then a fixup; an amend at a
      `break`, of a replayed commit or of one git left unchanged) is followed to the last of its
      amends known to be in the result (in `made`, another pair's new commit, or HEAD), and so
      is every commit amended while rebasing that git's pairs do not name (the amend at the stop).
      Only those: an amend from a rebase that was aborted leads nowhere this rebase made.
    - A merge of the branch before the rebase (`merges`: those with usage, and their parents as
      recorded) that no pair names, one of whose parents the rebase replayed, was flattened (a
      rebase without --rebase-merges replays the commits it merged, not the merge): its own usage
      goes to HEAD, the rebase's last commit.  Left on the merge, it stayed on a commit no branch
      holds, though nothing was dropped (a workflow sweep: 109 cases in 94 seeds).  A parent
      replayed, not only "before the rebase": `rebase --onto X upstream` lists upstream's own
      merges too, which it never touched.

    Pairs that move nothing are left out, except git's own unchanged ones (old == new)."""
    amended_to: dict[str, str] = {}
    amended_from: dict[str, str] = {}
    parent: dict[str, str] = {}
    stop_left: dict[str, str] = {}
    at_break: set[str] = set()
    for kind, old, new in facts:
        if kind == "amend":
            amended_to[old] = new
            amended_from[new] = old
        elif kind == "parent":
            parent[new] = old
        elif kind == "stop":
            stop_left[old] = new
        elif kind == "break":
            at_break.add(new)
    limit = len(facts) + 1  # every step uses a fact: no walk is longer

    def lives_on_in(start: str, old: str) -> str | None:
        """`old` itself, or the commit its `edit` stop left, when found in `start`'s history: the
        commit of that history it lives on as.  A parent is in the history; a commit amended away is
        not, and lives on as the amend the walk came from (an amend at the stop, then a commit on
        top of it: the stopped commit is the new commit's parent, amended)."""
        kept = (old, stop_left.get(old))
        node: str | None = start
        in_history: str | None = start
        for _ in range(limit + 1):
            if node is None:
                return None
            if node in kept:
                return in_history
            before_amend = amended_from.get(node)
            if before_amend is not None:
                node = before_amend
            else:
                node = in_history = parent.get(node)
        return None

    # In the result: the pairs' new commits and HEAD, and the first parents recorded for commits
    # made at a stop, walked from them (through the commits an amend replaced, whose parent the
    # amend kept; those themselves are not in the result).
    final = {new for _, new in pairs}
    if head:
        final.add(head)
    if made is not None:
        final.update(made)
    walk = list(final)
    walked: set[str] = set()
    while walk:
        node = walk.pop()
        if node in walked:
            continue
        walked.add(node)
        if node in parent:
            final.add(parent[node])
            walk.append(parent[node])
        if node in amended_from:
            walk.append(amended_from[node])

    def amends_of(sha: str) -> list[str]:
        """The commits `sha` was amended into while rebasing, in order."""
        chain: list[str] = []
        node = sha
        for _ in range(limit):
            nxt = amended_to.get(node)
            if nxt is None:
                break
            chain.append(node := nxt)
        return chain

    def settle(sha: str) -> str:
        """The last of `sha`'s amends known to be in the result, or `sha` itself."""
        in_result = [a for a in amends_of(sha) if a in final]
        return in_result[-1] if in_result else sha

    def replaced_amends(old: str, target: str) -> list[str]:
        """The amends of `old` (or of the replay its `edit` stop left) that go where it goes: amended
        at the stop, then split (reset, new commits), or amended twice before a commit on top, an
        amend's usage stayed on a commit no branch holds.  Only those before `target` in the
        chain: an amend after it (at a later `break`) is on the branch, not replaced by it."""
        found: list[str] = []
        for start in dict.fromkeys((old, stop_left.get(old) or old)):
            chain = amends_of(start)
            if target in chain:
                chain = chain[: chain.index(target)]
            found += [a for a in chain if a not in final and a not in found]
        return found

    moves: list[list[str]] = []
    taken: set[str] = set()
    before: str | None = None
    for old, new in pairs:
        previous, before = before, new
        if old == new:  # unchanged (git kept it), unless amended at a `break` after it
            taken.add(new)
            target = settle(old)
            moves.append([old, target])
            moves.extend([a, target] for a in replaced_amends(old, target) if target != old)
            continue
        if onto is not None:  # a record that says what the pairs do not
            if new == onto:
                continue
            if new in taken and (new != previous or (squashed is not None and old not in squashed)):
                continue
        if new in at_break and lives_on_in(new, old) is None and amended_to.get(new) != new:
            # HEAD when the pick was skipped: a commit made at a `break`, not the pick's.  Unless
            # that commit was amended onto itself while rebasing: an empty fixup folded into it,
            # in the second it was made, leaves it the very same commit (a workflow sweep).
            continue
        taken.add(new)
        target = settle(lives_on_in(new, old) or new)
        folded = squashed is not None and old in squashed and new == previous  # a fixup or squash into the pick before
        if made is not None and target != old and target not in made and not folded:
            # git named a commit that was there before the rebase: this pick made nothing.  Not a
            # fixup into the pick before it: an empty one, in the second that pick was made,
            # leaves it byte for byte the same commit (made lists none), and it holds the usage.
            continue
        if target != old:
            moves.append([old, target])
            moves.extend([a, target] for a in replaced_amends(old, target))
    moved = {old for old, _ in moves}
    for old in amended_to:
        if old not in moved:
            target = settle(old)
            if target != old:
                moves.append([old, target])
    named = {old for old, _ in pairs}
    if head and merges:
        moves.extend(
            [m, head] for m, parents in merges.items() if m not in named and m != head and named.intersection(parents)
        )
    return moves
