"""What list prices cost ingest: `process_spool` with pricing off, on with a cold price cache, and on
with a warm one, side by side in one run (issue 13: at most 10 % lower throughput).

Each run: a fresh real git repository (HOME and XDG_* in a temp dir), a spool of N message records
over four real models (anthropic claude-sonnet-4 and openai gpt-5 with a reported cost, openai o3
whose price changed over time, github-copilot claude-sonnet-4 reporting 0, so a subscription) and a
commit record after every 1,000 messages, ingested by one `process_spool` call timed in a fresh
interpreter, so the cold variant pays the genai-prices import like a real flusher run does:

- off:  pricing.Pricer.price replaced by a constant (what an install without genai-prices does);
- cold: the real Pricer on a new state.db (imports genai-prices, resolves the four models);
- warm: the real Pricer, state.db already holding the models' prices from an earlier flush of 40
  messages (a flusher after an ordinary commit: genai-prices is not imported).

Variants run in a shuffled order in every round; reported: medians of records per second of the ingesting process's
CPU time (robust on a shared machine) and of wall time, each with its ratio to off.

    .venv/bin/python bench/pricing_overhead.py [--sizes 1000,10000,100000] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from history import isolated_env, make_commits  # noqa: E402

from testing.util import message_record  # noqa: E402

COMMIT_EVERY = 20  # a commit every 20 messages (heavy users commit every 10-50)
MODELS = [
    ("anthropic", "claude-sonnet-4", 0.0123),
    ("openai", "gpt-5", 0.0071),
    ("openai", "o3", 0.02),
    ("github-copilot", "claude-sonnet-4", 0.0),
]
VARIANTS = ("off", "cold", "warm")

TIMED = """
import json, sys, time
from pathlib import Path
if sys.argv[2] == "off":
    from periscope_hooks import pricing
    pricing.Pricer.price = lambda self, *a: pricing.Priced(None, "reported", None)
from periscope_hooks.ingest import process_spool
t, c = time.perf_counter(), time.process_time()
r = process_spool(Path(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "messages": r.messages, "records": r.records,
                  "genai_prices": "genai_prices" in sys.modules}))
"""


def spool_lines(n: int, worktree: str, shas: list[str], first: int = 0) -> list[str]:
    lines = []
    for i in range(first, first + n):
        provider, model, cost = MODELS[i % len(MODELS)]
        rec = message_record(
            None, id=f"m{i:07d}", session_id=f"ses_{i % 7}", provider=provider, model=model, cost=cost,
            tokens=(1200 + i % 500, 310, 40 * (i % 3), 800, 100 * (i % 2)), cwd=worktree, time=1764000000000 + i,
        )  # fmt: skip
        lines.append(json.dumps(rec))
        if shas and (i - first) % COMMIT_EVERY == COMMIT_EVERY - 1:
            sha = shas[(i - first) // COMMIT_EVERY]
            commit = {"v": 1, "kind": "commit", "hook": "post-commit", "time": 1764000000000 + i, "worktree": worktree,
                      "sha": sha, "branch": "main", "reflog": {"old": None, "new": sha, "subject": "commit: bench"},
                      "rebasing": False}  # fmt: skip
            lines.append(json.dumps(commit))
    return lines


def one_run(n: int, variant: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="periscope-pricing-") as tmp:
        isolated_env(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        repo = Path(tmp) / "r"
        shas = make_commits(repo, max(1, n // COMMIT_EVERY))
        state = repo / ".git" / "periscope"
        state.mkdir()
        spool = state / "spool.jsonl"
        worktree = str(repo.resolve())
        if variant == "warm":  # an earlier flush priced these models (40 messages, not timed)
            spool.write_text("\n".join(spool_lines(40, worktree, [], first=10_000_000)) + "\n")
            subprocess.run([sys.executable, "-c", TIMED, str(state), "cold"], check=True, env=env, capture_output=True)
        with spool.open("a") as f:
            f.write("\n".join(spool_lines(n, worktree, shas[: n // COMMIT_EVERY])) + "\n")
        proc = subprocess.run(
            [sys.executable, "-c", TIMED, str(state), variant], check=True, env=env, capture_output=True, text=True
        )
        out = json.loads(proc.stdout)
        assert out["messages"] == n, out
        assert out["genai_prices"] == (variant == "cold"), out  # warm: answered from state.db
        with sqlite3.connect(state / "state.db") as db:
            priced = db.execute("SELECT count(*) FROM messages WHERE list_cost_micro IS NOT NULL").fetchone()[0]
        assert priced == (0 if variant == "off" else n + (40 if variant == "warm" else 0)), priced
        return {"seconds": out["seconds"], "rate": out["records"] / out["seconds"], "cpu": out["cpu"],
                "cpu_rate": out["records"] / out["cpu"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores, {args.runs} runs")
    out: dict = {}
    for n in map(int, args.sizes.split(",")):
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for _ in range(args.runs):
            for variant in rng.sample(VARIANTS, len(VARIANTS)):
                results[variant].append(one_run(n, variant))
        med = {v: statistics.median(r["rate"] for r in results[v]) for v in VARIANTS}
        cpu = {v: statistics.median(r["cpu_rate"] for r in results[v]) for v in VARIANTS}
        out[n] = {"wall_rates": med, "cpu_rates": cpu, "runs": results}
        # CPU time of the ingesting process: on a shared machine it moves far less than wall time.
        print(
            f"{n:>8,} messages, records/s of CPU (x off) | of wall (x off): "
            + "; ".join(
                f"{v} {cpu[v]:,.0f} (x{cpu[v] / cpu['off']:.3f}) | {med[v]:,.0f} (x{med[v] / med['off']:.3f})"
                for v in VARIANTS
            ),
            flush=True,
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
