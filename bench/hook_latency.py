"""What the post-commit hook adds to `git commit`, measured side by side in one run.

Variants, committed to in a shuffled order in every round so machine noise hits them alike.  The
first four take turns in one repository, its post-commit hook set before each commit: on a
machine that reclaims page cache behind our back, two identical hookless repositories made one
after the other committed in 10.97 and 13.43 ms (medians), a difference as large as our hook's.
ours+bg has a repository of its own (its flusher ingests that spool):

  none     no hook
  floor    `#!/bin/sh` + `exec "<python>" -c pass`: only starts the same interpreter, the floor
           for any Python hook
  ours-py  the shim `python -m periscope_hooks install-hooks` writes, PERISCOPE_BACKGROUND=0 and
           PERISCOPE_SH_HOOK=0: the record written by the Python hook
  ours     the same shim as installed, PERISCOPE_BACKGROUND=0: the record written in sh (the
           commit's own cost)
  ours+bg  the same shim as installed: it also posix_spawns the detached flusher. Its flusher is
           waited for (untimed) before the next commit, and its run time is reported as `bg flush`.

Scenarios: 0 / 1,000 / 10,000 pending message records in the spool (appended, not ingested; for
ours+bg they are topped up before every commit, since its flusher ingests them), and a state.db
with 100,000 messages already linked to a commit (`linked`).

Added ms = commit time minus the median no-hook commit time of the same scenario. Ratio =
median added (ours) / median added (floor). Everything runs in temp dirs with HOME and XDG_*
pointed there; the hook is installed with this interpreter, so the shim bakes it in.

    .venv/bin/python bench/hook_latency.py [--rounds 25] [--scenarios 0,1000,10000,linked] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history import bench_env  # noqa: E402
from testing.util import message_record  # noqa: E402

VARIANTS = ("none", "floor", "ours-py", "ours", "ours+bg")
LINKED = 100_000


def git(cwd: Path, *args: str, env: dict) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


FLOOR_HOOK = f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c pass\n"


def make_repo(base: Path, name: str, env: dict, hook: str | None) -> Path:
    repo = base / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", env=env)
    git(repo, "commit", "-q", "--allow-empty", "-m", "root", env=env)
    if hook == "floor":
        h = repo / ".git" / "hooks" / "post-commit"
        h.write_text(FLOOR_HOOK)
        h.chmod(0o755)
    elif hook in ("ours", "ours-py"):
        subprocess.run(
            [sys.executable, "-m", "periscope_hooks", "install-hooks", "--repo", str(repo)],
            check=True,
            capture_output=True,
            env=env,
        )
        shim = (repo / ".git" / "hooks" / "post-commit").read_text()
        assert f"INSTALL_PYTHON={shlex.quote(sys.executable)}" in shim, "the shim must bake in this interpreter"
    return repo.resolve()


def set_hook(repo: Path, name: str, script: str | None) -> None:
    """The repository's hook `name` made `script` (None: no such hook)."""
    hook = repo / ".git" / "hooks" / name
    if script is None:
        hook.unlink(missing_ok=True)
    else:
        hook.write_text(script)
        hook.chmod(0o755)


def state_dir(repo: Path) -> Path:
    return repo / ".git" / "periscope"


_ids = [0]


def append_messages(repo: Path, n: int) -> None:
    """n message records (testing.util.message_record), fresh ids, for this worktree; one write."""
    if n <= 0:
        return
    state_dir(repo).mkdir(exist_ok=True)
    lines = []
    for _ in range(n):
        _ids[0] += 1
        lines.append(json.dumps(message_record(repo, id=f"bench_{_ids[0]:08d}", session_id=f"ses_{_ids[0] % 50}")))
    with open(state_dir(repo) / "spool.jsonl", "a") as f:
        f.write("\n".join(lines) + "\n")


def build_linked(repos: list[Path], env: dict) -> None:
    """100,000 messages linked to a commit in each repo: spool them, commit (the hook appends the
    commit record), then one `periscope flush` per repo (run concurrently)."""
    for repo in repos:
        append_messages(repo, LINKED)
        git(repo, "commit", "-q", "--allow-empty", "-m", "link them", env={**env, "PERISCOPE_BACKGROUND": "0"})
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "periscope_hooks", "flush", "--repo", str(r)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for r in repos
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"periscope flush failed: {err.decode()}")
    for repo in repos:
        with sqlite3.connect(state_dir(repo) / "state.db") as db:
            linked = db.execute("SELECT count(*) FROM messages WHERE link_id IS NOT NULL").fetchone()[0]
        assert linked == LINKED, f"{repo}: {linked} linked messages, expected {LINKED}"


def flushers(sdir: Path) -> list[int]:
    """PIDs of background flushers working on this state dir (found by their command line)."""
    needle = b"_background-flush\0" + str(sdir).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def wait_flushers(sdir: Path, timeout: float = 120.0) -> float:
    """Wait until no flusher runs for sdir; seconds waited."""
    t0 = time.perf_counter()
    while flushers(sdir):
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"background flusher for {sdir} still running after {timeout}s")
        time.sleep(0.005)
    return time.perf_counter() - t0


def _children_cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def timed_commit(repo: Path, env: dict, i: int, cpu: list[float] | None = None) -> float:
    """Wall ms of one commit; its CPU ms (git, the hook and what the hook waited for: not the
    detached flusher) appended to `cpu`.  CPU time barely moves with the machine's load."""
    c = _children_cpu_ms()
    t = time.perf_counter()
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", f"c{i}"], cwd=repo, check=True, env=env)
    wall = (time.perf_counter() - t) * 1000
    if cpu is not None:
        cpu.append(_children_cpu_ms() - c)
    return wall


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def run_scenario(scenario: str, rounds: int, env: dict, rng: random.Random) -> dict:
    pending = 0 if scenario == "linked" else int(scenario)
    with tempfile.TemporaryDirectory(prefix="periscope-bench-") as tmp:
        base = Path(tmp)
        shared = make_repo(base, "shared", env, "ours")
        shim = (shared / ".git" / "hooks" / "post-commit").read_text()
        hooks: dict[str, str | None] = {"none": None, "floor": FLOOR_HOOK, "ours-py": shim, "ours": shim}
        repos = {**dict.fromkeys(hooks, shared), "ours+bg": make_repo(base, "ours-bg", env, "ours")}
        if scenario == "linked":
            build_linked([shared, repos["ours+bg"]], env)
        append_messages(shared, pending)
        envs = {k: {**env, "PERISCOPE_BACKGROUND": "1" if k == "ours+bg" else "0"} for k in repos}
        envs["ours-py"]["PERISCOPE_SH_HOOK"] = "0"
        times: dict[str, list[float]] = {k: [] for k in repos}
        cpu: dict[str, list[float]] = {k: [] for k in repos}
        bg_flush: list[float] = []
        bg_sdir = state_dir(repos["ours+bg"])
        for i in range(rounds):
            order = list(VARIANTS)
            rng.shuffle(order)
            for k in order:
                if k == "ours+bg":
                    # Its last flusher ingested everything: put `pending` unread records back (untimed).
                    append_messages(repos[k], pending)
                else:
                    set_hook(shared, "post-commit", hooks[k])
                times[k].append(timed_commit(repos[k], envs[k], i, cpu[k]))
                if k == "ours+bg":
                    # Never let it overlap another commit.  The shim's flusher sleeps 0.2 s in a
                    # subshell before Python (and its `_background-flush` command line) starts.
                    time.sleep(0.25)
                    bg_flush.append(250 + wait_flushers(bg_sdir) * 1000)
        # The bench checks what it measured: one commit record per timed commit, none lost.
        for repo, commits in ((shared, 2 * rounds), (repos["ours+bg"], rounds)):  # ours-py's and ours'
            n = sum(1 for ln in (state_dir(repo) / "spool.jsonl").read_text().splitlines() if '"kind":"commit"' in ln)
            assert n >= commits, f"{repo.name}: {n} commit records for {commits} commits"
        base_med = statistics.median(times["none"])
        out = {"no_hook_ms": base_med, "bg_flush_ms": (statistics.median(bg_flush), p95(bg_flush))}
        for k in VARIANTS[1:]:
            added = [t - base_med for t in times[k]]
            out[k] = (statistics.median(added), p95(added))
        base_cpu = statistics.mean(cpu["none"])
        out["cpu_added_ms"] = {k: statistics.mean(cpu[k]) - base_cpu for k in VARIANTS[1:4]}
        out["ratio_py"] = out["ours-py"][0] / out["floor"][0] if out["floor"][0] > 0 else float("nan")
        out["ratio"] = out["ours"][0] / out["floor"][0] if out["floor"][0] > 0 else float("nan")
        out["ratio_bg"] = out["ours+bg"][0] / out["floor"][0] if out["floor"][0] > 0 else float("nan")
        return out


def startup(env: dict, runs: int) -> dict:
    """Bare interpreter start-up, interleaved: what any Python hook pays at least."""
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
        "import hook": [sys.executable, "-c", "from periscope_hooks.hook import run"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            times[k].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=25, help="timed commits per variant and scenario (default 25)")
    ap.add_argument("--scenarios", default="0,1000,10000,linked")
    ap.add_argument("--seed", type=int, default=1, help="seed of the per-round shuffle")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="periscope-bench-home-") as home:
        env = bench_env(home)
        gitv = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]
        print(
            f"python {sys.version.split()[0]} ({sys.executable}), git {gitv}, {os.cpu_count()} cores, "
            f"{args.rounds} rounds, PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}, "
            f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        st = startup(env, 15)
        print("interpreter start-up (median ms): " + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
        print("added ms over no hook, median / p95; ratio = median ours / median floor")
        print(
            f"{'scenario':<18}{'no hook':>9}{'floor':>15}{'ours-py':>15}{'ours (sh)':>15}{'ratio':>7}"
            f"{'ours+bg':>15}{'ratio':>7}"
            f"{'bg flush':>16}"
        )
        results = {
            "python": sys.version.split()[0],
            "git": gitv,
            "cores": os.cpu_count(),
            "rounds": args.rounds,
            "startup_ms": st,
            "scenarios": {},
        }
        for scenario in args.scenarios.split(","):
            r = run_scenario(scenario, args.rounds, env, rng)
            results["scenarios"][scenario] = r
            label = "100k linked" if scenario == "linked" else f"{int(scenario):,} pending"
            cell = lambda m_p: f"{m_p[0]:.1f} / {m_p[1]:.1f}"  # noqa: E731
            print(
                f"{label:<18}{r['no_hook_ms']:>7.1f}ms{cell(r['floor']):>15}{cell(r['ours-py']):>15}"
                f"{cell(r['ours']):>15}{r['ratio']:>7.2f}"
                f"{cell(r['ours+bg']):>15}{r['ratio_bg']:>7.2f}{cell(r['bg_flush_ms']):>16}",
                flush=True,
            )
            print(
                f"{'':<18}CPU ms added (mean): " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_added_ms"].items()),
                flush=True,
            )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
