"""What pre-commit's own start-up adds per commit, compared with the plain shim.

Three repositories committed to in turn, round after round: no hook, the plain periscope shim,
and the periscope hooks run through the real pre-commit framework. Prints the added milliseconds
(median / p95) and the ratio of medians.

    python bench/precommit_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-precommit-bench-") as tmp:
        base = Path(tmp)
        os.environ.update(
            {
                "HOME": tmp,
                "XDG_CONFIG_HOME": f"{tmp}/.config",
                "XDG_DATA_HOME": f"{tmp}/.local/share",
                "XDG_STATE_HOME": f"{tmp}/.local/state",
                "GIT_AUTHOR_NAME": "b",
                "GIT_AUTHOR_EMAIL": "b@e",
                "GIT_COMMITTER_NAME": "b",
                "GIT_COMMITTER_EMAIL": "b@e",
                "PERISCOPE_BACKGROUND": "0",
                "PYTHONPATH": str(ROOT),
                "PRE_COMMIT_HOME": f"{tmp}/pre-commit",
            }
        )
        from testing.precommit import configure, snapshot_project
        from testing.util import git, init_repo

        repos = {name: init_repo(base / name, remote=None) for name in ("none", "shim", "pre-commit")}
        for r in repos.values():
            git(r, "commit", "-q", "--allow-empty", "-m", "root")
        subprocess.run(
            [sys.executable, "-m", "periscope_hooks", "install-hooks", "--repo", str(repos["shim"])],
            check=True,
            capture_output=True,
        )
        project, rev = snapshot_project(base / "project")
        configure(repos["pre-commit"], project, rev, base / "pre-commit")
        times = {k: [] for k in repos}
        for i in range(args.rounds):
            for k, r in repos.items():
                t = time.perf_counter()
                subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", f"c{i}"], cwd=r, check=True)
                times[k].append((time.perf_counter() - t) * 1000)
        none = statistics.median(times["none"])
        for k in ("shim", "pre-commit"):
            added = sorted(t - none for t in times[k])
            p95 = added[min(len(added) - 1, int(round(0.95 * (len(added) - 1))))]
            print(f"{k:<11} adds {statistics.median(added):7.1f} ms median, {p95:7.1f} ms p95 per commit")
        shim = statistics.median(times["shim"]) - none
        pc = statistics.median(times["pre-commit"]) - none
        print(f"no hook: {none:.1f} ms per commit; pre-commit / shim = {pc / shim:.1f}x ({args.rounds} rounds)")


if __name__ == "__main__":
    main()
