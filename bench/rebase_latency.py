"""A 100-commit `git rebase` with and without the periscope hooks, side by side in one run.

One repository (a branch of N commits on a base that moved by one commit), rebased with its hooks
folder set for each variant: without hooks, with four empty `#!/bin/sh` hooks (the floor: what
starting any hook costs git; post-commit, post-merge, post-rewrite, post-checkout, as installed),
with `periscope install-hooks`' hooks, and the same with PERISCOPE_SH_HOOK=0 (the Python hook, as
the pre-commit framework runs it, minus pre-commit's own start); each round resets the branch and
rebases it once per variant, in rotating order.  One repository, not one per variant: on a
machine whose page cache is reclaimed behind our back (DAMON), two identical repositories made one
after the other rebased in 0.88 s and 1.72 s, a difference larger than the hooks'.  The replays'
post-commit runs are recognised in the shell shim (no Python starts) or, on the Python path, by
the hook before its imports; post-checkout (the rebase checks out `onto`) decides in sh;
post-rewrite runs once at the end (in sh up to ~360 commits, through one dd write past ~45; it
would spawn the background flusher: off here).

    .venv/bin/python bench/rebase_latency.py [--commits 100] [--rounds 9]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.history import bench_env  # noqa: E402
from bench.hook_latency import set_hook  # noqa: E402


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


HOOKS = ("post-commit", "post-merge", "post-rewrite", "post-checkout")


def make_repo(path: Path, commits: int, env: dict[str, str]) -> dict[str, dict[str, str]]:
    """The repository, and each variant's hooks (name -> script)."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main", env=env)
    (path / "base.txt").write_text("base\n")
    git(path, "add", "base.txt", env=env)
    git(path, "commit", "-q", "-m", "base", env=env)
    subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "install-hooks"], cwd=path, check=True, env=env, capture_output=True
    )
    hooks_dir = path / ".git" / "hooks"
    ours = {name: (hooks_dir / name).read_text() for name in HOOKS}
    git(path, "checkout", "-q", "-b", "feature", env=env)
    for i in range(commits):
        (path / f"f{i}.txt").write_text(f"{i}\n")
        git(path, "add", f"f{i}.txt", env=env)
        git(path, "commit", "-q", "-m", f"feature {i}", env=env)
    git(path, "tag", "feature-start", env=env)
    git(path, "checkout", "-q", "main", env=env)
    (path / "main.txt").write_text("moved\n")
    git(path, "add", "main.txt", env=env)
    git(path, "commit", "-q", "-m", "main moves", env=env)
    empty = "#!/bin/sh\nexit 0\n"
    return {"plain": {}, "floor": dict.fromkeys(HOOKS, empty), "ours": ours, "ours-py": ours}


def set_hooks(path: Path, hooks: dict[str, str]) -> None:
    for name in HOOKS:
        set_hook(path, name, hooks.get(name))


def timed_rebase(path: Path, env: dict[str, str], variant: str) -> float:
    git(path, "checkout", "-q", "-B", "feature", "feature-start", env=env)
    if variant == "ours-py":
        env = {**env, "PERISCOPE_SH_HOOK": "0"}
    t = time.perf_counter()
    git(path, "rebase", "-q", "main", env=env)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-rebase-bench-") as tmp:
        base = Path(tmp)
        env = bench_env(tmp, PERISCOPE_BACKGROUND="0")
        repo = base / "r"
        hooks = make_repo(repo, args.commits, env)
        variants = list(hooks)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            for k in variants[r % len(variants) :] + variants[: r % len(variants)]:
                set_hooks(repo, hooks[k])
                times[k].append(timed_rebase(repo, env, k))
        plain, floor, ours, ours_py = (statistics.median(times[k]) for k in variants)
        gitv = git(base, "--version", env=env).split()[-1]
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"git {gitv}, {os.cpu_count()} cores, load average {load}, {args.commits}-commit rebase,"
            f" {args.rounds} rounds: without hooks {plain:.3f} s, with four empty sh hooks {floor:.3f} s,"
            f" with ours {ours:.3f} s, ours through the Python hook {ours_py:.3f} s (medians);"
            f" ratio ours / without {ours / plain:.2f}, ours / empty hooks {ours / floor:.2f},"
            f" Python hook / without {ours_py / plain:.2f}"
        )


if __name__ == "__main__":
    main()
