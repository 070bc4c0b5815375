"""What the post-checkout hook adds to `git switch`, side by side in one run.

Variants, taking turns in one repository (a `main` and a `topic` branch, a few files; its
post-checkout hook set before each switch), in a shuffled order every round so machine noise hits
them alike.  One repository, not one each: identical repositories made one after the other ran
git at different speeds on a machine that reclaims page cache behind our back
(bench/rebase_latency.py):

  none   no hook
  floor  an empty `#!/bin/sh` post-checkout hook: what starting any hook costs git
  ours   the shim `periscope install-hooks` writes, background flush on

Each round times a switch to `topic` (not the default branch: the shim decides in sh and starts
nothing) and back to `main` (the default branch: the shim forks the detached flusher, which
sleeps 0.2 s before it starts Python).  The flusher is waited for, untimed, before the next
switch, so it never overlaps a timed one.  Added ms = time minus the median of `none`.

    .venv/bin/python bench/checkout_latency.py [--rounds 25]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history import bench_env  # noqa: E402
from bench.hook_latency import p95, set_hook, wait_flushers  # noqa: E402

VARIANTS = ("none", "floor", "ours")


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def make_repo(base: Path, env: dict[str, str]) -> tuple[Path, dict[str, str | None]]:
    """The repository, and each variant's post-checkout hook (None: no hook)."""
    repo = base / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", env=env)
    for i in range(20):
        (repo / f"f{i}.txt").write_text(f"{i}\n")
    git(repo, "add", ".", env=env)
    git(repo, "commit", "-q", "-m", "base", env=env)
    git(repo, "branch", "topic", env=env)
    subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "install-hooks"], cwd=repo, check=True, env=env, capture_output=True
    )
    git(repo, "commit", "-q", "--allow-empty", "-m", "creates the spool", env={**env, "PERISCOPE_BACKGROUND": "0"})
    ours = (repo / ".git" / "hooks" / "post-checkout").read_text()
    return repo.resolve(), {"none": None, "floor": "#!/bin/sh\nexit 0\n", "ours": ours}


def timed(repo: Path, branch: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms of git and its hook; not the detached flusher, which is not waited for)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["git", "switch", "-q", branch], cwd=repo, check=True, env=env)
    wall = (time.perf_counter() - t) * 1000
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=25)
    args = ap.parse_args()
    rng = random.Random(12)
    with tempfile.TemporaryDirectory(prefix="periscope-checkout-bench-") as tmp:
        base = Path(tmp)
        env = bench_env(tmp)
        repo, hooks = make_repo(base, env)
        sdir = repo / ".git" / "periscope"
        times: dict[tuple[str, str], list[float]] = {(k, b): [] for k in VARIANTS for b in ("topic", "main")}
        cpu: dict[tuple[str, str], list[float]] = {(k, b): [] for k in VARIANTS for b in ("topic", "main")}
        for _ in range(args.rounds):
            order = list(VARIANTS)
            rng.shuffle(order)
            for k in order:
                set_hook(repo, "post-checkout", hooks[k])
                for branch in ("topic", "main"):
                    wall, cpu_ms = timed(repo, branch, env)
                    times[(k, branch)].append(wall)
                    cpu[(k, branch)].append(cpu_ms)
                    if k == "ours" and branch == "main":  # its flusher sleeps 0.2 s, then runs
                        time.sleep(0.3)
                        wait_flushers(sdir)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"{os.cpu_count()} cores, load average {load}, {args.rounds} rounds; added wall ms (median / p95),"
            " added CPU ms (mean)"
        )
        for branch, what in (("topic", "switch to another branch"), ("main", "switch to the default branch")):
            none = statistics.median(times[("none", branch)])
            cells = []
            for k in VARIANTS[1:]:
                added = [t - none for t in times[(k, branch)]]
                cpu_added = statistics.mean(cpu[(k, branch)]) - statistics.mean(cpu[("none", branch)])
                cells.append(f"{k} +{statistics.median(added):.2f} / {p95(added):.2f}, CPU +{cpu_added:.2f}")
            print(f"{what}: none {none:.2f} ms; " + "; ".join(cells))


if __name__ == "__main__":
    main()
