"""Ingest throughput: spool records per second through `process_spool`, at a realistic shape.

For each size, a fresh real repository (bench/history.py: real commits from git fast-import) gets a
spool of N message records with a commit record after every K messages (default 20; heavy users
commit every 10-50), so ingest stores, links and writes events for all of them. Timed in a fresh
process: one `process_spool` on a new state.db (open, migrate, ingest, link) with its events going
straight into a new local store, as the flusher does it; wall and CPU seconds and peak RSS. Medians
of --runs, and the ratio of the largest size's rate to the smallest's (1.0: linear).

--compare REV also runs the code of git revision REV (checked out in a temporary worktree) on the
same spools, alternating with this checkout's in every round, and prints the CPU ratio.
`bench/scale.py` measures the whole flush (with delivery), reports and export.

    .venv/bin/python bench/ingest_throughput.py [--sizes 10000,100000,1000000] [--commit-every 20] [--runs 3] [--compare REV]
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402

CHILD = """
import json, resource, sys, time
from pathlib import Path
from periscope_hooks.ingest import process_spool
from periscope_hooks.sinks.local import LocalStoreSink
sd = Path(sys.argv[1])
sink = LocalStoreSink(Path(sys.argv[2]))
wall, cpu = time.perf_counter(), time.process_time()
result = process_spool(sd, store_now=sink.store_now)
sink.close()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
import periscope_hooks
print(json.dumps({"code": periscope_hooks.__file__, "wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "records": result.records, "messages": result.messages, "commits": result.commits}))
"""


def make_spool(tmp: str, n: int, commit_every: int) -> tuple[Path, int, int]:
    """A repository with n // commit_every real commits and its spool: (spool dir, records, commits)."""
    history.isolated_env(tmp)
    repo = Path(tmp) / "r"
    shas = history.make_commits(repo, n // commit_every)
    sd = repo / ".git" / "periscope"
    records = history.write_history(sd / "spool.jsonl", n, commit_every, str(repo.resolve()), shas)
    return sd, records, len(shas)


def one_run(sd: Path, records: int, n: int, commits: int, code: Path | None) -> dict[str, float]:
    """Ingest a copy of the spool dir into a new state.db and local store (with `code` on PYTHONPATH)."""
    with tempfile.TemporaryDirectory(prefix="periscope-ingest-run-", dir=sd.parent) as tmp:
        run_sd = Path(tmp) / "periscope"
        run_sd.mkdir()
        shutil.copy(sd / "spool.jsonl", run_sd / "spool.jsonl")
        env = dict(os.environ)
        if code is not None:
            env["PYTHONPATH"] = str(code)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(run_sd), str(Path(tmp) / "events.db")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=str(code or HERE.parent),
        ).stdout
    r = json.loads(out)
    assert Path(r.pop("code")).is_relative_to(code or HERE.parent), "the code measured is not the code named"
    assert r["records"] == records and r["messages"] == n and r["commits"] == commits, r
    r["rate"] = records / r["wall"]
    r["cpu_rate"] = records / r["cpu"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="message records per spool, comma-separated")
    ap.add_argument("--commit-every", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compare", default=None, help="a git revision whose code runs side by side")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
        f"a commit record every {args.commit_every} messages, medians of {args.runs} runs"
    )
    with tempfile.TemporaryDirectory(prefix="periscope-ingest-") as tmp:
        codes: dict[str, Path | None] = {"this checkout": None}
        if args.compare:
            old = Path(tmp) / "old-code"
            subprocess.run(
                ["git", "-C", str(HERE.parent), "worktree", "add", "-q", "--detach", str(old), args.compare],
                check=True,
            )
            codes = {args.compare: old, "this checkout": None}
        try:
            med = _measure(tmp, sizes, args.commit_every, args.runs, codes)
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(HERE.parent), "worktree", "remove", "--force", str(old)], check=True)
    mine = med["this checkout"]
    lo, hi = mine[sizes[0]], mine[sizes[-1]]
    print(
        f"ratio {sizes[-1]:,}/{sizes[0]:,}: CPU rate x{hi['cpu_rate'] / lo['cpu_rate']:.2f},"
        f" peak RSS x{hi['rss_mb'] / lo['rss_mb']:.2f}"
    )
    if args.compare:
        for n in sizes:
            print(
                f"{n:>9,} messages: this checkout's CPU rate / {args.compare}'s: x{mine[n]['cpu_rate'] / med[args.compare][n]['cpu_rate']:.2f}"
            )


def _measure(
    tmp: str, sizes: list[int], commit_every: int, runs: int, codes: dict[str, Path | None]
) -> dict[str, dict[int, dict[str, float]]]:
    med: dict[str, dict[int, dict[str, float]]] = {name: {} for name in codes}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix=f"size-{n}-", dir=tmp) as size_tmp:
            sd, records, commits = make_spool(size_tmp, n, commit_every)
            results: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
            for _ in range(runs):  # alternating, so machine noise hits both alike
                for name, code in codes.items():
                    results[name].append(one_run(sd, records, n, commits, code))
        for name, rs in results.items():
            m = med[name][n] = {
                k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mb", "rate", "cpu_rate")
            }
            print(
                f"{name:>14} {n:>9,} messages: {m['rate']:>8,.0f} records/s wall, {m['cpu_rate']:>8,.0f} records/s CPU,"
                f" {m['cpu']:.2f} s CPU, peak RSS {m['rss_mb']:.0f} MB"
                " (runs, records/s CPU: " + ", ".join(f"{r['cpu_rate']:,.0f}" for r in rs) + ")",
                flush=True,
            )
    return med


if __name__ == "__main__":
    main()
