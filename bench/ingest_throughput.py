"""Ingest throughput: spool records per second through process_spool (messages + commit records).

    python bench/ingest_throughput.py [--sizes 10000,100000] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(n: int) -> float:
    from periscope_hooks.ingest import process_spool

    with tempfile.TemporaryDirectory(prefix="periscope-ingest-") as tmp:
        os.environ.update({"HOME": tmp, "XDG_STATE_HOME": f"{tmp}/s", "XDG_DATA_HOME": f"{tmp}/d", "XDG_CONFIG_HOME": f"{tmp}/c"})
        repo = Path(tmp) / "r"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@e"}
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "r"], check=True, env=env)
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        state = repo / ".git" / "periscope"
        state.mkdir()
        cwd = str(repo.resolve())
        with open(state / "spool.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"v": 1, "kind": "message", "id": f"m{i}", "session_id": f"s{i % 7}", "time": 1764000000000 + i,
                                    "provider": "p", "model": f"m{i % 3}", "agent": "build",
                                    "tokens": {"input": 10, "output": 5, "reasoning": 1, "cache_read": 2, "cache_write": 0},
                                    "cost": 0.001, "cwd": cwd, "git": {"branch": "main", "sha": sha}}) + "\n")
                if i % 1000 == 999:  # a commit every 1,000 messages
                    f.write(json.dumps({"v": 1, "kind": "commit", "hook": "post-commit", "time": 1764000000000 + i,
                                        "worktree": cwd, "sha": sha, "branch": "main",
                                        "reflog": {"old": None, "new": sha, "subject": "commit: x"}}) + "\n")
        t = time.perf_counter()
        result = process_spool(state)
        elapsed = time.perf_counter() - t
        assert result.messages == n, result
        return result.records / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for n in map(int, args.sizes.split(",")):
        rates = [one_run(n) for _ in range(args.runs)]
        print(f"{n:>7} messages: median {statistics.median(rates):,.0f} records/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
