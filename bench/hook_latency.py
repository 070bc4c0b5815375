"""What the post-commit hook adds to `git commit`, measured side by side.

Variants, interleaved in rounds so machine noise hits them alike:
  none   - no hook
  floor  - a hook that only starts the same interpreter (`python -c pass`): the floor for any Python hook
  ours   - the installed periscope shim (background flush off, so only the commit's own cost is timed)
  ours+bg - the installed shim with its detached background flush (competes for CPU on small machines)
Scenarios: 0, 1,000 and 10,000 pending spool records, and 100,000 already-linked messages.
Prints medians and p95 of the added milliseconds and ratio ours/floor (medians).

    python bench/hook_latency.py [--rounds 25] [--scenarios 0,1000,10000,linked]
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


def git(cwd, *args, env=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def message(i, cwd):
    return {"v": 1, "kind": "message", "id": f"bench-{i}", "session_id": "ses_bench", "time": int(time.time() * 1000),
            "provider": "p", "model": "m", "agent": "build",
            "tokens": {"input": 10, "output": 5, "reasoning": 0, "cache_read": 0, "cache_write": 0},
            "cost": 0.001, "cwd": cwd, "git": {"branch": "main", "sha": None}}


def make_repo(base: Path, name: str, env: dict, hook: str | None) -> Path:
    repo = base / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", env=env)
    git(repo, "commit", "-q", "--allow-empty", "-m", "root", env=env)
    if hook == "floor":
        h = repo / ".git" / "hooks" / "post-commit"
        h.write_text(f"#!/bin/sh\nexec '{sys.executable}' -c pass\n")
        h.chmod(0o755)
    elif hook == "ours":
        subprocess.run([sys.executable, "-m", "periscope_hooks", "install-hooks", "--repo", str(repo)], check=True,
                       capture_output=True, env=env)
    return repo


def fill(repo: Path, scenario: str, env: dict) -> None:
    spool = repo / ".git" / "periscope" / "spool.jsonl"
    spool.parent.mkdir(exist_ok=True)
    cwd = str(repo.resolve())
    if scenario == "linked":
        with open(spool, "w") as f:
            for i in range(100_000):
                f.write(json.dumps(message(i, cwd)) + "\n")
        git(repo, "commit", "-q", "--allow-empty", "-m", "link them", env={**env, "PERISCOPE_BACKGROUND": "0"})
        subprocess.run([sys.executable, "-m", "periscope_hooks", "flush", "--repo", str(repo)], check=True, env=env)
    else:
        with open(spool, "w") as f:
            for i in range(int(scenario)):
                f.write(json.dumps(message(i, cwd)) + "\n")


def timed_commit(repo: Path, env: dict, i: int) -> float:
    t = time.perf_counter()
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", f"c{i}"], cwd=repo, check=True, env=env)
    return (time.perf_counter() - t) * 1000


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def run_scenario(scenario: str, rounds: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="periscope-bench-") as tmp:
        base = Path(tmp)
        repos = {
            "none": make_repo(base, "none", env, None),
            "floor": make_repo(base, "floor", env, "floor"),
            "ours": make_repo(base, "ours", env, "ours"),
            "ours+bg": make_repo(base, "ours-bg", env, "ours"),
        }
        fill(repos["ours"], scenario, env)
        fill(repos["ours+bg"], scenario, env)
        envs = {k: {**env, "PERISCOPE_BACKGROUND": "1" if k == "ours+bg" else "0"} for k in repos}
        times = {k: [] for k in repos}
        for i in range(rounds):
            for k, repo in repos.items():
                times[k].append(timed_commit(repo, envs[k], i))
            time.sleep(0.3)  # commits are seconds apart in real life; let a background flush finish
        base_med = statistics.median(times["none"])
        added = {k: [t - base_med for t in v] for k, v in times.items() if k != "none"}
        return {"no_hook_ms": base_med, **{k: (statistics.median(v), p95(v)) for k, v in added.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--scenarios", default="0,1000,10000,linked")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-bench-home-") as home:
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share",
               "XDG_STATE_HOME": f"{home}/.local/state", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com", "GIT_CONFIG_NOSYSTEM": "1",
               "PYTHONPATH": str(ROOT)}
        print(f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} cores, {args.rounds} rounds")
        print(f"{'scenario':<18}{'no hook':>9}{'floor med/p95':>16}{'ours med/p95':>16}{'ours+bg med/p95':>18}{'ratio':>7}")
        for scenario in args.scenarios.split(","):
            r = run_scenario(scenario, args.rounds, env)
            label = "100k linked" if scenario == "linked" else f"{scenario} pending"
            ratio = r["ours"][0] / r["floor"][0] if r["floor"][0] > 0 else float("nan")
            print(f"{label:<18}{r['no_hook_ms']:>8.1f}ms{r['floor'][0]:>9.1f}/{r['floor'][1]:<6.1f}"
                  f"{r['ours'][0]:>9.1f}/{r['ours'][1]:<6.1f}{r['ours+bg'][0]:>10.1f}/{r['ours+bg'][1]:<7.1f}{ratio:>6.2f}")


if __name__ == "__main__":
    main()
