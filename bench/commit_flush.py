"""The flush after one commit (issue 11: "costs the same with 1M messages stored as with 1k"), code
versions side by side on the same histories.

For each size N (messages, a commit every 20: bench/history.py's history, first-flushed once),
each code version gets its own copy of the flushed history, so one version's migrations or caches
never help another.  A copy is renamed to the same path before each of its runs: spool records and
state.db hold the worktree's path, and a repository at a new path is a moved one (a different,
much slower flush).  A run appends one commit's worth of records (20 messages and the commit
record, on a real commit of the repository) and times `periscope flush` in a fresh process (CPU
through wait4, git children included).  Runs alternate between versions and sizes; the first run
of each copy is a warm-up (migrations, the first reconciliation with this code) and is not counted.

    .venv/bin/python bench/commit_flush.py --keep DIR [--sizes 10000,1000000] [--runs 7]
        [--code old=/tmp/oldcode --code new=.]

`--code NAME=PATH` runs `python -m periscope_hooks` with PYTHONPATH=PATH (default: this tree as
`new`).  --keep DIR keeps the built histories (a 1M history takes a minute or two to build and
first-flush, and 1.4 GB per copy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402
from scale import run  # noqa: E402

COMMIT_EVERY = 20


def build(live: Path, n: int, spare: int, code: Path) -> None:
    """The flushed history of n messages at live/r (first-flushed by `code`), with `spare` commits
    beyond those the spool names, for the measured runs."""
    history.code_env(live, code)
    repo = live / "r"
    shas = history.make_commits(repo, n // COMMIT_EVERY + spare)
    history.write_history(repo / ".git" / "periscope" / "spool.jsonl", n, COMMIT_EVERY, str(repo.resolve()), shas)
    run([sys.executable, "-m", "periscope_hooks", "flush"], repo)
    (live / "setup.json").write_text(json.dumps({"messages": n, "commits": n // COMMIT_EVERY, "used": 0}))


def one_commit(live: Path, code: Path) -> dict[str, float]:
    """Append a commit's worth of records to the history at `live`, then flush it with `code`."""
    history.code_env(live, code)
    setup = json.loads((live / "setup.json").read_text())
    repo = live / "r"
    shas = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True, text=True, check=True
    ).stdout.split()
    start = (setup["commits"] + setup["used"]) * COMMIT_EVERY
    if start // COMMIT_EVERY >= len(shas):
        raise SystemExit(f"{live}: no spare commit left; build it again with more --spare")
    spool = repo / ".git" / "periscope" / "spool.jsonl"
    history.write_history(spool, COMMIT_EVERY, COMMIT_EVERY, str(repo.resolve()), shas, start=start)
    setup["used"] += 1
    (live / "setup.json").write_text(json.dumps(setup))
    return run([sys.executable, "-m", "periscope_hooks", "flush"], repo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, required=True, help="where the histories are built and kept")
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--spare", type=int, default=200, help="commits beyond the history, for measured runs")
    ap.add_argument("--code", action="append", default=[], help="NAME=PATH of a source tree (repeatable)")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed periscope runs from bytecode
    codes = {c.split("=", 1)[0]: Path(c.split("=", 1)[1]).resolve() for c in args.code} or {"new": HERE.parent}
    sizes = [int(s) for s in args.sizes.split(",")]
    base = args.keep.resolve()
    for n in sizes:
        pristine = base / f"{n}" / "pristine"
        if not (pristine / "setup.json").exists():
            live = base / f"{n}" / "live"
            shutil.rmtree(live, ignore_errors=True)
            live.mkdir(parents=True)
            print(f"building {n:,} messages ...", flush=True)
            build(live, n, args.spare, next(iter(codes.values())))
            live.rename(pristine)
        history.version_copies(base / f"{n}", pristine, list(codes))

    def measured(n: int, name: str) -> dict[str, float]:
        with history.AtLivePath(base / f"{n}", name) as live:
            return one_commit(live, codes[name])

    for n in sizes:
        for name in codes:
            measured(n, name)  # warm-up: migrations, this code's first reconciliation
    load_before = os.getloadavg()
    results: dict[tuple[int, str], list[dict[str, float]]] = {(n, name): [] for n in sizes for name in codes}
    for _ in range(args.runs):
        for n in sizes:
            for name in codes:
                results[(n, name)].append(measured(n, name))
    load_after = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average (1/5/15 min)"
        f" {'/'.join(f'{x:.1f}' for x in load_before)} -> {'/'.join(f'{x:.1f}' for x in load_after)};"
        f" the flush after one commit ({COMMIT_EVERY} messages + 1 commit), medians of {args.runs} runs, alternating"
    )
    print(
        "| code | "
        + " | ".join(f"{n:,} msgs: CPU s (each run) / peak RSS MB" for n in sizes)
        + f" | CPU {sizes[-1]:,} / {sizes[0]:,} |"
    )
    print("|---|" + "---|" * len(sizes) + "---|")
    for name in codes:
        cells = []
        for n in sizes:
            rs = results[(n, name)]
            cpu = statistics.median(r["cpu"] for r in rs)
            rss = statistics.median(r["rss_mb"] for r in rs)
            each = ", ".join(f"{r['cpu']:.3f}" for r in rs)
            cells.append(f"**{cpu:.3f}** ({each}) / {rss:.0f}")
        ratio = statistics.median(r["cpu"] for r in results[(sizes[-1], name)]) / statistics.median(
            r["cpu"] for r in results[(sizes[0], name)]
        )
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
