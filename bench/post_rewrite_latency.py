"""The post-rewrite hook alone, with N rewritten commits on stdin, side by side in one run.

Every `git commit --amend` and every rebase ends with post-rewrite, given "old new" SHA pairs on
stdin.  The shim writes the record in sh (one printf up to ~45 pairs, one dd write up to ~360:
docs/design.md) and leaves the rest to Python.  This runs the installed hook script itself, as git
would (argument `rebase`, the pairs on stdin), in one repository, with each variant in turn,
rotating, for each N:

- *empty*: a `#!/bin/sh` hook that exits: what any hook costs;
- *ours*: the shim `install-hooks` writes (the sh path where it applies);
- *ours-py*: the same shim with PERISCOPE_SH_HOOK=0 (the Python hook);
- `--code NAME=PATH` (repeatable): the shim installed by another source tree (PYTHONPATH=PATH),
  e.g. an older commit checked out with `git worktree add /tmp/old REV`.

Each run appends a record to the repository's spool; the background flusher is off.

    .venv/bin/python bench/post_rewrite_latency.py [--pairs 1,40,100,300,400] [--runs 15]
        [--code old=/tmp/old]
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


def _git(cwd: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def _installed_shim(repo: Path, env: dict[str, str], code: str | None) -> str:
    """The post-rewrite script `install-hooks` writes, from this tree or from `code`."""
    run_env = {**env, "PYTHONPATH": code} if code else env
    subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "install-hooks"],
        cwd=repo,
        check=True,
        env=run_env,
        capture_output=True,
    )
    return (repo / ".git" / "hooks" / "post-rewrite").read_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", default="1,40,100,300,400")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--code", action="append", default=[], help="NAME=PATH of a source tree (repeatable)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-post-rewrite-bench-") as tmp:
        env = bench_env(tmp, PERISCOPE_BACKGROUND="0")
        repo = Path(tmp) / "r"
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main", env=env)
        scripts = {"empty": "#!/bin/sh\nexit 0\n"}
        for spec in args.code:
            name, _, path = spec.partition("=")
            scripts[name] = _installed_shim(repo, env, str(Path(path).resolve()))
        scripts["ours"] = scripts["ours-py"] = _installed_shim(repo, env, None)
        (repo / "base.txt").write_text("base\n")
        _git(repo, "add", "base.txt", env=env)
        _git(repo, "commit", "-q", "-m", "base", env=env)  # its post-commit creates the spool
        hook = repo / ".git" / "hooks" / "post-rewrite"
        variants = list(scripts)
        print(
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.runs} runs a variant,"
            f" median wall ms of the post-rewrite hook alone (ratio to ours)"
        )
        for n in (int(x) for x in args.pairs.split(",")):
            stdin = "".join(f"{i:040x} {i + 1_000_000:040x}\n" for i in range(n))
            times: dict[str, list[float]] = {k: [] for k in variants}
            for r in range(args.runs):
                for k in variants[r % len(variants) :] + variants[: r % len(variants)]:
                    set_hook(repo, "post-rewrite", scripts[k])
                    run_env = {**env, "PERISCOPE_SH_HOOK": "0"} if k == "ours-py" else env
                    t = time.perf_counter()
                    subprocess.run([str(hook), "rebase"], cwd=repo, input=stdin, text=True, check=True, env=run_env)
                    times[k].append(time.perf_counter() - t)
            ours = statistics.median(times["ours"])
            cells = ", ".join(
                f"{k} {statistics.median(v) * 1000:.1f} (x{statistics.median(v) / ours:.2f})" for k, v in times.items()
            )
            print(f"  {n} pairs: {cells}")


if __name__ == "__main__":
    main()
