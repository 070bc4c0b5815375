"""Reconciliation at scale: 30 merged pull requests in a repository with tens of thousands of commits.

The forge's history (--history commits, each changing one line of one of 200 files) is made with
`git fast-import`; a developer clone then opens --prs pull requests of 3 commits each, made through
the real hooks with AI usage in the spool (each touches its own file and a line near other PRs'
lines in a shared file).  The forge's web side merges them one after another, two squash merges
(`Title (#N)`) for every rebase merge (a new committer), main moving between merges.  The developer
pulls and deletes the branches.  Then, --runs times each, medians with every run:

- `reconcile.run` over all the pull requests (state dir restored before each run: the decisions
  are appended to the spool and ingested, as the background flusher does after `git pull`);
- `reconcile.run` with nothing changed (the refs fingerprint matches: what every flush, report and
  status pays);
- `reconcile.run` after a ref moved, nothing off the main line (placement only);
- `periscope report --format json` end to end (a subprocess), after reconciliation;
- `git rev-list --all`, which `report` ran on every call before (side by side, same repository).

    .venv/bin/python bench/reconcile_scale.py [--history 30000] [--prs 30] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history import isolated_env  # noqa: E402
from testing.forge import FORGE_ENV, OTHER_ENV  # noqa: E402

FILES = 200
LINES = 40
SHARED_LINES = 400  # every pull request edits 3 lines of shared.txt, one line apart from the next's
# The user's own identity: reconciliation matches small changes only to the same author
# (periscope_hooks/matching.py), so the pull requests below are authored by it.
DEV_ENV = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def isolate(base: Path) -> None:
    """bench/history.py's isolation (HOME in base/home, the background flush off), as Dev."""
    isolated_env(str(base / "home"))
    os.environ.update(DEV_ENV)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if proc.returncode:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def make_forge(bare: Path, commits: int) -> None:
    """A bare repository with `commits` commits on main, each rewriting one line of one file."""
    git(bare.parent, "init", "-q", "--bare", "-b", "main", str(bare))
    files = [[f"f{f} line {i}\n" for i in range(LINES)] for f in range(FILES)]
    out: list[str] = []
    t0 = 1_700_000_000
    for c in range(commits):
        f, line = c % FILES, (c // FILES) % LINES
        files[f][line] = f"f{f} line {line} v{c}\n"
        data = "".join(files[f])
        msg = f"history {c}\n"
        out.append("commit refs/heads/main\n")
        out.append(f"committer Other Dev <other@example.com> {t0 + c * 60} +0000\n")
        out.append(f"data {len(msg)}\n{msg}")
        if c == 0:
            for g in range(FILES):
                body = "".join(files[g])
                out.append(f"M 100644 inline f{g}.txt\ndata {len(body.encode())}\n{body}\n")
            shared = "".join(f"shared line {i}\n" for i in range(SHARED_LINES))
            out.append(f"M 100644 inline shared.txt\ndata {len(shared)}\n{shared}\n")
        else:
            out.append(f"M 100644 inline f{f}.txt\ndata {len(data.encode())}\n{data}\n")
    subprocess.run(["git", "-C", str(bare), "fast-import", "--quiet"], input="".join(out).encode(), check=True)


def edit(repo: Path, name: str, line: int, text: str) -> None:
    path = repo / name
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    while len(lines) < line:
        lines.append("\n")
    lines[line - 1] = text + "\n"
    path.write_text("".join(lines))


def build(base: Path, history: int, prs: int) -> tuple[Path, Path]:
    from periscope_hooks.state import open_state_db
    from testing.util import append_spool, message_record, periscope

    bare = base / "forge.git"
    t = time.perf_counter()
    make_forge(bare, history)
    print(f"history of {history} commits made in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    web, dev = base / "web", base / "dev"
    git(base, "clone", "-q", str(bare), str(web))
    git(base, "clone", "-q", str(bare), str(dev))
    periscope("install-hooks", cwd=dev)
    t = time.perf_counter()
    n = 0
    for pr in range(prs):
        git(dev, "checkout", "-q", "-b", f"pr{pr}", "origin/main")
        for k in range(3):
            n += 1
            append_spool(dev, message_record(dev, id=f"msg_bench_{n}", cost=0.01))
            edit(dev, f"pr{pr}.txt", k * 5 + 1, f"pull request {pr} change {k}\nwith a second line")
            edit(dev, "shared.txt", pr * 4 + k + 1, f"pr {pr} shared line {k}")  # near the others'
            git(dev, "add", f"pr{pr}.txt", "shared.txt")
            git(dev, "commit", "-q", "-m", f"pr {pr} commit {k}")
        git(dev, "push", "-q", "origin", f"pr{pr}")
    print(
        f"{prs} pull requests of 3 commits made through the hooks in {time.perf_counter() - t:.1f} s", file=sys.stderr
    )
    t = time.perf_counter()
    for pr in range(prs):
        git(web, "fetch", "-q", "origin")
        git(web, "reset", "-q", "--hard", "origin/main")
        edit(web, f"f{pr % FILES}.txt", 3, f"main moves before #{pr}")
        git(web, "commit", "-q", "-am", f"main moves {pr}", env=OTHER_ENV)
        if pr % 3 == 2:  # Rebase and merge
            base_sha = git(web, "rev-parse", "HEAD")
            git(web, "checkout", "-q", "-B", "pr", f"origin/pr{pr}")
            git(web, "-c", "core.hooksPath=/dev/null", "rebase", "-q", base_sha, env=FORGE_ENV)
            git(web, "checkout", "-q", "main")
            git(web, "merge", "-q", "--ff-only", "pr")
        else:  # Squash and merge
            git(web, "merge", "--squash", f"origin/pr{pr}")
            git(web, "commit", "-q", "--author", "Dev <dev@example.com>", "-m", f"Title (#{pr})", env=FORGE_ENV)
        git(web, "push", "-q", "origin", "main", f":pr{pr}")
    print(f"{prs} merges on the forge in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    git(dev, "checkout", "-q", "main")
    git(dev, "pull", "-q", "--prune", "--ff-only", "origin", "main")
    git(dev, "branch", "-q", "-D", *[f"pr{pr}" for pr in range(prs)])
    state = dev / ".git" / "periscope"
    # Ingest what the hooks recorded (not part of reconciliation), then keep that state.
    from periscope_hooks.ingest import process_spool

    conn = open_state_db(state)
    try:
        process_spool(state, conn)
    finally:
        conn.close()
    snap = base / "snapshot"
    shutil.copytree(state, snap)
    return dev, snap


def restore(snap: Path, state: Path) -> None:
    shutil.rmtree(state)
    shutil.copytree(snap, state)


CPU: dict[int, list[float]] = {}  # id(wall-time list) -> CPU times (this process + its children)


def _cpu() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], Any], into: list[float] | None = None) -> tuple[float, Any]:
    """Wall time of fn (ms); with `into`, the wall time is appended there and the CPU time
    (user + system, children included: the git processes) beside it.  The machine is shared, so
    CPU time is the steadier figure."""
    t, c = time.perf_counter(), _cpu()
    value = fn()
    wall, cpu = (time.perf_counter() - t) * 1000, (_cpu() - c) * 1000
    if into is not None:
        into.append(wall)
        CPU.setdefault(id(into), []).append(cpu)
    return wall, value


def median(samples: list[float]) -> dict[str, Any]:
    cpu = CPU.get(id(samples), [])
    return {
        "median_ms": round(statistics.median(samples), 1),
        "median_cpu_ms": round(statistics.median(cpu), 1) if cpu else None,
        "runs_ms": [round(s, 1) for s in samples],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=30000)
    ap.add_argument("--prs", type=int, default=30)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="periscope-reconcile-bench-"))
    try:
        isolate(base)
        from periscope_hooks import reconcile
        from periscope_hooks.state import open_state_db

        dev, snap = build(base, args.history, args.prs)
        state = dev / ".git" / "periscope"
        commits = int(git(dev, "rev-list", "--count", "--all"))
        results: dict[str, Any] = {"commits": commits, "pull_requests": args.prs, "linked": 3 * args.prs}

        def run() -> reconcile.Outcome:
            conn = open_state_db(state)
            try:
                return reconcile.run(conn, state)
            finally:
                conn.close()

        full, idle, moved_ref, report_ms, revlist = [], [], [], [], []
        outcome = None
        for i in range(args.runs):
            restore(snap, state)
            _, outcome = timed(run, full)
            timed(run, idle)
            git(dev, "update-ref", "refs/heads/bench-moved", "HEAD" if i % 2 else "HEAD~1")
            timed(run, moved_ref)
            timed(
                lambda: subprocess.run(
                    [sys.executable, "-m", "periscope_hooks", "report", "--format", "json"],
                    cwd=dev,
                    capture_output=True,
                    check=True,
                ),
                report_ms,
            )
            timed(lambda: git(dev, "rev-list", "--all"), revlist)
        assert outcome is not None and outcome.error is None, outcome
        moved = sum(len(d.olds) for d in outcome.decisions)
        conn = open_state_db(state)
        try:
            status = reconcile.ship_status(conn)
        finally:
            conn.close()
        results.update(
            {
                "moved": moved,
                "decisions": len(outcome.decisions),
                "commands": sorted({d.command for d in outcome.decisions}),
                "shipped_after": sum(1 for _, s in status.values() if s),
                "reconcile_30_prs": median(full),
                "reconcile_nothing_changed": median(idle),
                "reconcile_ref_moved_nothing_off_main": median(moved_ref),
                "report_end_to_end": median(report_ms),
                "git_rev_list_all": median(revlist),
            }
        )
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(f"repository: {commits} commits; {args.prs} pull requests, {3 * args.prs} linked commits")
            print(f"moved {moved} commits in {len(outcome.decisions)} decisions ({', '.join(results['commands'])})")
            print(f"{results['shipped_after']} linked commits shipped after reconciliation")
            for key in (
                "reconcile_30_prs",
                "reconcile_nothing_changed",
                "reconcile_ref_moved_nothing_off_main",
                "report_end_to_end",
                "git_rev_list_all",
            ):
                r = results[key]
                print(
                    f"{key:38s} median {r['median_ms']:8.1f} ms  cpu {r['median_cpu_ms']:8.1f} ms  runs {r['runs_ms']}"
                )
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
