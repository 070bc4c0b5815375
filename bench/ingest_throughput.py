"""Ingest throughput: spool records per second through `process_spool`, at a realistic shape.

For each size, a fresh real repository (bench/history.py: real commits from git fast-import) gets a
spool of N message records with a commit record after every K messages (default 20; heavy users
commit every 10-50), so ingest stores, links and queues events for all of them. Timed in a fresh
process: one `process_spool` on a new state.db (open, migrate, ingest, link); wall and CPU seconds
and peak RSS. Medians of --runs, and the ratio of the largest size's rate to the smallest's (1.0:
linear). `bench/scale.py` measures the whole flush (with delivery), reports and export.

    .venv/bin/python bench/ingest_throughput.py [--sizes 10000,100000,1000000] [--commit-every 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
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
sd = Path(sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
result = process_spool(sd)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "records": result.records, "messages": result.messages, "commits": result.commits}))
"""


def one_run(n: int, commit_every: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="periscope-ingest-") as tmp:
        history.isolated_env(tmp)
        repo = Path(tmp) / "r"
        shas = history.make_commits(repo, n // commit_every)
        sd = repo / ".git" / "periscope"
        records = history.write_history(sd / "spool.jsonl", n, commit_every, str(repo.resolve()), shas)
        out = subprocess.run([sys.executable, "-c", CHILD, str(sd)], capture_output=True, text=True, check=True).stdout
        r: dict[str, float] = json.loads(out)
        assert r["records"] == records and r["messages"] == n and r["commits"] == len(shas), r
        r["rate"] = records / r["wall"]
        r["cpu_rate"] = records / r["cpu"]
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="message records per spool, comma-separated")
    ap.add_argument("--commit-every", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), "
        f"a commit record every {args.commit_every} messages, medians of {args.runs} runs"
    )
    med = {}
    for n in sizes:
        runs = [one_run(n, args.commit_every) for _ in range(args.runs)]
        med[n] = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mb", "rate", "cpu_rate")}
        m = med[n]
        print(
            f"{n:>9,} messages: {m['rate']:>8,.0f} records/s wall, {m['cpu_rate']:>8,.0f} records/s CPU,"
            f" {m['wall']:.2f} s, peak RSS {m['rss_mb']:.0f} MB"
            " (runs, records/s wall: " + ", ".join(f"{r['rate']:,.0f}" for r in runs) + ")",
            flush=True,
        )
    lo, hi = med[sizes[0]], med[sizes[-1]]
    print(
        f"ratio {sizes[-1]:,}/{sizes[0]:,}: CPU rate x{hi['cpu_rate'] / lo['cpu_rate']:.2f},"
        f" peak RSS x{hi['rss_mb'] / lo['rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
