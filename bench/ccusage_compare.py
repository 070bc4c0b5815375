"""periscope `report --by day` against ccusage's `daily --json` over the same Claude Code messages.

One history, read by both tools: N assistant messages written as Claude Code transcripts
(`<config>/projects/<project>/<session>.jsonl`, compact JSON lines of the shape Claude Code 2.1
writes; sessions of 500 messages, one user prompt line every 10, 3 models, times 12 s apart so
the days span ~4 months), in a real git repository (bench/history.py, `git fast-import`).

- ccusage reads the transcripts themselves (CLAUDE_CONFIG_DIR points at them), with `--offline`
  so no price list is fetched.
- periscope ingests the same transcripts the way its Claude Code capture does
  (`agents.claude_code.capture_session`, the function the hooks and `flush`'s recovery run),
  with a commit record after every 20 messages added to the spool (a heavy user's density), then
  one `periscope flush` (timed as setup, not compared).  Both tools then count the same messages:
  the bench checks that every day's input, output, cache-read and cache-write tokens agree.

Each tool then runs --runs times, alternating, each a fresh process (wall, CPU, peak RSS via
wait4); medians are shown with the load average.  ccusage is installed from npm, pinned, by
scripts/install-ccusage-for-bench.sh: the current native release and the last JavaScript one.

    .venv/bin/python bench/ccusage_compare.py [--messages 1000000] [--runs 5] [--keep DIR]

--keep DIR builds the history in DIR once and reuses it (the first ingest of 1M takes minutes).
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
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import history  # noqa: E402
from scale import run_fresh  # noqa: E402

CCUSAGE_VERSIONS = ("20.0.24", "18.0.11")  # native (Rust) release; last JavaScript release (Node 20)
SESSION_SIZE = 500
COMMIT_EVERY = 20
STEP_MS = 12_000
T0_MS = 1764000000000
MODELS = ("claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001")


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def session_id(s: int) -> str:
    return f"{s:08x}-1d2f-4e5a-8b6c-7d8e9f0a1b2c"


def transcript_lines(s: int, first: int, count: int, cwd: str) -> str:
    """Compact JSON lines, as Claude Code writes them: an assistant line per message (its usage is
    the message's), a user prompt line every 10 messages."""
    sid = session_id(s)
    out = []
    for i in range(first, first + count):
        t = T0_MS + i * STEP_MS
        if i % 10 == 0:
            out.append(
                {
                    "parentUuid": None,
                    "isSidechain": False,
                    "userType": "external",
                    "cwd": cwd,
                    "sessionId": sid,
                    "version": "2.1.332",
                    "gitBranch": "main",
                    "type": "user",
                    "message": {"role": "user", "content": "carry on with the next step of the plan"},
                    "uuid": f"u{i:011d}-0000-4000-8000-000000000000",
                    "timestamp": _iso(t - 500),
                }
            )
        out.append(
            {
                "parentUuid": f"u{i:011d}-0000-4000-8000-000000000000",
                "isSidechain": False,
                "userType": "external",
                "cwd": cwd,
                "sessionId": sid,
                "version": "2.1.332",
                "gitBranch": "main",
                "message": {
                    "id": f"msg_{i:012d}",
                    "type": "message",
                    "role": "assistant",
                    "model": MODELS[i % 3],
                    "content": [{"type": "text", "text": "Done: the tests pass."}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 12 + i % 97,
                        "cache_creation_input_tokens": 300 + i % 53,
                        "cache_read_input_tokens": 20000 + i % 1009,
                        "output_tokens": 150 + i % 211,
                        "service_tier": "standard",
                    },
                },
                "requestId": f"req_{i:012d}",
                "type": "assistant",
                "uuid": f"a{i:011d}-0000-4000-8000-000000000000",
                "timestamp": _iso(t),
            }
        )
    return "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in out)


class ClaudeRepo(NamedTuple):
    env: dict[str, str]  # the isolated HOME and XDG variables (history.isolated_env)
    repo: Path
    shas: list[str]  # its real commits, oldest first
    worktree: str
    project: Path  # Claude Code's project folder for the worktree, where its transcripts go
    spool: Path


def claude_repo(base: Path, commits: int) -> ClaudeRepo:
    """A real repository under `base` with `commits` commits, and Claude Code's project folder for it."""
    env = history.isolated_env(str(base))
    repo = base / "r"
    shas = history.make_commits(repo, commits)
    worktree = str(repo.resolve())
    project = base / "claude" / "projects" / ("-" + worktree.strip("/").replace("/", "-"))
    project.mkdir(parents=True, exist_ok=True)
    return ClaudeRepo(env, repo, shas, worktree, project, repo / ".git" / "periscope" / "spool.jsonl")


def build(base: Path, n: int) -> dict[str, Any]:
    """Transcripts, the repository, the captured spool with commit records, and the first flush."""
    from periscope_hooks.agents import claude_code

    env, repo, shas, worktree, project, spool = claude_repo(base, n // COMMIT_EVERY)
    os.environ["CLAUDE_CONFIG_DIR"] = str(base / "claude")
    os.environ["TZ"] = "UTC"
    start = time.perf_counter()
    for s in range(0, (n + SESSION_SIZE - 1) // SESSION_SIZE):
        first = s * SESSION_SIZE
        path = project / f"{session_id(s)}.jsonl"
        path.write_text(transcript_lines(s, first, min(SESSION_SIZE, n - first), worktree), encoding="utf-8")
    written = time.perf_counter() - start
    start = time.perf_counter()
    for s in range(0, (n + SESSION_SIZE - 1) // SESSION_SIZE):
        claude_code.capture_session(session_id(s), str(project / f"{session_id(s)}.jsonl"), env=os.environ)
    captured = time.perf_counter() - start
    # A commit record after every 20 captured messages (the post-commit hook's record), so the
    # flush links usage to commits as it would for a working developer.
    # Line by line: this process's peak RSS is counted into the flush's below (see scale.run_fresh).
    messages, sha_at = 0, 0
    with open(spool, encoding="utf-8") as src, open(spool.with_name("spool.new"), "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line)
            rec = json.loads(line)
            if rec.get("kind") != "message":
                continue
            messages += 1
            if messages % COMMIT_EVERY == 0 and sha_at < len(shas):
                parent = shas[sha_at - 1] if sha_at else None
                commit = json.loads(history.commit_line(0, shas[sha_at], parent, worktree))
                commit["time"] = rec["time"] + 1
                dst.write(json.dumps(commit, separators=(",", ":")) + "\n")
                sha_at += 1
    os.replace(spool.with_name("spool.new"), spool)
    flush = run([sys.executable, "-m", "periscope_hooks", "flush"], repo)
    setup = {"messages": messages, "commits": sha_at, "transcripts_s": written, "capture_s": captured, "flush": flush}
    (base / "setup.json").write_text(json.dumps({"env": env, **setup}), encoding="utf-8")
    return setup


def run(argv: list[str], cwd: Path, out: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one process (stdout to `out` or nowhere),
    started by a small launcher so that this process's RSS is not counted into it (the first
    flush of 1M messages once read 1.4 GB: this driver's copy of the spool, not the flush)."""
    return run_fresh(argv, cwd, None, out)


def ccusage_bin(version: str) -> str:
    return subprocess.run(
        ["sh", str(ROOT / "scripts" / "install-ccusage-for-bench.sh"), version],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def day_tokens_ccusage(path: Path) -> dict[str, tuple[int, int, int, int]]:
    data = json.loads(path.read_text())
    days = data["daily"] if isinstance(data, dict) else data
    return {
        d.get("date", d.get("period")): (
            d["inputTokens"],
            d["outputTokens"],
            d["cacheReadTokens"],
            d["cacheCreationTokens"],
        )
        for d in days
    }


def day_tokens_periscope(path: Path) -> dict[str, tuple[int, int, int, int]]:
    return {
        d["day"]: (
            d["tokens"]["input"],
            d["tokens"]["output"] + d["tokens"]["reasoning"],
            d["tokens"]["cache_read"],
            d["tokens"]["cache_write"],
        )
        for d in json.loads(path.read_text())
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--js-runs", type=int, default=1, help="runs of the JavaScript ccusage (minutes and GBs each at 1M)"
    )
    ap.add_argument("--keep", type=Path, default=None, help="build the history here once and reuse it")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed periscope runs from bytecode
    bins = {v: ccusage_bin(v) for v in CCUSAGE_VERSIONS}
    with tempfile.TemporaryDirectory(prefix="periscope-ccusage-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        if (base / "setup.json").exists():
            setup = json.loads((base / "setup.json").read_text())
            os.environ.update(setup.pop("env"))
            os.environ["CLAUDE_CONFIG_DIR"] = str(base / "claude")
            os.environ["TZ"] = "UTC"
            print(f"reusing the history in {base}")
        else:
            setup = build(base, args.messages)
        flush = setup["flush"]
        print(
            f"setup: {setup['messages']:,} messages, {setup['commits']:,} commits; transcripts written in"
            f" {setup['transcripts_s']:.1f} s, captured in {setup['capture_s']:.1f} s, first flush"
            f" {flush['wall']:.1f} s wall / {flush['cpu']:.1f} s CPU / {flush['rss_mb']:.0f} MB"
        )
        repo = base / "r"
        commands = {
            "periscope report --by day --format json": [
                sys.executable,
                "-m",
                "periscope_hooks",
                "report",
                "--by",
                "day",
                "--format",
                "json",
            ],
            **{f"ccusage {v} daily --json --offline": [b, "daily", "--json", "--offline"] for v, b in bins.items()},
        }
        outputs = {name: base / f"out-{i}.json" for i, name in enumerate(commands)}
        loads_before = os.getloadavg()
        results: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        for i in range(args.runs):
            for name, argv in commands.items():
                if i < args.js_runs or CCUSAGE_VERSIONS[1] not in name:
                    results[name].append(run(argv, repo, outputs[name]))
        loads_after = os.getloadavg()

        ours = day_tokens_periscope(outputs["periscope report --by day --format json"])
        for name in commands:
            if name.startswith("ccusage"):
                theirs = day_tokens_ccusage(outputs[name])
                same = "identical" if theirs == ours else f"DIFFERENT ({len(theirs)} vs {len(ours)} days)"
                print(f"{name}: per-day tokens {same} to periscope's")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {loads_before[0]:.1f} -> {loads_after[0]:.1f};"
            f" {setup['messages']:,} messages, {len(ours)} days; medians of {args.runs} runs (ccusage"
            f" {CCUSAGE_VERSIONS[1]}: {args.js_runs}), alternating"
        )
        base_wall = statistics.median(r["wall"] for r in results["periscope report --by day --format json"])
        print("| command | wall s | CPU s | peak RSS MB | wall vs periscope |")
        print("|---|---|---|---|---|")
        for name, runs in results.items():
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            rss = statistics.median(r["rss_mb"] for r in runs)
            print(f"| `{name}` | {wall:.3f} | {cpu:.3f} | {rss:.0f} | {wall / base_wall:.1f}x |")


if __name__ == "__main__":
    main()
