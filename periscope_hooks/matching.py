"""Which commit replaced which: matching rewritten commits to their replacements.

Plain functions over git data.  A *chain* is a line of commits that left the main line (a
branch, or the unreachable remains of one); a *target* is a commit that may have replaced some
of them (a forge's squash or rebase-merge commit, a restacked commit on a local branch).
Walking a chain from its base, the shortest range `base..ck` that a target reproduces is
assigned to that target, and the next range starts after `ck`.  That one rule covers a rebase
merge (every range is one commit), a squash (one range is the whole pull request) and stacked
pull requests (one range each).

What counts as "reproduces", strongest first (measured on simulated forges and 1,102 real
squash-merged pull requests, see docs/reconciliation.md):

1. **exact**: the zero-context patch ids are equal.  Plain `git patch-id` hashes 3 context
   lines and fails as soon as main changed a line near a hunk; without context it does not.
2. **re-merge**: merging the range's end onto the target's parent (`git merge-tree`) gives the
   target's tree: the forge's squash is exactly the branch merged onto main as it was then.
3. **lines**: the same files, the same author, and most changed lines shared: a conflict
   resolved in the forge's web editor changes a few lines of the squash.

Guards against false matches, whatever the tier: a target never is an ancestor of the chain; a
`(cherry picked from commit ...)` copy never replaces anything; a trivial change (a few lines,
a version bump) moves only to a target by the same author; the oldest matching target wins;
one old commit moves to at most one new commit (a new commit may take several).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

TRIVIAL_CHANGES = 4  # changed lines at or below which a match needs the same author
LINES_MIN_SIMILARITY = 0.6  # share of changed lines a forge-edited squash must keep
_CHERRY_PICK_RE = re.compile(r"\(cherry picked from commit ([0-9a-f]{7,64})\)")
_SEP_RECORD = "\x1e"
_SEP_FIELD = "\x1f"
_SEP_END = "\x1d"
_LOG_FORMAT = f"{_SEP_RECORD}%H{_SEP_FIELD}%P{_SEP_FIELD}%T{_SEP_FIELD}%ae{_SEP_FIELD}%at{_SEP_FIELD}%ce{_SEP_FIELD}%ct{_SEP_FIELD}%B{_SEP_END}"

Change = tuple[str, str, str]  # (path, kind: + - B(inary) M(ode), the line without whitespace)


@dataclass(frozen=True)
class Diff:
    """A change set: what a commit or a range of commits did, as zero-context diff lines."""

    changes: tuple[Change, ...]

    # Cached: each target's diff is compared with every range of every chain (the accuracy
    # bench's 300 pull requests spent most of their matching time re-hashing the same diffs).
    @cached_property
    def paths(self) -> frozenset[str]:
        return frozenset(c[0] for c in self.changes)

    @cached_property
    def patch_id(self) -> str:
        """Like `git patch-id` over a `-U0` diff: line numbers and whitespace do not count."""
        h = hashlib.sha1()
        for path, kind, line in self.changes:
            h.update(f"{path}\0{kind}{line}\n".encode("utf-8", "replace"))
        return h.hexdigest()

    @cached_property
    def added(self) -> frozenset[Change]:
        """The lines it adds (all its lines when it only removes): what the lines tier compares.
        Removed lines are left out: they are what the base held, and main moving under the
        branch (the conflict) changed exactly those."""
        return frozenset(c for c in self.changes if c[1] != "-") or frozenset(self.changes)

    @cached_property
    def trivial(self) -> bool:
        return len(self.changes) <= TRIVIAL_CHANGES


@dataclass(frozen=True)
class CommitFacts:
    sha: str
    parents: tuple[str, ...]
    tree: str
    author: str  # e-mail, lower case
    author_time: int
    committer: str
    commit_time: int
    picked_from: tuple[str, ...]  # the commits its `(cherry picked from commit ...)` lines name, as written
    diff: Diff

    @property
    def cherry_picked(self) -> bool:
        return bool(self.picked_from)


@dataclass(frozen=True)
class Chain:
    """Commits that left the main line, oldest first; `base` is the parent of the first."""

    base: str
    commits: tuple[str, ...]
    exclude: frozenset[str] = frozenset()  # the chain's ancestors among the targets


@dataclass(frozen=True)
class Match:
    old: tuple[str, ...]  # the range's commits, oldest first
    new: str
    tier: str  # exact | re-merge | lines


@dataclass
class Inputs:
    """What the matcher needs to know; `reconcile` fills it from git, tests may too."""

    facts: dict[str, CommitFacts]  # chain commits and targets
    targets: list[str]  # oldest first
    range_diff: Callable[[str, str], Diff]  # (base, end) -> the range's diff
    remerge_tree: Callable[[str, str], str | None]  # (target's parent, end) -> merged tree or None
    cache: dict[tuple[str, str], Diff] = field(default_factory=dict)
    range_diffs: Callable[[list[tuple[str, str]]], dict[tuple[str, str], Diff]] | None = None  # many at once
    # (old, new): never move `old` onto `new` (reconcile's rules); a target refused for every
    # commit of a range is passed over for the next one that reproduces it.
    refused: Callable[[str, str], bool] | None = None

    def prefetch(self, base: str, ends: Sequence[str]) -> None:
        """Read the diffs of base..end for all `ends` at once (one process, not one each)."""
        missing = [(base, e) for e in dict.fromkeys(ends) if (base, e) not in self.cache]
        if self.range_diffs is not None and len(missing) > 1:
            self.cache.update(self.range_diffs(missing))

    def diff_of(self, base: str, end: str, commits: Sequence[str]) -> Diff:
        if len(commits) == 1 and commits[0] in self.facts and self.facts[commits[0]].parents[:1] == (base,):
            return self.facts[commits[0]].diff
        key = (base, end)
        if key not in self.cache:
            self.cache[key] = self.range_diff(base, end)
        return self.cache[key]


def _similarity(a: Diff, b: Diff) -> float:
    """Shared share of the lines each side adds (Diff.added)."""
    sa, sb = a.added, b.added
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def holds_most_of(target: Diff, part: Diff) -> bool:
    """Whether `target` adds most of the lines `part` adds (the lines tier's share): a lines-tier
    match found for a range and trimmed to some of its commits moves those only where their own
    change went."""
    added = part.added
    return not added or len(added & target.added) / len(added) >= LINES_MIN_SIMILARITY


TIER_STRENGTH = {"exact": 3, "re-merge": 2, "lines": 1}
MAX_EXTEND = 30  # commits past a match tried for a better fit with the same target


def _reproduces(inputs: Inputs, diff: Diff, authors: set[str], end: str, t: str) -> tuple[str, float] | None:
    """(tier, fit) when target `t` reproduces the range whose diff is `diff`, else None."""
    tf = inputs.facts[t]
    if tf.cherry_picked or len(tf.parents) != 1 or not tf.diff.changes:
        return None
    same_author = tf.author in authors
    if (diff.trivial or tf.diff.trivial) and not same_author:
        return None
    if tf.diff.patch_id == diff.patch_id:
        return "exact", 1.0
    if tf.diff.paths != diff.paths:
        return None
    if inputs.remerge_tree(tf.parents[0], end) == tf.tree:
        return "re-merge", 1.0
    if same_author and not diff.trivial:
        fit = _similarity(diff, tf.diff)
        if fit >= LINES_MIN_SIMILARITY:
            return "lines", fit
    return None


def _authors(inputs: Inputs, commits: Sequence[str]) -> set[str]:
    return {inputs.facts[c].author for c in commits if c in inputs.facts}


def match_range(inputs: Inputs, base: str, commits: Sequence[str], candidates: Iterable[str]) -> Match | None:
    """The oldest target that reproduces `base..commits[-1]` and that no commit of the range is
    refused a move onto (Inputs.refused), or None.  Refused: the next one is tried (only the
    oldest was, and a lost commit whose oldest match was the commit it was rebased from kept its
    usage, unreachable, though the rebased copy was on the main line; a workflow sweep)."""
    candidates = list(candidates)
    if not candidates:
        return None  # no range diff to read (a `git diff` each)
    end = commits[-1]
    diff = inputs.diff_of(base, end, commits)
    if not diff.changes:
        return None
    authors = _authors(inputs, commits)
    refused = inputs.refused
    for t in candidates:  # oldest first: the first match wins
        found = _reproduces(inputs, diff, authors, end, t)
        if found is not None and not (refused is not None and all(refused(c, t) for c in commits)):
            return Match(tuple(commits), t, found[0])
    return None


def _best_fit(inputs: Inputs, base: str, chain: Sequence[str], start: int, k: int, m: Match) -> tuple[int, Match]:
    """The range from `start` that `m.new` reproduces best: strongest tier, then most lines
    shared, then longest.  The shortest range that matches is not always the whole story: a
    squash often shares most of its lines with the branch's first commit alone (the lines tier
    then matches that one commit, and the later commits, compared on their own, do not), while
    the whole branch is reproduced exactly or by the re-merge.  Only the same target is tried,
    so a range never takes commits that another target reproduces better."""
    best = (TIER_STRENGTH[m.tier], 1.0 if m.tier != "lines" else _fit(inputs, base, chain[start : k + 1], m.new))
    best_k, best_m = k, m
    if best[0] == TIER_STRENGTH["exact"]:
        return best_k, best_m  # a longer range would only add commits that change nothing
    for k2 in range(k + 1, min(len(chain), k + 1 + MAX_EXTEND)):
        commits = chain[start : k2 + 1]
        diff = inputs.diff_of(base, commits[-1], commits)
        if not diff.changes:
            continue
        found = _reproduces(inputs, diff, _authors(inputs, commits), commits[-1], m.new)
        if found is None:
            continue
        score = (TIER_STRENGTH[found[0]], found[1])
        if score >= best:
            best, best_k, best_m = score, k2, Match(tuple(commits), m.new, found[0])
    return best_k, best_m


def _fit(inputs: Inputs, base: str, commits: Sequence[str], target: str) -> float:
    return _similarity(inputs.diff_of(base, commits[-1], commits), inputs.facts[target].diff)


def match_chain(inputs: Inputs, chain: Chain, wanted: set[str]) -> list[Match]:
    """Walk `chain` from its base; each shortest range a target reproduces goes to that target.

    Only ranges that hold a `wanted` (linked, not yet moved) commit are tried; the walk still
    passes over the others, because a squash holds the unlinked commits of its branch too.
    """
    candidates = [t for t in inputs.targets if t not in chain.exclude and t not in chain.commits]
    matches: list[Match] = []
    base, start = chain.base, 0
    last_wanted = max((i for i, c in enumerate(chain.commits) if c in wanted), default=-1)
    k = 0
    prefetched: set[str] = set()
    while k < len(chain.commits) and start <= last_wanted:
        if candidates and base not in prefetched:
            # every range this walk may ask for from this base: up to the last wanted commit, and
            # past it as far as a match may grow
            prefetched.add(base)
            inputs.prefetch(base, chain.commits[start + 1 : last_wanted + 1 + MAX_EXTEND])
        first, range_base = start, base
        found = match_range(inputs, base, chain.commits[start : k + 1], candidates)
        if found is None and k > start:
            # The commit on its own: a rebase merge whose earlier commit did not survive as it was
            # (a conflict, dropped) still matches commit by commit after it.
            first, range_base = k, chain.commits[k - 1]
            found = match_range(inputs, range_base, chain.commits[k : k + 1], candidates)
        if found is not None:
            k, found = _best_fit(inputs, range_base, chain.commits, first, k, found)
            matches.append(found)
            base, start = chain.commits[k], k + 1
        k += 1
    return matches


def assign(matches: Iterable[Match], wanted: set[str]) -> dict[str, str]:
    """old -> new for the wanted commits: each old commit once, the first match kept."""
    moves: dict[str, str] = {}
    for m in matches:
        for old in m.old:
            if old in wanted and old not in moves:
                moves[old] = m.new
    return moves


# --- reading git data ---------------------------------------------------------------------


def parse_diff(text: str) -> Diff:
    """Changes from a `-U0 --no-renames` patch (the part after a commit's header)."""
    changes: list[Change] = []
    path = ""
    in_hunk = False
    for line in text.split("\n"):
        if line.startswith("diff --git "):
            in_hunk = False
            # `diff --git a/x b/x`: the b side, taken from the header so a pure mode change has it too
            path = line.rsplit(" b/", 1)[-1] if " b/" in line else line[len("diff --git ") :]
        elif not in_hunk:
            if line.startswith("@@"):
                in_hunk = True
            elif line.startswith("Binary files "):
                changes.append((path, "B", line))
            elif line.startswith(("new mode ", "new file mode ", "deleted file mode ")):
                changes.append((path, "M", line))
        elif line.startswith("@@"):
            continue
        elif line.startswith(("+", "-")):
            changes.append((path, line[0], "".join(line[1:].split())))
    return Diff(tuple(changes))


def read_facts(common_dir: str, shas: Sequence[str]) -> dict[str, CommitFacts]:
    """Facts and zero-context diffs of the given commits, in one `git log` call."""
    from periscope_hooks.git import run_git

    if not shas:
        return {}
    out = run_git(
        [
            "log",
            "--no-walk=unsorted",
            "--stdin",
            "-p",
            "-U0",
            "--no-renames",
            "--no-color",
            "--no-ext-diff",
            "--diff-merges=off",
            f"--format={_LOG_FORMAT}",
        ],
        git_dir=common_dir,
        input="\n".join(shas) + "\n",
        timeout=300,
    )
    facts: dict[str, CommitFacts] = {}
    for record in out.split(_SEP_RECORD)[1:]:
        head, _, patch = record.partition(_SEP_END)
        fields = head.split(_SEP_FIELD, 7)
        if len(fields) < 8:
            continue
        sha, parents, tree, author, atime, committer, ctime, body = fields
        facts[sha] = CommitFacts(
            sha=sha,
            parents=tuple(parents.split()),
            tree=tree,
            author=author.lower(),
            author_time=int(atime or 0),
            committer=committer.lower(),
            commit_time=int(ctime or 0),
            picked_from=tuple(_CHERRY_PICK_RE.findall(body)),
            diff=parse_diff(patch),
        )
    return facts


def read_range_diff(common_dir: str, base: str, end: str) -> Diff:
    from periscope_hooks.git import run_git

    return parse_diff(
        run_git(["diff", "-U0", "--no-renames", "--no-color", "--no-ext-diff", base, end], git_dir=common_dir)
    )


def read_range_diffs(common_dir: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Diff]:
    """`read_range_diff` for many (base, end) pairs in one `git diff-tree --stdin` (a process per
    range was most of matching's cost: a chain's walk asks for base..c for each of its commits).
    Each pair is given as `end base`, which diff-tree reads as a commit and its parent (so the
    diff is base..end); it echoes the first commit before each patch, and the ends are distinct
    where the bases are not (a pair with no change prints nothing)."""
    from periscope_hooks.git import run_git

    ends = {end: (base, end) for base, end in pairs}
    if len(ends) != len(pairs):
        raise ValueError("read_range_diffs: each end once")
    out = run_git(
        ["diff-tree", "--stdin", "-r", "-p", "-U0", "--no-renames", "--no-color", "--no-ext-diff"],
        git_dir=common_dir,
        input="".join(f"{end} {base}\n" for base, end in pairs),
        timeout=300,
    )
    found: dict[tuple[str, str], list[str]] = {}
    current: list[str] | None = None
    for line in out.split("\n"):
        if line in ends:
            current = found.setdefault(ends[line], [])
        elif current is not None:
            current.append(line)
    return {pair: parse_diff("\n".join(found.get(pair, []))) for pair in pairs}


def remerge_tree(common_dir: str, onto: str, end: str) -> str | None:
    """The tree of `end` merged onto `onto` (merge base found by git), None on a conflict.

    `git merge-tree --write-tree` (git 2.38+) writes only objects, never refs or the worktree.
    """
    from periscope_hooks.git import GitError, run_git

    try:
        out = run_git(["merge-tree", "--write-tree", "--no-messages", onto, end], git_dir=common_dir, check=True)
    except GitError:
        return None  # a conflict (exit 1), or a git too old for --write-tree
    first = out.split("\n", 1)[0].strip()
    return first or None


def read_filter_repo_map(common_dir: str) -> dict[str, str]:
    """`git filter-repo` leaves old -> new pairs in .git/filter-repo/commit-map (a pruned
    commit maps to all zeros and is left out)."""
    import os

    pairs: dict[str, str] = {}
    try:
        with open(os.path.join(common_dir, "filter-repo", "commit-map"), encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] != "old" and parts[0] != parts[1] and parts[1].strip("0"):
                    pairs[parts[0]] = parts[1]
    except OSError:
        return {}
    return pairs
