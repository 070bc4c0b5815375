"""Ingest throughput: spool records per second through `periscope_hooks.ingest.process_spool`.

For each size, a fresh real git repository in a temp dir (HOME and XDG_* pointed there too) gets a
spool of N message records (testing.util.message_record, 7 sessions, 3 models) with a commit
record after every 1,000 messages (the shape the post-commit hook writes, for the real HEAD), so
ingest both stores the messages and links them, 1,000 per commit. Timed: one process_spool call
on a new state.db (open, migrate, ingest, link, git notes if any). Reported: the median of --runs.

    .venv/bin/python bench/ingest_throughput.py [--sizes 10000,100000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.util import message_record  # noqa: E402

COMMIT_EVERY = 1000


def make_commits(repo: Path, count: int) -> list[str]:
    """`count` real commits (each commit record needs its own SHA; ingest reads its parents)."""
    for i in range(count):
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", f"c{i}"], check=True)
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[-count:] if count else []


def write_spool(path: Path, n: int, worktree: str, shas: list[str]) -> int:
    lines = []
    for i in range(n):
        lines.append(
            json.dumps(
                message_record(
                    None,
                    id=f"m{i:07d}",
                    session_id=f"ses_{i % 7}",
                    model=f"model-{i % 3}",
                    cwd=worktree,
                    time=1764000000000 + i,
                )
            )
        )
        if i % COMMIT_EVERY == COMMIT_EVERY - 1:
            sha = shas[i // COMMIT_EVERY]
            lines.append(
                json.dumps(
                    {
                        "v": 1,
                        "kind": "commit",
                        "hook": "post-commit",
                        "time": 1764000000000 + i,
                        "worktree": worktree,
                        "sha": sha,
                        "branch": "main",
                        "reflog": {"old": None, "new": sha, "subject": "commit: bench"},
                        "rebasing": False,
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def one_run(n: int) -> dict:
    from periscope_hooks.ingest import process_spool

    with tempfile.TemporaryDirectory(prefix="periscope-ingest-") as tmp:
        os.environ.update(
            {
                "HOME": tmp,
                "XDG_STATE_HOME": f"{tmp}/state",
                "XDG_DATA_HOME": f"{tmp}/data",
                "XDG_CONFIG_HOME": f"{tmp}/config",
                "XDG_CACHE_HOME": f"{tmp}/cache",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": f"{tmp}/.gitconfig",
                "GIT_AUTHOR_NAME": "b",
                "GIT_AUTHOR_EMAIL": "b@example.com",
                "GIT_COMMITTER_NAME": "b",
                "GIT_COMMITTER_EMAIL": "b@example.com",
            }
        )
        repo = Path(tmp) / "r"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        shas = make_commits(repo, n // COMMIT_EVERY)
        state = repo / ".git" / "periscope"
        state.mkdir()
        records = write_spool(state / "spool.jsonl", n, str(repo.resolve()), shas)
        t = time.perf_counter()
        result = process_spool(state)
        elapsed = time.perf_counter() - t
        assert result.records == records and result.messages == n and result.commits == len(shas), result
        with sqlite3.connect(state / "state.db") as db:
            linked = db.execute("SELECT count(*) FROM messages WHERE link_id IS NOT NULL").fetchone()[0]
        assert linked == n // COMMIT_EVERY * COMMIT_EVERY, f"{linked} of {n} messages linked"
        return {"records": records, "seconds": elapsed, "rate": records / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000", help="message records per spool, comma-separated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores, "
        f"{args.runs} runs, a commit record every {COMMIT_EVERY:,} messages"
    )
    out = {}
    for n in map(int, args.sizes.split(",")):
        runs = [one_run(n) for _ in range(args.runs)]
        rates = [r["rate"] for r in runs]
        med = statistics.median(rates)
        out[n] = {
            "records": runs[0]["records"],
            "median_rate": med,
            "rates": rates,
            "median_seconds": statistics.median(r["seconds"] for r in runs),
        }
        print(
            f"{n:>8,} messages ({runs[0]['records']:,} records): median {med:,.0f} records/s, "
            f"{out[n]['median_seconds']:.2f} s (runs: {', '.join(f'{r:,.0f}' for r in rates)})",
            flush=True,
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
