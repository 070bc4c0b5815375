"""Reconciliation accuracy: hundreds of simulated forge merges on a real code base, scored.

Real pull-request history cannot be fetched here (the network reaches PyPI, npm and Debian only),
so this is the closest honest substitute: a forge whose code base is real source (--files .py
files of the running interpreter's standard library, copied into a temp dir at bench time;
nothing third-party is committed here), a developer clone with the periscope hooks installed,
and --prs pull requests by that developer, each a branch of 1-6 commits with AI usage in the
spool, committed through the real hooks.  Each commit makes realistic edits: modify a line (an
identifier, a literal, a comment), add lines or a function, delete lines or a function (no
renames).  Meanwhile other authors move main: their own changes to any file, a line 2-3 lines
from one of a pull request's hunks (which breaks plain `git patch-id`), or a line the pull request
changed too (a conflict, resolved in the forge's web editor, so the squash's tree differs from the
plain merge in a few lines).  Each pull request is then merged the way its scenario says:

- `squash-unrelated`, `squash-nearby`, `squash-web-conflict`: GitHub's **Squash and merge**, one
  commit "Title (#N)" by the author whose tree is the merge result; any squash whose merge
  conflicted (other pull requests touch the same files) is counted as `squash-web-conflict`;
- `rebase-merge`: GitHub's **Rebase and merge**, each commit replayed with a new committer;
- `gitlab-merge-commit`: the originals stay reachable (nothing may move);
- `gitlab-squash-merge-commit`: GitLab's squash commit on the branch's base, then a merge commit;
- `bump-same-author`: a one-line version bump, squashed (must move: same author);
- `bump-other-author`: the developer's bump is abandoned, someone else lands the identical bump
  (nothing may move);
- `release-fix-picked`: a fix committed on a release branch, copied to main by a maintainer
  (`cherry-pick -x` or a plain one); the release branch keeps it (nothing may move);
- `backport`: a pull request squashed to main, then its squash copied to the release branch with
  `cherry-pick -x` (the usage goes to main's squash, never to the copy);
- `abandoned`: a branch closed unmerged (nothing may move).

After each round of merges the developer pulls (`git pull --prune --ff-only`), deletes most merged
branches (a quarter are kept locally), and reconciliation runs as the background flusher runs it:
the end-to-end path (`process_spool`, then `reconcile.run` on the clone's real state dir; the
decisions are appended to the spool as `reconcile` records and ingested).  At the end every linked
commit's `current_sha` in state.db is compared with where the simulation knows its code went:

- right: on the commit that holds its code on main (or left alone where it must stay);
- wrong: on any other commit (must be 0);
- unmatched: left on the old commit although its code reached main.

For the squash scenarios the plain `git patch-id --stable` of the branch and of the squash are
compared too, to show which cases defeat it.  Deterministic: --seed fixes the corpus, the dates
and so every SHA.

    .venv/bin/python bench/reconcile_accuracy.py [--prs 300] [--seed 12] [--files 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from reconcile_scale import isolate  # noqa: E402

DEV = ("Dev", "dev@example.com")
OTHERS = [("Alice Other", "alice@example.com"), ("Bob Other", "bob@example.com"), ("Carol Other", "carol@example.com")]
GITHUB = ("GitHub", "noreply@github.com")
GITLAB = ("GitLab", "gitlab@example.com")
VERSION_FILE = "pyproject.toml"

# Scenario weights for the developer's pull requests (of --prs).
WEIGHTS = {
    "squash-unrelated": 20,
    "squash-nearby": 20,
    "squash-web-conflict": 11,
    "rebase-merge": 15,
    "gitlab-merge-commit": 7,
    "gitlab-squash-merge-commit": 5,
    "bump-same-author": 4,
    "bump-other-author": 4,
    "release-fix-picked": 5,
    "backport": 4,
    "abandoned": 5,
}
MUST_STAY = {"gitlab-merge-commit", "bump-other-author", "release-fix-picked", "abandoned"}
SQUASHES = {"squash-unrelated", "squash-nearby", "squash-web-conflict", "bump-same-author", "backport"}
WORDS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


class Clock:
    """Commit dates: five minutes per commit written, from a fixed start (so the SHAs are seeded
    too).  300 pull requests then span about ten days, some 90 commits a day on main: a busy
    project, whose pull requests stay open for hours to a day."""

    def __init__(self) -> None:
        self.t = 1_750_000_000

    def env(self, author: tuple[str, str], committer: tuple[str, str] | None = None) -> dict[str, str]:
        self.t += 300
        c = committer or author
        date = f"@{self.t} +0000"
        return {
            "GIT_AUTHOR_NAME": author[0],
            "GIT_AUTHOR_EMAIL": author[1],
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": c[0],
            "GIT_COMMITTER_EMAIL": c[1],
            "GIT_COMMITTER_DATE": date,
        }


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        input=input,
    )
    if check and proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr}{proc.stdout}")
    return proc.stdout.strip()


# --- the code base and realistic edits ---------------------------------------------------------


def source_files(count: int, rng: random.Random) -> dict[str, str]:
    """`count` real .py files of the standard library, 150-1500 lines each (never committed here)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for p in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in p.parts[-2] or p.name.startswith("test"):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if 150 <= text.count("\n") <= 1500:
            found.append((str(p.relative_to(stdlib)), text))
    picked = rng.sample(found, min(count, len(found)))
    return {f"src/{name}": text for name, text in sorted(picked)}


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _code_lines(lines: list[str]) -> list[int]:
    return [i for i, s in enumerate(lines) if s.strip() and not s.lstrip().startswith(("#", '"""', "'''", "@"))]


class Editor:
    """Edits that look like a developer's: new names from the file's own vocabulary."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _name(self, lines: list[str]) -> str:
        vocab = [w for w in WORDS.findall("".join(lines[:400])) if not keyword.iskeyword(w) and len(w) < 14]
        a, b = self.rng.choice(vocab or ["value"]), self.rng.choice(vocab or ["item"])
        return f"{a.strip('_').lower()}_{b.strip('_').lower()}_{self.rng.randint(2, 99)}"

    def modify(self, lines: list[str]) -> bool:
        code = _code_lines(lines)
        if not code:
            return False
        i = self.rng.choice(code)
        line = lines[i].rstrip("\n")
        words = [w for w in WORDS.findall(line) if not keyword.iskeyword(w)]
        numbers = re.findall(r"\b\d+\b", line)
        choice = self.rng.random()
        if numbers and choice < 0.25:
            n = self.rng.choice(numbers)
            line = line.replace(n, str(int(n) + self.rng.randint(1, 9)), 1)
        elif words and choice < 0.75:
            w = self.rng.choice(words)
            line = line.replace(w, f"{w}_{self._name(lines).split('_')[0]}", 1)
        else:
            line = f"{line}  # {self._name(lines).replace('_', ' ')}"
        lines[i] = line + "\n"
        return True

    def add_lines(self, lines: list[str]) -> bool:
        code = _code_lines(lines)
        if not code:
            return False
        i = self.rng.choice(code)
        ind = _indent(lines[i])
        if lines[i].rstrip().endswith(":"):
            ind += "    "
        name = self._name(lines)
        new = [f"{ind}{name} = {self.rng.choice(['None', '0', '[]', '{}', 'False'])}\n"]
        if self.rng.random() < 0.6:
            new.append(f"{ind}if {name} is not None:\n")
            new.append(f"{ind}    {name} = {self._name(lines)}({name})\n")
        lines[i + 1 : i + 1] = new
        return True

    def add_function(self, lines: list[str]) -> bool:
        starts = [i for i, s in enumerate(lines) if s.lstrip().startswith("def ")]
        if not starts:
            return False
        i = self.rng.choice(starts)
        while i > 0 and lines[i - 1].lstrip().startswith("@"):
            i -= 1
        ind = _indent(lines[i])
        name = self._name(lines)
        args = ", ".join(sorted({self._name(lines).split("_")[0] for _ in range(self.rng.randint(1, 3))}))
        if ind:
            args = f"self, {args}"
        body = [f"{ind}def {name}({args}):\n", f'{ind}    """{name.replace("_", " ").capitalize()}."""\n']
        for _ in range(self.rng.randint(2, 8)):
            body.append(f"{ind}    {self._name(lines)} = {self._name(lines)}({args.split(', ')[-1]})\n")
        body.append(f"{ind}    return {args.split(', ')[-1]}\n")
        body.append("\n" if ind else "\n\n")
        lines[i:i] = body
        return True

    def delete_lines(self, lines: list[str]) -> bool:
        code = _code_lines(lines)
        if len(code) < 10:
            return False
        i = self.rng.choice(code)
        n = self.rng.randint(1, 4)
        del lines[i : i + n]
        return True

    def delete_function(self, lines: list[str]) -> bool:
        starts = [i for i, s in enumerate(lines) if s.lstrip().startswith("def ")]
        if len(starts) < 3:
            return False
        i = self.rng.choice(starts)
        ind = len(_indent(lines[i]))
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(_indent(lines[j])) > ind):
            j += 1
        if j - i > 40:
            return False
        del lines[i:j]
        return True

    def commit_edits(self, lines: list[str]) -> None:
        ops = [self.modify] * 5 + [self.add_lines] * 3 + [self.add_function] * 2 + [self.delete_lines] * 2
        ops.append(self.delete_function)
        for _ in range(self.rng.randint(1, 3)):
            for _attempt in range(5):
                if self.rng.choice(ops)(lines):
                    break


def _cpu() -> float:
    """User + system time of this process and its children (the git processes): the machine is
    shared, so CPU time is the steadier figure."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


# --- the simulation ----------------------------------------------------------------------------


@dataclass
class PullRequest:
    number: int
    scenario: str
    branch: str
    files: list[str]
    commits: list[str] = field(default_factory=list)
    merge_round: int = 0
    expected: dict[str, str] = field(default_factory=dict)  # old -> where its usage belongs
    plain_patch_id: bool | None = None  # squash scenarios: plain `git patch-id` would match


class Simulation:
    def __init__(self, base: Path, seed: int, files: int) -> None:
        self.rng = random.Random(seed)
        self.editor = Editor(self.rng)
        self.clock = Clock()
        self.forge = base / "forge"  # the forge's repository, where its web side acts
        self.dev = base / "dev"
        self.sources = source_files(files, self.rng)
        self.paths = sorted(self.sources)
        self.version = [1, 0, 0]
        self.n = 0
        self.msg = 0
        self.prs: list[PullRequest] = []
        self.reconcile_runs: list[float] = []
        self.reconcile_cpu: list[float] = []
        self.conflicts_by_chance = 0

    # --- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        from testing.util import periscope

        self.forge.mkdir()
        git(self.forge, "init", "-q", "-b", "main")
        for name, text in self.sources.items():
            (self.forge / name).parent.mkdir(parents=True, exist_ok=True)
            (self.forge / name).write_text(text, encoding="utf-8")
        (self.forge / VERSION_FILE).write_text(f'[project]\nname = "corpus"\nversion = "{self._version()}"\n')
        git(self.forge, "add", ".")
        git(self.forge, "commit", "-q", "-m", "initial import", env=self.clock.env(OTHERS[0]))
        git(self.forge, "branch", "release-1")
        git(self.dev.parent, "clone", "-q", str(self.forge), str(self.dev))
        periscope("install-hooks", cwd=self.dev)

    def _version(self) -> str:
        return ".".join(map(str, self.version))

    # --- the developer ----------------------------------------------------------------------
    def dev_commit(self, files: list[str], message: str) -> str:
        for name in self.rng.sample(files, self.rng.randint(1, min(2, len(files)))):
            lines = read_lines(self.dev / name)
            self.editor.commit_edits(lines)
            write_lines(self.dev / name, lines)
        return self._commit(message)

    def _commit(self, message: str) -> str:
        from testing.util import append_spool, message_record

        self.msg += 1
        append_spool(self.dev, message_record(self.dev, id=f"msg_acc_{self.msg}", cost=0.001 * (1 + self.msg % 50)))
        git(self.dev, "commit", "-q", "-a", "-m", message, env=self.clock.env(DEV))
        return git(self.dev, "rev-parse", "HEAD")

    def open_pr(self, scenario: str, merge_round: int) -> PullRequest:
        self.n += 1
        pr = PullRequest(self.n, scenario, f"pr{self.n}", [], merge_round=merge_round)
        if scenario in ("bump-same-author", "bump-other-author"):
            git(self.dev, "fetch", "-q", "origin")  # the version main has now
        git(self.dev, "checkout", "-q", "-b", pr.branch, "origin/main")
        if scenario in ("bump-same-author", "bump-other-author"):
            pr.files = [VERSION_FILE]
            pr.commits.append(self.bump(self.dev))
        else:
            pr.files = self.rng.sample(self.paths, self.rng.randint(1, 3))
            for k in range(self.rng.randint(1, 6)):
                pr.commits.append(self.dev_commit(pr.files, f"{pr.branch}: step {k + 1}"))
        git(self.dev, "push", "-q", "origin", pr.branch)
        self.prs.append(pr)
        return pr

    def bump(self, repo: Path, *, commit: bool = True) -> str:
        """Raise the patch version in pyproject.toml (in `repo`'s work tree)."""
        text = (repo / VERSION_FILE).read_text()
        version = re.search(r'version = "(\d+)\.(\d+)\.(\d+)"', text)
        assert version is not None
        new = f"{version.group(1)}.{version.group(2)}.{int(version.group(3)) + 1}"
        (repo / VERSION_FILE).write_text(text.replace(version.group(0), f'version = "{new}"'))
        return self._commit(f"Bump version to {new}") if commit else new

    def pull(self, *, delete: list[str]) -> None:
        git(self.dev, "checkout", "-q", "main")
        git(self.dev, "pull", "-q", "--prune", "--ff-only", env=self.clock.env(DEV))
        if delete:
            git(self.dev, "branch", "-q", "-D", *delete)

    def reconcile(self) -> None:
        from periscope_hooks import reconcile
        from periscope_hooks.ingest import process_spool
        from periscope_hooks.state import open_state_db

        state = self.dev / ".git" / "periscope"
        t, c = time.perf_counter(), _cpu()
        conn = open_state_db(state)
        try:
            process_spool(state, conn)
            outcome = reconcile.run(conn, state)
        finally:
            conn.close()
        self.reconcile_runs.append(time.perf_counter() - t)
        self.reconcile_cpu.append(_cpu() - c)
        if outcome.error:
            raise RuntimeError(f"reconcile failed: {outcome.error}")

    # --- the forge's web side ---------------------------------------------------------------
    def other_change(self, *, avoid: frozenset[str] = frozenset()) -> None:
        """Someone else's pull request lands on main (any file but `avoid`)."""
        name = self.rng.choice([p for p in self.paths if p not in avoid])
        lines = read_lines(self.forge / name)
        self.editor.commit_edits(lines)
        write_lines(self.forge / name, lines)
        author = self.rng.choice(OTHERS)
        git(self.forge, "commit", "-q", "-a", "-m", f"Other work ({name})", env=self.clock.env(author, GITHUB))

    def _hunks(self, pr: PullRequest) -> tuple[list[tuple[str, int, int]], str]:
        """(file, first line, line count) of the pull request's changes, in main's coordinates:
        main's current text of the lines around each hunk, found by content."""
        base = git(self.forge, "merge-base", "main", pr.branch)
        out = git(self.forge, "diff", "-U0", "--no-renames", base, pr.branch)
        hunks: list[tuple[str, int, int]] = []
        name = ""
        for line in out.splitlines():
            if line.startswith("+++ "):
                name = line[6:] if line.startswith("+++ b/") else ""
            m = re.match(r"@@ -(\d+)(?:,(\d+))? \+", line)
            if m and name:
                start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
                hunks.append((name, start, count))
        return [(n, s, c) for n, s, c in hunks if (self.forge / n).exists()], base

    def main_moves_near(self, pr: PullRequest, *, conflict: bool) -> bool:
        """Another author changes main's copy of a line 2-3 lines from one of the pull request's
        hunks (merges cleanly; plain patch-id hashes 3 context lines and breaks), or a line the
        pull request changed (`conflict`).  Found by content in main's current text."""
        hunks, base = self._hunks(pr)
        self.rng.shuffle(hunks)
        for name, start, count in hunks:
            base_lines = git(self.forge, "show", f"{base}:{name}").split("\n")
            main_lines = read_lines(self.forge / name)
            if conflict:
                if count == 0:
                    continue
                picks = list(range(start - 1, start - 1 + count))
            else:
                end = start - 1 + max(count, 1) if count else start
                first = start - 1 if count else start
                picks = [first - 2, first - 3, end + 1, end + 2]
            self.rng.shuffle(picks)
            for i in picks:
                if not (0 <= i < len(base_lines)) or not base_lines[i].strip():
                    continue
                if (i < 3 and not conflict) or len(base_lines[i].strip()) < 8:
                    continue
                # main's copy of that line: the same text, nearest to its old position
                spots = [j for j, s in enumerate(main_lines) if s.rstrip("\n") == base_lines[i]]
                if not spots:
                    continue
                j = min(spots, key=lambda s: abs(s - i))
                main_lines[j] = main_lines[j].rstrip("\n") + f"  # {self.editor._name(main_lines)}\n"
                write_lines(self.forge / name, main_lines)
                author = self.rng.choice(OTHERS)
                git(self.forge, "commit", "-q", "-a", "-m", f"Other work near #{pr.number}", env=self.clock.env(author))
                return True
        return False

    def _resolve_in_web_editor(self) -> None:
        """Resolve each conflict as a person in the web editor does: the pull request's side,
        main's side, both, or the pull request's side with one line edited."""
        for name in git(self.forge, "diff", "--name-only", "--diff-filter=U").split():
            out: list[str] = []
            state, ours, theirs = "", list[str](), list[str]()
            for line in read_lines(self.forge / name):
                if line.startswith("<<<<<<< "):
                    state, ours, theirs = "ours", [], []
                elif line.startswith("=======") and state == "ours":
                    state = "theirs"
                elif line.startswith(">>>>>>> ") and state == "theirs":
                    way = self.rng.choice(["theirs", "theirs", "both", "edited", "ours"])
                    if way == "ours":
                        out += ours
                    elif way == "both":
                        out += ours + theirs
                    elif way == "edited" and theirs:
                        edited = list(theirs)
                        k = self.rng.randrange(len(edited))
                        edited[k] = edited[k].rstrip("\n") + "  # resolved\n"
                        out += edited
                    else:
                        out += theirs
                    state = ""
                elif state == "ours":
                    ours.append(line)
                elif state == "theirs":
                    theirs.append(line)
                else:
                    out.append(line)
            write_lines(self.forge / name, out)
            git(self.forge, "add", name)

    def squash(self, pr: PullRequest) -> str:
        """GitHub's Squash and merge (a conflict resolved in the web editor first)."""
        proc = subprocess.run(
            ["git", "merge", "--squash", pr.branch], cwd=self.forge, capture_output=True, text=True, check=False
        )
        if proc.returncode:
            self._resolve_in_web_editor()
            if pr.scenario not in ("squash-web-conflict",):
                self.conflicts_by_chance += 1
                pr.scenario = "squash-web-conflict"
        env = self.clock.env(DEV, GITHUB)
        git(self.forge, "commit", "-q", "--allow-empty", "-m", f"Title (#{pr.number})", env=env)
        return git(self.forge, "rev-parse", "HEAD")

    def plain_patch_id(self, pr: PullRequest, base: str, squash: str) -> bool:
        def pid(*diff: str) -> str:
            patch = git(self.forge, "diff", *diff)
            return git(self.forge, "patch-id", "--stable", input=patch + "\n").split(" ")[0]

        return pid(base, pr.branch) == pid(f"{squash}^", squash)

    def merge(self, pr: PullRequest) -> None:
        """Main moves the way the scenario says, then the forge merges the pull request."""
        for _ in range(self.rng.randint(0, 2)):
            self.other_change(avoid=frozenset(pr.files))
        s = pr.scenario
        moved_near = s in ("squash-nearby", "rebase-merge") and self.main_moves_near(pr, conflict=False)
        if s == "squash-nearby" and not moved_near:
            pr.scenario = s = "squash-unrelated"  # no line near a hunk to change
        if s == "squash-web-conflict" and not self.main_moves_near(pr, conflict=True):
            pr.scenario = s = "squash-unrelated"
        base = git(self.forge, "merge-base", "main", pr.branch)
        if s == "rebase-merge":
            before = git(self.forge, "rev-parse", "main")
            git(self.forge, "checkout", "-q", "-B", "pr-rebase", pr.branch)
            env = {k: v for k, v in self.clock.env(DEV, GITHUB).items() if k.startswith("GIT_COMMITTER")}
            proc = subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", "rebase", "-q", "main"],
                cwd=self.forge,
                capture_output=True,
                env={**os.environ, **env},
                check=False,
            )
            if proc.returncode == 0:
                git(self.forge, "checkout", "-q", "main")
                git(self.forge, "merge", "-q", "--ff-only", "pr-rebase")
                news = git(self.forge, "rev-list", "--reverse", f"{before}..main").split()
                if len(news) == len(pr.commits):
                    pr.expected = dict(zip(pr.commits, news))
                    git(self.forge, "branch", "-q", "-D", "pr-rebase", pr.branch)
                    return
                raise RuntimeError(f"rebase-merge of #{pr.number} dropped a commit")
            # GitHub refuses a rebase merge with conflicts: the pull request is squashed instead.
            git(self.forge, "rebase", "--abort")
            git(self.forge, "checkout", "-q", "main")
            pr.scenario = s = "squash-web-conflict"
            self.conflicts_by_chance += 1
        if s in SQUASHES:
            new = self.squash(pr)
            pr.expected = dict.fromkeys(pr.commits, new)
            pr.plain_patch_id = self.plain_patch_id(pr, base, new)
            if s == "backport":  # a maintainer copies the merged fix to the release branch
                git(self.forge, "checkout", "-q", "release-1")
                proc = subprocess.run(
                    ["git", "cherry-pick", "-x", new],
                    cwd=self.forge,
                    capture_output=True,
                    env={**os.environ, **self.clock.env(DEV, OTHERS[1])},
                    check=False,
                )
                if proc.returncode:
                    git(self.forge, "cherry-pick", "--abort")
                git(self.forge, "checkout", "-q", "main")
        elif s == "gitlab-merge-commit":
            proc = subprocess.run(
                ["git", "merge", "-q", "--no-ff", "-m", f"Merge branch '{pr.branch}' into 'main'", pr.branch],
                cwd=self.forge,
                capture_output=True,
                env={**os.environ, **self.clock.env(DEV, GITLAB)},
                check=False,
            )
            if proc.returncode:
                self._resolve_in_web_editor()
                git(self.forge, "commit", "-q", "--no-edit", env=self.clock.env(DEV, GITLAB))
            pr.expected = {c: c for c in pr.commits}
        elif s == "gitlab-squash-merge-commit":
            git(self.forge, "checkout", "-q", "--detach", pr.branch)
            git(self.forge, "reset", "-q", "--soft", base)
            git(self.forge, "commit", "-q", "-m", f"Title !{pr.number}", env=self.clock.env(DEV, GITLAB))
            squash = git(self.forge, "rev-parse", "HEAD")
            git(self.forge, "checkout", "-q", "main")
            message = f"Merge branch '{pr.branch}' into 'main'\n\nSee merge request !{pr.number}"
            proc = subprocess.run(
                ["git", "merge", "-q", "--no-ff", "-m", message, squash],
                cwd=self.forge,
                capture_output=True,
                env={**os.environ, **self.clock.env(DEV, GITLAB)},
                check=False,
            )
            if proc.returncode:
                self._resolve_in_web_editor()
                git(self.forge, "commit", "-q", "--no-edit", env=self.clock.env(DEV, GITLAB))
            pr.expected = dict.fromkeys(pr.commits, squash)
        git(self.forge, "branch", "-q", "-D", pr.branch)

    def bump_other_author(self, pr: PullRequest) -> None:
        """Someone else lands the identical bump; the developer's pull request is closed."""
        git(self.forge, "checkout", "-q", "main")
        text = git(self.forge, "show", f"{pr.branch}:{VERSION_FILE}") + "\n"
        (self.forge / VERSION_FILE).write_text(text)
        git(self.forge, "commit", "-q", "-a", "-m", "Bump version", env=self.clock.env(self.rng.choice(OTHERS)))
        git(self.forge, "branch", "-q", "-D", pr.branch)
        pr.expected = {c: c for c in pr.commits}

    def release_fix(self) -> PullRequest:
        """A fix committed on the release branch and copied to main by a maintainer."""
        self.n += 1
        pr = PullRequest(self.n, "release-fix-picked", "release-1", self.rng.sample(self.paths, 1))
        git(self.dev, "fetch", "-q", "origin")
        git(self.dev, "checkout", "-q", "-B", "release-1", "origin/release-1")
        for k in range(self.rng.randint(1, 2)):
            pr.commits.append(self.dev_commit(pr.files, f"release fix {self.n}.{k + 1}"))
        git(self.dev, "push", "-q", "origin", "release-1")
        pick = ["cherry-pick", "-x"] if self.rng.random() < 0.5 else ["cherry-pick"]
        for c in pr.commits:
            proc = subprocess.run(
                ["git", *pick, c],
                cwd=self.forge,
                capture_output=True,
                env={**os.environ, **self.clock.env(DEV, OTHERS[2])},
                check=False,
            )
            if proc.returncode:
                git(self.forge, "cherry-pick", "--abort", check=False)
                break
        if self.rng.random() < 0.5:  # the release's own version bump on top
            git(self.forge, "checkout", "-q", "release-1")
            self.bump_in_forge()
            git(self.forge, "checkout", "-q", "main")
        pr.expected = {c: c for c in pr.commits}
        self.prs.append(pr)
        git(self.dev, "checkout", "-q", "main")
        if self.rng.random() < 0.5:
            git(self.dev, "branch", "-q", "-D", "release-1")
        return pr

    def bump_in_forge(self) -> None:
        text = (self.forge / VERSION_FILE).read_text()
        version = re.search(r'version = "(\d+)\.(\d+)\.(\d+)"', text)
        assert version is not None
        new = f'version = "{version.group(1)}.{version.group(2)}.{int(version.group(3)) + 1}"'
        (self.forge / VERSION_FILE).write_text(text.replace(version.group(0), new))
        git(self.forge, "commit", "-q", "-a", "-m", "Release bump", env=self.clock.env(OTHERS[2]))

    # --- the whole run ----------------------------------------------------------------------
    def run(self, prs: int, per_round: int) -> None:
        scenarios = [s for s, w in WEIGHTS.items() for _ in range(w)]
        plan = [self.rng.choice(scenarios) for _ in range(prs)]
        open_prs: list[PullRequest] = []
        round_no = 0
        while plan or open_prs:
            round_no += 1
            git(self.dev, "fetch", "-q", "origin")
            for _ in range(min(per_round, len(plan))):
                s = plan.pop(0)
                if s == "release-fix-picked":
                    self.release_fix()
                    continue
                pr = self.open_pr(s, round_no + self.rng.randint(0, 2))
                if s == "bump-same-author":  # merged at once: two open bumps would be the same bump
                    self.merge(pr)
                elif s == "bump-other-author":
                    self.bump_other_author(pr)
                elif s == "abandoned":
                    git(self.forge, "branch", "-q", "-D", pr.branch)
                    pr.expected = {c: c for c in pr.commits}
                else:
                    open_prs.append(pr)
            git(self.dev, "checkout", "-q", "main")
            due = [p for p in open_prs if p.merge_round <= round_no]
            for pr in due:
                self.merge(pr)
                open_prs.remove(pr)
            for _ in range(self.rng.randint(0, 2)):
                self.other_change()
            delete = [
                p.branch
                for p in self.prs
                if p.branch.startswith("pr") and p not in open_prs and p.expected and self.rng.random() < 0.75
            ]
            existing = set(git(self.dev, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split())
            self.pull(delete=[b for b in delete if b in existing])
            self.reconcile()

    # --- scoring ----------------------------------------------------------------------------
    def score(self) -> dict[str, Any]:
        import sqlite3

        conn = sqlite3.connect(self.dev / ".git" / "periscope" / "state.db")
        try:
            where = dict(conn.execute("SELECT sha, current_sha FROM links").fetchall())
        finally:
            conn.close()
        tiers: dict[str, str] = {}
        kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kind -> [records, bytes]
        with open(self.dev / ".git" / "periscope" / "spool.jsonl", encoding="utf-8") as f:
            for raw in f:
                rec = json.loads(raw)
                kinds[rec.get("kind", "?")][0] += 1
                kinds[rec.get("kind", "?")][1] += len(raw.encode())
                if rec.get("kind") == "reconcile":
                    for old, _new in rec["pairs"]:
                        tiers[old] = rec.get("tier", "?")
        rows: dict[str, Counter[str]] = defaultdict(Counter)
        wrong: list[dict[str, Any]] = []
        misses: list[dict[str, Any]] = []
        for pr in self.prs:
            row = rows[pr.scenario]
            row["prs"] += 1
            if pr.plain_patch_id is not None:
                row["plain_patch_id_prs"] += int(pr.plain_patch_id)
            for old in pr.commits:
                row["commits"] += 1
                now, want = where.get(old), pr.expected.get(old, old)
                if now is None:
                    row["not_linked"] += 1
                elif now == want:
                    row["right"] += 1
                    if now != old:
                        row[f"tier:{tiers.get(old, '?')}"] += 1
                elif now == old:
                    row["unmatched"] += 1
                    misses.append({"pr": pr.number, "scenario": pr.scenario, "old": old, "want": want})
                else:
                    row["wrong"] += 1
                    wrong.append({"pr": pr.number, "scenario": pr.scenario, "old": old, "now": now, "want": want})
        total: Counter[str] = Counter()
        for r in rows.values():
            total.update(r)
        moved = {s: r for s, r in rows.items() if s not in MUST_STAY}
        moving_total: Counter[str] = Counter()
        for r in moved.values():
            moving_total.update(r)
        return {
            "scenarios": {s: dict(rows[s]) for s in WEIGHTS if s in rows},
            "total": dict(total),
            "must_move": dict(moving_total),
            "wrong": wrong,
            "unmatched": misses,
            "conflicts_by_chance": self.conflicts_by_chance,
            "spool_by_kind": {k: {"records": n, "bytes": b} for k, (n, b) in sorted(kinds.items())},
        }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prs", type=int, default=300)
    ap.add_argument("--per-round", type=int, default=4)
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (its path goes to stderr)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="periscope-accuracy-bench-"))
    t0 = time.perf_counter()
    try:
        isolate(base)
        sim = Simulation(base, args.seed, args.files)
        sim.setup()
        sim.run(args.prs, args.per_round)
        result = sim.score()
        result.update(
            {
                "seed": args.seed,
                "files": len(sim.sources),
                "source_lines": sum(t.count("\n") for t in sim.sources.values()),
                "pull_requests": len(sim.prs),
                "reconcile_runs": len(sim.reconcile_runs),
                "reconcile_median_ms": round(statistics.median(sim.reconcile_runs) * 1000, 1),
                "reconcile_total_s": round(sum(sim.reconcile_runs), 1),
                "reconcile_median_cpu_ms": round(statistics.median(sim.reconcile_cpu) * 1000, 1),
                "reconcile_max_cpu_ms": round(max(sim.reconcile_cpu) * 1000, 1),
                "reconcile_last_cpu_ms": round(sim.reconcile_cpu[-1] * 1000, 1),
                "total_cpu_s": round(_cpu(), 1),
                "main_commits": int(git(sim.forge, "rev-list", "--count", "main")),
                "elapsed_s": round(time.perf_counter() - t0, 1),
            }
        )
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print_table(result)
        return 1 if result["wrong"] else 0
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{result['pull_requests']} pull requests on {result['files']} real files "
        f"({result['source_lines']} lines), main {result['main_commits']} commits, seed {result['seed']}; "
        f"{result['reconcile_runs']} reconciliations (median {result['reconcile_median_ms']} ms, "
        f"CPU median {result['reconcile_median_cpu_ms']} ms, max {result['reconcile_max_cpu_ms']} ms), "
        f"{result['elapsed_s']} s in all ({result['total_cpu_s']} s CPU)"
    )
    head = f"{'scenario':28s} {'PRs':>4s} {'commits':>7s} {'right':>6s} {'wrong':>5s} {'unmatched':>9s}  tiers / plain patch-id"
    print(head)
    for name, r in [*result["scenarios"].items(), ("all (must move)", result["must_move"]), ("all", result["total"])]:
        tiers = ", ".join(f"{k[5:]} {v}" for k, v in sorted(r.items()) if k.startswith("tier:"))
        plain = f"; plain patch-id {r.get('plain_patch_id_prs', 0)} PRs" if name.startswith("squash") else ""
        print(
            f"{name:28s} {r.get('prs', 0):4d} {r.get('commits', 0):7d} {r.get('right', 0):6d} "
            f"{r.get('wrong', 0):5d} {r.get('unmatched', 0):9d}  {tiers}{plain}"
        )
    kinds = result["spool_by_kind"]
    print(
        "spool: "
        + ", ".join(f"{k} {v['records']} ({v['bytes']:,} bytes)" for k, v in kinds.items())
        + f"; {sum(v['bytes'] for v in kinds.values()):,} bytes in all"
    )
    for w in result["wrong"]:
        print(f"WRONG: {w}")


if __name__ == "__main__":
    sys.exit(main())
