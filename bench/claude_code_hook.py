"""The Claude Code capture hook, as Claude Code runs it (a fresh interpreter per hook run, JSON on
stdin, the installed `python -c` command), on a realistic transcript, side by side with a bare
interpreter start.

The transcript has the shape Claude Code 2.1.332 writes: per turn a user line, a few attachment
lines (one large), request bookkeeping lines, and an assistant message written as two lines (text,
tool_use) with the same id and usage.  Measured, --runs times each, alternating:

- `python -c pass` (what any hook command costs at least);
- a hook run with nothing new in the transcript (most PreToolUse runs);
- a hook run after one new turn was appended (reads it, appends one message record);
- the first run on a transcript of --turns turns (a session captured late, or recovered).

    .venv/bin/python bench/claude_code_hook.py [--turns 200] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from periscope_hooks.commands.claude_code import hook_command  # noqa: E402
from periscope_hooks.commands.install_uninstall import precompile_hook_modules  # noqa: E402

SESSION = "3f6c1d2e-8a9b-4c7d-9e0f-112233445566"


def turn_lines(n: int, cwd: str) -> str:
    stamp = "2026-12-01T10:00:00.000Z"
    usage = {
        "input_tokens": 1000 + n,
        "output_tokens": 40,
        "cache_read_input_tokens": 30000,
        "cache_creation_input_tokens": 250,
        "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 50},
    }
    base = {"sessionId": SESSION, "cwd": cwd, "timestamp": stamp, "isSidechain": False, "gitBranch": "main"}
    lines = [
        {**base, "type": "user", "message": {"role": "user", "content": "x" * 400}},
        *({**base, "type": "attachment", "attachment": {"content": "y" * size}} for size in (1400, 900, 28000)),
        {"type": "api-request", "sessionId": SESSION, "params": {"model": "m", "blob": "z" * 1000}},
    ]
    for block in ({"type": "text", "text": "t" * 300}, {"type": "tool_use", "id": f"toolu_{n:06d}", "input": {}}):
        message = {"id": f"msg_{n:06d}", "model": "claude-sonnet-4-5", "content": [block], "usage": usage}
        lines.append({**base, "type": "assistant", "message": message})
    return "".join(json.dumps(x) + "\n" for x in lines)


def timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, env=env, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    precompile_hook_modules()
    root = Path(tempfile.mkdtemp(prefix="cc-hook-bench-"))
    try:
        repo = root / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        transcript = root / "projects" / "p" / f"{SESSION}.jsonl"
        transcript.parent.mkdir(parents=True)
        history = "".join(turn_lines(i, str(repo)) for i in range(args.turns))
        env = {**os.environ, "HOME": str(root), "XDG_STATE_HOME": str(root / "state"), "PERISCOPE_BACKGROUND": "0"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        hook = ["/bin/sh", "-c", hook_command()]
        payload = json.dumps(
            {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo), "hook_event_name": "Stop"}
        ).encode()
        results: dict[str, list[float]] = {"bare": [], "nothing new": [], "one new turn": [], "first run": []}
        for run in range(args.runs):
            shutil.rmtree(root / "state", ignore_errors=True)
            transcript.write_text(history)
            results["bare"].append(timed([sys.executable, "-c", "pass"], b"", env))
            results["first run"].append(timed(hook, payload, env))
            results["nothing new"].append(timed(hook, payload, env))
            with open(transcript, "a") as f:
                f.write(turn_lines(args.turns + run, str(repo)))
            results["one new turn"].append(timed(hook, payload, env))
        size = transcript.stat().st_size
        bare = statistics.median(results["bare"])
        print(f"transcript: {args.turns} turns, {size / 1e6:.1f} MB; medians of {args.runs}")
        for name, values in results.items():
            median = statistics.median(values)
            print(f"  {name:13s} {median:7.1f} ms  ({median / bare:.2f}x bare)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
