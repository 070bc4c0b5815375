"""Reconciliation: usage follows the code to the commit that shipped.

A forge's squash or rebase merge, a stacked-diff tool's `commit-tree`/`update-ref` restack, a
rebase with hooks off, `git filter-repo`: each replaces linked commits without running a hook
that says so.  After such a rewrite the usage stays on commits no branch holds.  `run` finds
the linked commits that left the main line, asks `matching` which commits replaced them, and
moves their usage.

Decisions are made from git, which changes; the spool is the source of truth.  So a decision is
never applied directly: `run` appends it to the spool as a `reconcile` record, and ingest applies
it like any other record.  A state.db rebuilt from the spool then replays the same moves, in the
same order, with the same event ids, without asking git again.  Applying a record moves only
links whose current commit is still the old one, so a decision appended twice (two reconcilers
at once) moves nothing the second time and emits no second event.

Cost: `run` does nothing unless the refs or the linked commits changed since its last run (a
fingerprint of `git for-each-ref`, kept in state.db); without a linked commit off the main line
it stops after two `rev-list`s that walk only that off-line part.  The per-commit facts
`report` shows (reachable, shipped) are cached under the same fingerprint, so `report` no
longer walks the whole history (`git rev-list --all`) on every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from periscope_hooks import matching, statedb
from periscope_hooks.git import GitError, run_git
from periscope_hooks.ingest import process_spool, records

RECORD_KIND = "reconcile"
COMMANDS = ("forge-squash", "forge-rebase", "local-rewrite")
WINDOW_SLACK_S = 86_400  # a replacement is newer than what it replaces; a day allows for clock skew
MAX_WINDOW = 5_000  # candidate targets read per run at most (newest first)


@dataclass
class Refs:
    heads: list[str]  # local branch tips (and a detached HEAD)
    main: list[str]  # the main line: the upstream default branch and its local twin
    upstream: str | None  # refs/remotes/<remote>/<default>, when there is one
    other_remotes: list[tuple[str, str]]  # (ref, tip) of the other remote-tracking branches
    all_tips: list[str]  # every commit a ref (or HEAD) points at, tags peeled
    fingerprint: str


@dataclass
class Decision:
    """One target commit and what moves to it."""

    command: str
    new: str
    olds: list[str]
    tier: str


@dataclass
class Outcome:
    ran: bool = False
    candidates: int = 0
    decisions: list[Decision] = field(default_factory=list)
    error: str | None = None


# --- git data -----------------------------------------------------------------------------


def _lines(args: list[str], common_dir: str, stdin: Iterable[str] | None = None) -> list[str]:
    data = "\n".join(stdin) + "\n" if stdin is not None else None
    return run_git(args, git_dir=common_dir, input=data, timeout=300).split()


def _checked_out(common_dir: str) -> list[str]:
    """The commit each worktree has checked out, the main worktree's first: a linked worktree's
    detached HEAD holds its commit as a branch does (reading the main HEAD alone, a commit checked
    out there was taken for lost and its usage moved to a copy on a branch)."""
    out = run_git(["worktree", "list", "--porcelain"], git_dir=common_dir, check=False)
    shas = [line[5:].strip() for line in out.splitlines() if line.startswith("HEAD ")]
    if not out.strip():  # a git that cannot list them: the repository's own HEAD
        head = run_git(["rev-parse", "--verify", "-q", "HEAD"], git_dir=common_dir, check=False).strip()
        shas = [head] if head else []
    return [sha for sha in shas if sha and sha.strip("0")]


def read_refs(common_dir: str) -> Refs:
    out = run_git(
        ["for-each-ref", "--format=%(objectname) %(objecttype) %(refname) %(*objectname) %(symref)"],
        git_dir=common_dir,
    )
    checked_out = _checked_out(common_dir)
    symrefs: dict[str, str] = {}
    tips: dict[str, str] = {}
    tagged: list[str] = []
    hasher = hashlib.sha1(" ".join(checked_out).encode())
    for line in out.splitlines():
        parts = line.split(" ")
        if len(parts) < 3 or parts[2].startswith(("refs/notes/", "refs/stash")):
            continue  # our own notes change on every move; they say nothing about the code
        sha, kind, ref = parts[0], parts[1], parts[2]
        hasher.update(line.encode("utf-8", "replace") + b"\n")
        if len(parts) > 4 and parts[4]:
            symrefs[ref] = parts[4]
        if kind == "commit":
            tips[ref] = sha
        elif kind == "tag" and len(parts) > 3 and parts[3]:
            tagged.append(parts[3])
    remotes = sorted({r.split("/")[2] for r in tips if r.startswith("refs/remotes/")})
    remote = "origin" if "origin" in remotes else (remotes[0] if remotes else None)
    upstream = None
    if remote:
        target = symrefs.get(f"refs/remotes/{remote}/HEAD")
        for ref in ([target] if target else []) + [f"refs/remotes/{remote}/main", f"refs/remotes/{remote}/master"]:
            if ref in tips:
                upstream = ref
                break
    default = upstream.rsplit("/", 1)[-1] if upstream else None
    local_default = next(
        (f"refs/heads/{n}" for n in (default, "main", "master") if n and f"refs/heads/{n}" in tips), None
    )
    main = [tips[r] for r in (upstream, local_default) if r]
    heads = [sha for ref, sha in tips.items() if ref.startswith("refs/heads/")]
    heads += [sha for sha in dict.fromkeys(checked_out) if sha not in heads]
    others = [
        (ref, sha)
        for ref, sha in sorted(tips.items())
        if ref.startswith("refs/remotes/") and ref != upstream and not ref.endswith("/HEAD")
    ]
    all_tips = sorted(set(tips.values()) | set(tagged) | set(checked_out))
    return Refs(heads, main, upstream, others, all_tips, hasher.hexdigest())


def existing(common_dir: str, shas: Sequence[str]) -> set[str]:
    if not shas:
        return set()
    out = run_git(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"], git_dir=common_dir, input="\n".join(shas) + "\n"
    )
    return {
        parts[0] for parts in (line.split() for line in out.splitlines()) if len(parts) == 2 and parts[1] == "commit"
    }


def off(common_dir: str, shas: Iterable[str], exclude: Sequence[str]) -> set[str]:
    """Commits reachable from `shas` but not from `exclude`: a walk of the part in between only."""
    shas = list(shas)
    if not shas:
        return set()
    return set(_lines(["rev-list", "--stdin"], common_dir, [*shas, *(f"^{x}" for x in exclude)]))


def graph(
    common_dir: str, tips: Sequence[str], exclude: Sequence[str], *, extra: Sequence[str] = ()
) -> dict[str, tuple[str, ...]]:
    """sha -> parents for the commits reachable from `tips` and not from `exclude`."""
    return timed_graph(common_dir, tips, exclude, extra=extra)[0]


def timed_graph(
    common_dir: str, tips: Sequence[str], exclude: Sequence[str], *, extra: Sequence[str] = ()
) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """`graph`, and each commit's committer time."""
    if not tips:
        return {}, {}
    out = run_git(
        ["rev-list", "--timestamp", "--parents", "--stdin", *extra],
        git_dir=common_dir,
        input="\n".join([*tips, *(f"^{x}" for x in exclude)]) + "\n",  # `--not` on stdin needs git 2.42
        timeout=300,
    )
    g: dict[str, tuple[str, ...]] = {}
    times: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 1:
            g[parts[1]] = tuple(parts[2:])
            times[parts[1]] = int(parts[0])
    return g, times


# --- state.db -----------------------------------------------------------------------------


def _fingerprint(refs_fp: str, marks: tuple[int, int], filter_map_mtime: str) -> str:
    """The refs, the linked commits (statedb.link_marks: they change whenever a link is added or
    moved; hashing every linked commit's SHA cost 15 ms at 50,000) and filter-repo's map."""
    return hashlib.sha1(f"{refs_fp} {marks[0]} {marks[1]} {filter_map_mtime}".encode()).hexdigest()


def _filter_map_stamp(common_dir: str) -> str:
    try:
        st = os.stat(os.path.join(common_dir, "filter-repo", "commit-map"))
    except OSError:
        return ""
    return f"{st.st_mtime_ns}:{st.st_size}"


def ship_status(conn: sqlite3.Connection) -> dict[str, tuple[bool, bool]]:
    """sha -> (reachable, shipped) as of the last run."""
    return statedb.reconcile_status(conn)


# --- deciding -----------------------------------------------------------------------------


def _chains(sub: dict[str, tuple[str, ...]]) -> list[tuple[str, list[str]]]:
    """First-parent lines through the off-main graph: (base, commits oldest first), one per tip."""
    first_parents = {ps[0] for ps in sub.values() if ps}
    chains = []
    for tip in sorted(s for s in sub if s not in first_parents):
        line = [tip]
        while sub[line[-1]] and sub[line[-1]][0] in sub:
            line.append(sub[line[-1]][0])
        line.reverse()
        parents = sub[line[0]]
        if parents:  # a root commit has no base to diff from
            chains.append((parents[0], line))
    return chains


def _ancestors_in(window: dict[str, tuple[str, ...]], starts: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = [s for s in starts if s in window]
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        stack.extend(p for p in window[c] if p in window and p not in seen)
    return seen


@dataclass
class Placement:
    """Where the linked commits git was asked about are: what `report` shows and what `decide`
    starts from.  The others were shipped and still are (present, reachable, on the main line)."""

    present: list[str]  # asked about and still in the object store, sorted
    unreachable: set[str]  # no ref holds them
    off_main: set[str]  # not on the main line (all of them when there is no main line)
    unshipped: set[str]  # not on the upstream default branch (the local one without a remote)
    asked: list[str]  # the linked commits git was asked about; the others were shipped and still are
    complete: bool  # asked about every linked commit (no earlier placement to build on)

    def status(self) -> dict[str, tuple[int, int]]:
        """(reachable, shipped) of the commits asked about: the others' cached rows stand."""
        present = set(self.present)  # asked ones only
        return {
            sha: (
                int(sha in present and sha not in self.unreachable),
                int(sha in present and sha not in self.unshipped),
            )
            for sha in self.asked
        }


def main_line_key(refs: Refs) -> str | None:
    """What `shipped` was measured against: the upstream ref's name (none without a remote) and the
    main line's first tip (the upstream default branch, else the local one)."""
    return f"{refs.upstream or ''} {refs.main[0]}" if refs.main else None


def main_line_moved_forward(common_dir: str, refs: Refs, before: str | None) -> bool:
    """Whether the commits shipped at the last placement (`before`: main_line_key then) still are:
    the main line's tip only moved forward since (same upstream ref, the old tip an ancestor of
    the new one).  A reset or force-push of the main line, or a tip git no longer has, is no."""
    now = main_line_key(refs)
    if before is None or now is None or before.rpartition(" ")[0] != now.rpartition(" ")[0]:
        return False
    old_tip, new_tip = before.rpartition(" ")[2], now.rpartition(" ")[2]
    try:
        return old_tip == new_tip or not off(common_dir, [old_tip], [new_tip])
    except GitError:
        return False


def place(common_dir: str, refs: Refs, linked: Sequence[str], *, still_shipped: Iterable[str] = ()) -> Placement:
    """Where each linked commit is.  `still_shipped`: commits shipped at the last placement while
    the main line only moved forward since (main_line_moved_forward), so still present, reachable,
    on the main line and shipped: git is asked about the others only (at 1M messages, 50,000
    linked commits, asking about all of them was 2.2 s of the flush after every commit)."""
    stable = set(still_shipped)
    return place_only(common_dir, refs, [sha for sha in linked if sha not in stable], complete=not stable)


def place_only(common_dir: str, refs: Refs, asked: Sequence[str], *, complete: bool) -> Placement:
    """Where the commits `asked` are (`complete`: they are every linked commit)."""
    found = sorted(existing(common_dir, asked))
    unreachable = off(common_dir, found, refs.all_tips)
    off_main = off(common_dir, found, refs.main) if refs.main else set(found)
    unshipped = off(common_dir, found, refs.main[:1]) if refs.upstream else off_main
    return Placement(found, unreachable, off_main, unshipped, list(asked), complete)


@dataclass
class Seen:
    """What earlier runs already compared (a cache in state.db, never a record): the tips then, and
    the linked commits that matched nothing or stay where they are (another remote branch holds
    them), by class (`lost`: no ref holds them; `live`).  Such a commit is compared again only with
    commits new since (an abandoned branch, or a release branch's fixes, would otherwise make every
    run after a ref change read the whole window again); a change of class compares it anew."""

    tips: list[str] = field(default_factory=list)
    upstream: str | None = None
    examined: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, text: str | None) -> Seen:
        try:
            data = json.loads(text or "{}")
            return cls(list(data.get("tips", [])), data.get("upstream"), dict(data.get("examined", {})))
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        return json.dumps({"tips": self.tips, "upstream": self.upstream, "examined": self.examined}, sort_keys=True)

    def kept(self) -> Seen:
        """What is remembered of this run: nothing when it left no commit compared (its tips then
        only widened the next run's comparisons with commits newly reachable but older than the
        ones compared, which a run remembering nothing leaves out too)."""
        return self if self.examined else Seen()

    def changes_from(self, before: Seen) -> dict[str, Any] | None:
        """The `reconcile-seen` record's fields that turn `before` into this; None when they are
        the same.  A change, not the whole: the tips change with every commit and the commits
        compared and left (a feature branch in progress, an abandoned one) stay, so a whole copy
        would cost ~50 bytes a remembered commit at every run; a change is one branch's old and new
        tips and the commits new since."""
        if self == before:
            return None
        if not self.examined:
            return {"reset": True}
        return {
            "tips_added": sorted(set(self.tips) - set(before.tips)),
            "tips_dropped": sorted(set(before.tips) - set(self.tips)),
            "upstream": self.upstream,
            "examined": {c: v for c, v in sorted(self.examined.items()) if before.examined.get(c) != v},
            "forgotten": sorted(set(before.examined) - set(self.examined)),
        }

    def changed(self, rec: records.ReconcileSeen) -> Seen:
        """This, changed by a `reconcile-seen` record (applied at ingest, in spool order)."""
        if rec.reset:
            return Seen()
        tips = sorted((set(self.tips) - set(rec.tips_dropped)) | set(rec.tips_added))
        forgotten = set(rec.forgotten)
        examined = {c: v for c, v in self.examined.items() if c not in forgotten}
        examined.update(rec.examined)
        return Seen(tips, rec.upstream, examined)


def decide(
    common_dir: str,
    refs: Refs,
    placed: Placement,
    copies: Iterable[str] = (),
    seen: Seen | None = None,
    made_before: Callable[[Sequence[tuple[str, str]]], set[tuple[str, str]]] | None = None,
    amended_from: Callable[[Sequence[str]], dict[str, str]] | None = None,
) -> tuple[list[Decision], int, Seen]:
    """The moves to make, how many linked commits were candidates, and what is now compared.
    `copies`: commits the hooks recorded as cherry-picks; `seen`: what earlier runs compared;
    `made_before`: of (old, new) pairs, those whose new commit is known to come before the old
    one (statedb.made_before); `amended_from`: of commits, those an amend made, with the commit
    each amended (statedb.amended_from).
    Only the commits `placed` asked git about can move: the others are shipped (present,
    reachable, on the main line), which no filter-repo entry or match moves."""
    copies = set(copies)
    seen = seen or Seen()
    tips_now = sorted(set(refs.main + refs.heads))
    upstream_now = refs.main[0] if refs.upstream else None
    now_seen = Seen(tips_now, upstream_now, {})
    present, unreachable, off_main = placed.present, placed.unreachable, placed.off_main
    decisions: list[Decision] = []
    moved: set[str] = set()

    # git filter-repo says exactly what became of each commit.
    filter_map = matching.read_filter_repo_map(common_dir)
    by_new: dict[str, list[str]] = {}
    present_set = set(present)
    for sha in placed.asked:
        if sha in filter_map and (sha not in present_set or sha in unreachable):
            by_new.setdefault(filter_map[sha], []).append(sha)
            moved.add(sha)
    for new, olds in sorted(by_new.items()):
        decisions.append(Decision("local-rewrite", new, sorted(olds), "filter-repo"))

    candidates = [s for s in present if s in off_main and s not in moved]
    if not candidates or not refs.main:
        return decisions, len(candidates), now_seen
    wanted = set(candidates)

    sub = graph(common_dir, candidates + refs.heads, refs.main)
    chains = [(b, c) for b, c in _chains(sub) if wanted.intersection(c)]
    if not chains:
        return decisions, len(candidates), now_seen
    lost = off(common_dir, [c[-1] for _, c in chains], refs.all_tips)  # chains no ref holds

    times = {}
    for line in run_git(
        ["log", "--no-walk=unsorted", "--stdin", "--format=%H %ct"],
        git_dir=common_dir,
        input="\n".join(c for _, cs in chains for c in cs) + "\n",
    ).splitlines():
        sha, _, ct = line.partition(" ")
        times[sha] = int(ct or 0)
    since = min(times.values(), default=0) - WINDOW_SLACK_S
    window, target_times = timed_graph(
        common_dir,
        sorted(set(refs.main + refs.heads)),
        [],
        extra=[f"--max-age={since}", f"--max-count={MAX_WINDOW}", "--date-order"],
    )
    order = list(window)  # newest first
    order.reverse()
    targets_all = [t for t in order if len(window[t]) == 1]
    # The upstream default branch: a line still on a local branch moves only when its copy
    # reached upstream (the branch was merged there), never to a local main's commit.
    upstream_line = set(graph(common_dir, [refs.main[0]], [], extra=[f"--max-age={since}"])) if refs.upstream else set()
    # A cherry-pick made here (the hook recorded it) is a copy, never a replacement.
    targets_all = [t for t in targets_all if t not in copies]
    main_line = {t for t in targets_all if t not in sub}
    # Commits new since the last run: all a commit that matched nothing then is compared with.
    window_args = [f"--max-age={since}", f"--max-count={MAX_WINDOW}"]
    fresh_any = set(graph(common_dir, tips_now, seen.tips, extra=window_args)) if seen.tips else None
    fresh_upstream = (
        set(graph(common_dir, [upstream_now], [seen.upstream], extra=window_args))
        if upstream_now and seen.upstream
        else None
    )

    def examined_as(commit: str) -> str:
        """What a commit is compared as, whatever its line: held by no ref, or by one."""
        return "lost" if commit in lost else "live"

    pools: list[list[str]] = []
    classes: list[str] = []
    for _, commits in chains:
        # A line still on a branch moves only to the upstream default branch (its branch was
        # merged there); a line no ref holds may have been restacked onto a local branch, too.
        cls = "lost" if commits[-1] in lost else "live"
        pool = targets_all if cls == "lost" else [t for t in targets_all if t in upstream_line]
        fresh = fresh_any if cls == "lost" else fresh_upstream
        # A replacement is newer than the commit it replaces (less the slack for clock skew): the
        # chain's linked commits not compared before are compared with every target since the
        # oldest of them, the ones compared before only with targets new since.  The window above
        # reaches back to the oldest chain of all, and a chain's oldest commit may be much older
        # than its linked ones (a release branch forked long ago); comparing every chain with that
        # whole window made each run after a ref change cost O(history) (the accuracy bench: 2 s
        # CPU a run after 300 pull requests, 4.6 s at most).
        # Compared before as what it is now (a lost line's older commits may be on a branch).
        pending = [
            times.get(c, 0)
            for c in commits
            if c in wanted and (fresh is None or seen.examined.get(c) != examined_as(c))
        ]
        chain_since = min(pending) - WINDOW_SLACK_S if pending else None
        pool = [
            t
            for t in pool
            if (fresh is not None and t in fresh) or (chain_since is not None and target_times.get(t, 0) >= chain_since)
        ]
        pools.append(pool)
        classes.append(cls)
    chain_commits = sorted({c for _, cs in chains for c in cs})
    facts = matching.read_facts(common_dir, sorted({t for p in pools for t in p} | set(chain_commits)))

    def _range(base: str, end: str) -> matching.Diff:
        return matching.read_range_diff(common_dir, base, end)

    def _ranges(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], matching.Diff]:
        return matching.read_range_diffs(common_dir, pairs)

    def _remerge(onto: str, end: str) -> str | None:
        return matching.remerge_tree(common_dir, onto, end)

    # Never onto a commit known to come before the one it would replace (recorded by the hooks
    # first, or the commit it was amended or rebased from), nor a `cherry-pick -x` copy onto the
    # original it names: an older commit with the same change, not its replacement.  Stop 33's
    # workflow sweep: an amend a rebase then skipped as already upstream went back to the commit
    # it amended; a cherry-pick's copy reset away (or skipped by a rebase) gave its usage to its
    # original, made before that usage, one without usage of its own (no link dates it) named by
    # the copy's trailer alone.  Such a commit keeps its usage, unreachable, as a dropped one does,
    # unless another commit reproduces it (the matcher tries the next: matching.match_range).
    refusals: dict[tuple[str, str], bool] = {}

    def refused(old: str, new: str) -> bool:
        if (old, new) not in refusals:
            before = made_before is not None and (old, new) in made_before([(old, new)])
            refusals[old, new] = before or (old in facts and any(new.startswith(p) for p in facts[old].picked_from))
        return refusals[old, new]

    cache: dict[tuple[str, str], matching.Diff] = {}
    all_matches: list[tuple[matching.Match, int]] = []  # (a match, how many commits its range held)
    for (base, commits), pool, cls in zip(chains, pools, classes):
        boundary = {p for c in commits for p in sub.get(c, ()) if p not in sub} | {base}
        exclude = frozenset(_ancestors_in(window, boundary))
        inputs = matching.Inputs(facts, pool, _range, _remerge, cache, _ranges, refused)
        for m in matching.match_chain(inputs, matching.Chain(base, tuple(commits), exclude), wanted - moved):
            size = len(m.old)
            if cls == "lost":
                # Only the commits no ref holds move with a lost line.  Its older commits may still
                # be on other branches (a branch forked from it, or the line's own branch reset
                # back): those are a live line's and move only upstream.  Moved with the lost line,
                # a commit on one branch went to its copy on another, and a rebuilt state.db
                # moved it back again, each rebuild a new move.
                kept = tuple(o for o in m.old if o in lost)
                if not kept:
                    continue
                # At the lines tier the target holds most of the range's lines, not necessarily
                # the kept commits': rebased P' and L', L' reset away and the original P made
                # reachable again, P' + L' shared 3 of 5 lines with P, and L' went to P, which
                # holds none of L's (a reconciliation sweep).  Each kept commit needs its own.
                if (
                    kept != m.old
                    and m.tier == "lines"
                    and not all(o in facts and matching.holds_most_of(facts[m.new].diff, facts[o].diff) for o in kept)
                ):
                    continue
                m = matching.Match(kept, m.new, m.tier)
            all_matches.append((m, size))

    # Leave commits alone while another remote branch (a release branch) still holds them,
    # unless that branch is a merged pull request's stale branch: every commit it has off the
    # main line was matched, and none of them is itself a `cherry picked from` copy.  (Its tip
    # alone being matched is not enough: a release branch whose newest commit is a fix copied
    # to main, or a backport copied from main, looked merged; the accuracy bench moved 12 of 36
    # release fixes that way.)
    matched_any = {old for m, _ in all_matches for old in m.old}
    held: set[str] = set()
    remote_tips = sorted({tip for _, tip in refs.other_remotes})
    if remote_tips:
        remote_sub = graph(common_dir, remote_tips, refs.main)
        for tip in remote_tips:
            on_branch = _ancestors_in(remote_sub, [tip])
            merged = all(c in matched_any and c in facts and not facts[c].cherry_picked for c in on_branch)
            if not merged:
                held |= on_branch

    all_matches = _without_moves(all_matches, refused)  # a range's commits refused one by one
    if amended_from is not None:
        all_matches = _without_amends_elsewhere(all_matches, amended_from, facts, _range)
    moves = matching.assign((m for m, _ in all_matches), wanted - moved - held)
    for _, commits in chains:
        for c in commits:
            if c in wanted and c not in moves:  # held ones too: compared, and left alone
                # Per commit, not per line: recorded as "lost" while a branch still held it, it was
                # not compared again once it was lost, and only a rebuild (no record) moved it.
                now_seen.examined[c] = examined_as(c)
    tiers: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for m, size in all_matches:
        for old in m.old:
            tiers.setdefault(old, m.tier)
            sizes.setdefault(old, size)
    grouped: dict[str, list[str]] = {}
    for old, new in moves.items():
        grouped.setdefault(new, []).append(old)
    position = {t: i for i, t in enumerate(order)}
    for new in sorted(grouped, key=lambda t: position.get(t, -1)):
        olds = grouped[new]
        if new not in main_line or refs.upstream is None:
            command = "local-rewrite"
        elif len(olds) > 1 or any(sizes[o] > 1 for o in olds):
            command = "forge-squash"
        else:
            command = "forge-rebase"
        decisions.append(Decision(command, new, olds, tiers[olds[0]]))
    return decisions, len(candidates), now_seen


def _without_moves(
    matches: list[tuple[matching.Match, int]], refused: Callable[[str, str], bool]
) -> list[tuple[matching.Match, int]]:
    """The matches less each old commit whose move onto the match's new one is `refused`."""
    kept: list[tuple[matching.Match, int]] = []
    for m, size in matches:
        olds = tuple(o for o in m.old if not refused(o, m.new))
        if olds:
            kept.append((m if olds == m.old else matching.Match(olds, m.new, m.tier), size))
    return kept


def _without_amends_elsewhere(
    matches: list[tuple[matching.Match, int]],
    amended_from: Callable[[Sequence[str]], dict[str, str]],
    facts: dict[str, matching.CommitFacts],
    range_diff: Callable[[str, str], matching.Diff],
) -> list[tuple[matching.Match, int]]:
    """The matches less each commit an amend made whose own change (the amended commit to it) a
    lines-tier target does not mostly hold.  The lines tier takes a commit whose lines the target
    mostly holds: amended after its pull request was squash-merged (the branch kept), a commit
    holds the squash's lines and the amend's, and its usage, the amend's own included, went to the
    squash, which lacks the amend's line (a reconciliation sweep).  Amended before, the squash holds
    the amend's change too, conflict resolved on the forge or not.  Such a commit keeps its usage.
    A commit amended from one git no longer has (collected) is let through, as before."""
    amends = amended_from(sorted({o for m, _ in matches if m.tier == "lines" for o in m.old}))
    if not amends:
        return matches
    kept: list[tuple[matching.Match, int]] = []
    for m, size in matches:
        olds = m.old
        if m.tier == "lines":
            olds = tuple(
                o for o in m.old if o not in amends or _holds_the_amend(facts, m.new, amends[o], o, range_diff)
            )
            if not olds:
                continue
        kept.append((m if olds == m.old else matching.Match(olds, m.new, m.tier), size))
    return kept


def _holds_the_amend(
    facts: dict[str, matching.CommitFacts],
    target: str,
    before: str,
    after: str,
    range_diff: Callable[[str, str], matching.Diff],
) -> bool:
    try:
        own = range_diff(before, after)
    except GitError:
        return True
    return target in facts and matching.holds_most_of(facts[target].diff, own)


# --- driver -------------------------------------------------------------------------------


def seen_record(changes: dict[str, Any], time_ms: int) -> dict[str, Any]:
    """The spool line of what a run compared and left (Seen.changes_from)."""
    return {"v": 1, "kind": records.RECONCILE_SEEN, "time": time_ms, **changes}


def record(decision: Decision, time_ms: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": RECORD_KIND,
        "time": time_ms,
        "command": decision.command,
        "tier": decision.tier,
        "pairs": [[old, decision.new] for old in decision.olds],
    }


def _git_dirs(common_dir: str) -> list[str]:
    """The main worktree's git dir and every linked worktree's (`worktrees/<name>`)."""
    git_dirs = [common_dir]
    try:
        git_dirs += [e.path for e in os.scandir(os.path.join(common_dir, "worktrees")) if e.is_dir()]
    except OSError:
        pass
    return git_dirs


def _rewrite_under_way(common_dir: str) -> bool:
    """A rebase or sequencer run in progress in the main worktree or a linked one."""
    return any(
        os.path.isdir(os.path.join(d, s)) for d in _git_dirs(common_dir) for s in ("rebase-merge", "rebase-apply")
    )


AMEND_REWRITE_WAIT_S = 10


def _amend_awaits_its_rewrite(common_dir: str, spool_path: str) -> bool:
    """In some worktree, HEAD's newest reflog entry is an amend written moments ago whose
    post-rewrite record (git runs that hook right after post-commit) is not in the spool yet.  The
    amended commit is already off every branch, and a move decided now would race the hook's own
    rewrite event.  Every worktree's HEAD has a reflog of its own (`worktrees/<name>/logs/HEAD`):
    reading the main one alone, an amend in a linked worktree was reconciled before its record
    came, and its usage moved twice (once by us, once by the hook)."""
    return any(
        _amend_in_reflog_awaits_its_rewrite(os.path.join(d, "logs", "HEAD"), spool_path) for d in _git_dirs(common_dir)
    )


def _amend_in_reflog_awaits_its_rewrite(log: str, spool_path: str) -> bool:
    """The wait is measured on the reflog file's modification time (the real clock; entries carry
    the committer date, which may be anything), and only delays: the move itself, when a
    hook-less amend needs one, is decided and recorded by a later run."""
    try:
        if time.time() - os.stat(log).st_mtime >= AMEND_REWRITE_WAIT_S:
            return False
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (16 << 10)))
            lines = f.read().splitlines()
    except OSError:
        return False
    if not lines:
        return False
    head, _, subject = lines[-1].decode("utf-8", "replace").partition("\t")
    parts = head.split(" ")
    if len(parts) < 2 or not subject.startswith("commit (amend)"):
        return False
    new = parts[1]
    try:
        with open(spool_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (64 << 10)))
            tail = f.read().splitlines()
    except OSError:
        return True
    for raw in reversed(tail):
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        pairs = rec.get("pairs") if isinstance(rec, dict) and rec.get("hook") == "post-rewrite" else None
        if any(isinstance(p, list) and len(p) >= 2 and p[1] == new for p in pairs or []):
            return False
    return True


def run(conn: sqlite3.Connection, state_dir: Path, *, force: bool = False) -> Outcome:
    """Reconcile the repository that owns `state_dir` (never from the commit hook).

    Ingest must have run first; when moves are decided they are appended to the spool and
    ingested here.  Never raises for git trouble: the outcome's `error` says what went wrong.
    """
    from periscope_hooks import paths, spool
    from periscope_hooks.state import transaction

    common_dir = str(state_dir.parent)
    outcome = Outcome()
    if not os.path.exists(os.path.join(common_dir, "HEAD")):
        return outcome
    try:
        refs = _refs_the_state_has_caught_up_with(conn, state_dir)
        if refs is None:
            return outcome
        stamp = _filter_map_stamp(common_dir)
        marks = statedb.link_marks(conn)
        fingerprint = _fingerprint(refs.fingerprint, marks, stamp)
        if not force and statedb.get_meta(conn, statedb.Meta.RECONCILE_FINGERPRINT) == fingerprint:
            return outcome
        outcome.ran = True
        before = statedb.get_meta(conn, statedb.Meta.RECONCILE_MAIN_LINE)
        forward = main_line_moved_forward(common_dir, refs, before)
        since = statedb.reconcile_marks(conn)
        placed, gone = _placement(conn, common_dir, refs, forward, since, marks)
        copies = statedb.cherry_pick_commits(conn)
        seen_before = Seen.load(statedb.get_meta(conn, statedb.Meta.RECONCILE_SEEN))

        def made_before(pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
            return statedb.made_before(conn, pairs)

        def amended_from(shas: Sequence[str]) -> dict[str, str]:
            return statedb.amended_from(conn, shas)

        decisions, outcome.candidates, seen = decide(
            common_dir, refs, placed, copies, seen_before, made_before, amended_from
        )
        for rounds in range(1, MAX_ROUNDS + 1):
            if not decisions:
                break
            now = int(time.time() * 1000)
            for d in decisions:
                spool.append(str(state_dir / paths.SPOOL_NAME), record(d, now))
            outcome.decisions += decisions
            process_spool(state_dir, conn)
            # The moved commits are on the main line now: read their status again.
            marks = statedb.link_marks(conn)
            fingerprint = _fingerprint(refs.fingerprint, marks, stamp)
            placed, gone = _placement(conn, common_dir, refs, forward, since, marks)
            if rounds == MAX_ROUNDS:
                break
            # Decided again on what the moves made (a commit moved onto an exact copy of it takes
            # the copy's cherry-pick link along: the copy is no target any more), with what was
            # compared before this run: a rebuild replays the moves, then compares every commit
            # on that state.  Decided once, X moved onto such a copy and its successor Y stayed
            # lost, where the rebuild moved Y onto the commit that reproduces X+Y (a workflow sweep).
            copies = statedb.cherry_pick_commits(conn)
            decisions, _, seen = decide(common_dir, refs, placed, copies, seen_before, made_before, amended_from)
        # What was compared and left goes to the spool too, and comes back by ingest: a state.db
        # rebuilt from the spool then compares what this one would.  Kept in state.db alone, a
        # release fix held by its remote branch, compared and left, was moved by a rebuild once
        # that branch was pruned (the next run here compared it with nothing new).
        changes = seen.kept().changes_from(seen_before)
        if changes is not None:
            spool.append(str(state_dir / paths.SPOOL_NAME), seen_record(changes, int(time.time() * 1000)))
            process_spool(state_dir, conn)
        with transaction(conn):
            statedb.store_reconcile_status(
                conn,
                placed.status(),
                fingerprint,
                main_line_key(refs),
                complete=placed.complete,
                marks=marks,
                gone=gone,
            )
    except (GitError, OSError, ValueError) as e:
        outcome.error = str(e)
    return outcome


SETTLE_ATTEMPTS = 3
MAX_ROUNDS = 3  # decide(), ingest its moves, decide again: a run's moves settle in one or two


def _refs_the_state_has_caught_up_with(conn: sqlite3.Connection, state_dir: Path) -> Refs | None:
    """The refs, read once every hook record about how they got there is ingested; None while a
    rewrite's hook has yet to write it (the run is then left to the flusher that hook starts).

    The order matters.  git moves a branch before post-rewrite records the old -> new pairs, so
    the guards are asked after the refs are read: a rebase's state folder is still there while
    that hook runs, and an amend is HEAD's newest reflog entry until something else happens, by
    which time its hooks have written their records.  Those records are then ingested before
    anything is compared: state ingested before the refs were read does not know of a rewrite
    made in between (an amend followed by a checkout, while a background flusher had ingested
    just before: the amended-away commit looked rewritten by hand and got a second, wrong move).
    Ingesting changes nothing git holds, so the refs are read again after it; a spool that keeps
    growing (an agent at work) gets a few rounds, then the writer's own flusher decides."""
    from periscope_hooks import paths
    from periscope_hooks.ingest.spool_reader import unread

    common_dir = str(state_dir.parent)
    spool_path = str(state_dir / paths.SPOOL_NAME)
    for _ in range(SETTLE_ATTEMPTS):
        refs = read_refs(common_dir)
        if _rewrite_under_way(common_dir) or _amend_awaits_its_rewrite(common_dir, spool_path):
            # A move decided now would race the hook's own rewrite and emit a second, different
            # rewrite event.  Nothing is stored, so the next run decides.
            return None
        if not unread(conn, spool_path) or process_spool(state_dir, conn).records == 0:
            return refs  # nothing new, or only a line still being written
    return None


def _placement(
    conn: sqlite3.Connection,
    common_dir: str,
    refs: Refs,
    forward: bool,
    since: tuple[int, int] | None,
    marks: tuple[int, int],
) -> tuple[Placement, set[str] | None]:
    """Place the linked commits whose row in the status cache may be missing or may change, and
    say which rows go (None: every row not rewritten goes).  With the main line only moved forward
    and the cache's link_marks known, those are the rows not shipped and the commits linked or
    moved since the marks: an index and two rowid ranges, where listing every linked commit and
    every shipped one cost about 0.1 s of the flush after a commit at 50,000 linked commits.
    Otherwise every linked commit is read (and asked about, but for the shipped ones when the main
    line only moved forward)."""
    if forward and since is not None and since[0] <= marks[0] and since[1] <= marks[1]:
        linked, gone = statedb.reconcile_changes(conn, since, marks)
        return place_only(common_dir, refs, sorted(linked), complete=False), gone
    still_shipped = statedb.shipped_commits(conn) if forward else []
    return place(common_dir, refs, statedb.linked_commits(conn), still_shipped=still_shipped), None


def refresh(conn: sqlite3.Connection, state_dir: Path) -> Outcome:
    """`run` for the flusher, `report` and `status`: trouble goes to hook.log, never out."""
    from periscope_hooks import logfile, paths

    outcome = run(conn, state_dir)
    if outcome.error:
        logfile.log_line(state_dir / paths.HOOK_LOG_NAME, f"reconcile: skipped: {outcome.error}")
    return outcome


def refresh_unless_read_only(conn: sqlite3.Connection, state_dir: Path) -> None:
    """`refresh` for the read commands (`report`, `status`, `dashboard`): on a state.db opened
    read-only (a read-only state folder) the status recorded before is what they show."""
    try:
        refresh(conn, state_dir)
    except sqlite3.OperationalError as e:
        if "readonly" not in str(e):
            raise


def shipped_share(costs: Sequence[float], list_costs: Sequence[float | None], shipped: Sequence[bool]) -> str:
    """The AI cost that reached the upstream default branch, and its share (report's totals row),
    one entry per commit; the rest stayed on unmerged or abandoned branches.  The list price's
    share follows when it tells another story than the reported cost (Claude Code reports none:
    its cost is the list price alone; a plan reports 0)."""
    from periscope_hooks.events import round_cost

    def share(figures: Sequence[float]) -> tuple[float, str]:
        total = round_cost(figures)
        part = round_cost(f for f, s in zip(figures, shipped) if s)
        return total, f"${part:.4f} ({100 * part / total:.0f}%)" if total else f"${part:.4f}"

    total, text = share(costs)
    if all(c is None for c in list_costs):
        return text
    total_list, list_text = share([c or 0.0 for c in list_costs])
    return text if f"{total_list:.4f}" == f"{total:.4f}" else f"{text}, list {list_text}"


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(commits reconciled so far, linked commits still off the main line) for `status`."""
    return statedb.reconcile_counts(conn, COMMANDS)


def describe(outcome: Outcome) -> str:
    return json.dumps([d.__dict__ for d in outcome.decisions])
