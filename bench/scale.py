"""Scale of the state manager with a realistic history (issue 11): one run, every size side by side.

For each size N (messages; a commit record every K, default 20), a fresh real repository
(bench/history.py: real commits from git fast-import) gets a spool of N messages and N/K commit
records, then, each measured in a fresh `periscope` process (wall, CPU, peak RSS via wait4):

- first ingest: `periscope flush` (spool -> linked state.db -> local store), records/s;
- commit flush: a commit's worth of new records (K messages + 1 commit), then `periscope flush`,
  the work the background flusher does after each commit (median of --runs);
- `report --by X --format json` for commit, model, branch, session, day (median of --runs);
- `export > /dev/null`, events/s;
- state.db bytes per stored message after delivery.

The last column is the ratio largest / smallest size: 1.0 means flat.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--commit-every 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402

REPORTS = ("commit", "model", "branch", "session", "day", "agent")


def run(argv: list[str], cwd: Path, stdout: int | None = subprocess.DEVNULL) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


# Started by a small launcher: Linux counts the parent's peak RSS into the child's ru_maxrss at the
# exec (a `true` started from an 800 MB process reports 811 MB), so a driver holding a big history
# would inflate the figure; the launcher's own exec'd image is ~10 MB.
_LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "out = open(sys.argv[1], 'wb') if sys.argv[1] != '-' else subprocess.DEVNULL\n"
    "p = subprocess.Popen(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)\n"
    "err = p.stderr.read()\n"
    "_, status, ru = os.wait4(p.pid, 0)\n"
    "print(json.dumps({'rc': os.waitstatus_to_exitcode(status), 'cpu': ru.ru_utime + ru.ru_stime,"
    " 'rss_mb': ru.ru_maxrss / 1024, 'err': err.decode(errors='replace')[-2000:]}))\n"
)


def run_fresh(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, out: Path | None = None
) -> dict[str, float]:
    """run(), with the peak RSS of the process alone (through a launcher, see _LAUNCHER); its
    stdout to `out` or nowhere."""
    import json

    start = time.perf_counter()
    argv = [sys.executable, "-c", _LAUNCHER, str(out) if out else "-", *argv]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - start
    r = json.loads(proc.stdout)
    if r["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r['rc']}): {r['err']}")
    return {"wall": wall, "cpu": r["cpu"], "rss_mb": r["rss_mb"]}


def periscope(*args: str) -> list[str]:
    return [sys.executable, "-m", "periscope_hooks", *args]


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def one_size(n: int, commit_every: int, runs: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="periscope-scale-") as tmp:
        history.isolated_env(tmp)
        repo = Path(tmp) / "r"
        extra = runs  # one new commit per measured commit flush
        shas = history.make_commits(repo, n // commit_every + extra)
        sd = repo / ".git" / "periscope"
        worktree = str(repo.resolve())
        records = history.write_history(sd / "spool.jsonl", n, commit_every, worktree, shas)

        first = run(periscope("flush"), repo)
        first["rate"] = records / first["wall"]
        first["cpu_rate"] = records / first["cpu"]
        out["first ingest"] = first

        flushes = []
        for i in range(runs):
            history.write_history(
                sd / "spool.jsonl", commit_every, commit_every, worktree, shas, start=n + i * commit_every
            )
            flushes.append(run(periscope("flush"), repo))
        out["commit flush"] = median(flushes)

        for by in REPORTS:
            out[f"report --by {by}"] = median(
                [run(periscope("report", "--by", by, "--format", "json"), repo) for _ in range(runs)]
            )

        events = n + (n // commit_every) + runs * (commit_every + 1)
        exp = median([run(periscope("export"), repo) for _ in range(runs)])
        exp["rate"] = events / exp["wall"]
        out["export"] = exp
        size = (sd / "state.db").stat().st_size
        out["state.db"] = {"bytes_per_message": size / (n + runs * commit_every)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--commit-every", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores (load {load:.1f}), a commit every"
        f" {args.commit_every} messages, medians of {args.runs} runs; wall s / CPU s / peak RSS MB"
    )
    results = {n: one_size(n, args.commit_every, args.runs) for n in sizes}
    first, last = results[sizes[0]], results[sizes[-1]]
    header = ["what", *[f"{n:,} msgs" for n in sizes], f"ratio {sizes[-1]:,}/{sizes[0]:,}"]
    rows = [header]
    for what in first:
        cells = [what]
        for n in sizes:
            r = results[n][what]
            if "bytes_per_message" in r:
                cells.append(f"{r['bytes_per_message']:.0f} B/msg")
            else:
                extra = f", {r['rate']:,.0f}/s (CPU {r['cpu_rate']:,.0f}/s)" if "cpu_rate" in r else ""
                extra = extra or (f", {r['rate']:,.0f}/s" if "rate" in r else "")
                cells.append(f"{r['wall']:.3f} / {r['cpu']:.3f} / {r['rss_mb']:.0f}{extra}")
        key = "bytes_per_message" if "bytes_per_message" in first[what] else "cpu"
        cells.append(f"{last[what][key] / first[what][key]:.2f}x ({key})")
        rows.append(cells)
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"(peak RSS of this driver: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
