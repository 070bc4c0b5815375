"""What following recovered Claude Code sessions costs a flush when their transcripts did not grow.

A session recovered from its transcript (periscope_hooks/agents/recovery.py) is followed for a
day: every flush captures what its transcript gained.  This builds N sessions of 500 messages,
captures them, marks them followed in state.db, and times `recover_sessions` (CPU seconds, median
of --rounds) in a fresh process per code version, old and new alternating.

    .venv/bin/python bench/followed_sessions.py [--sessions 200] [--rounds 5] [--compare REV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ccusage_compare  # noqa: E402

CHILD = """
import json, sys, time
from pathlib import Path
from periscope_hooks.agents import recovery
from periscope_hooks.state import open_state_db
conn = open_state_db(Path(sys.argv[1]))
times = []
for _ in range(int(sys.argv[2])):
    cpu = time.process_time()
    written = recovery.recover_sessions(conn)
    times.append(time.process_time() - cpu)
    assert not written, written
import periscope_hooks
print(json.dumps({"code": periscope_hooks.__file__, "times": times}))
"""


def build(base: Path, sessions: int) -> Path:
    """N captured sessions marked followed; the state dir whose state.db follows them."""
    from periscope_hooks import statedb
    from periscope_hooks.agents import claude_code
    from periscope_hooks.state import open_state_db

    os.environ["CLAUDE_CONFIG_DIR"] = str(base / "claude")
    found = ccusage_compare.claude_repo(base, 1)
    ids = []
    for s in range(sessions):
        sid = ccusage_compare.session_id(s)
        path = found.project / f"{sid}.jsonl"
        path.write_text(ccusage_compare.transcript_lines(s, s * 500, 500, found.worktree), encoding="utf-8")
        claude_code.capture_session(sid, str(path))
        ids.append(sid)
    state_dir = found.repo / ".git" / "periscope"
    conn = open_state_db(state_dir)
    statedb.set_meta(conn, statedb.Meta.AGENTS_FOLLOWED, json.dumps(ids))
    conn.close()
    return state_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", default=None, help="a git revision whose code runs side by side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-followed-") as tmp:
        state_dir = build(Path(tmp) / "h", args.sessions)
        codes: dict[str, Path] = {"this checkout": HERE.parent}
        if args.compare:
            old = Path(tmp) / "old-code"
            git = ["git", "-C", str(HERE.parent), "worktree"]
            subprocess.run([*git, "add", "-q", "--detach", str(old), args.compare], check=True)
            codes = {args.compare: old, **codes}
        try:
            medians = {}
            for name, code in codes.items():
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(state_dir), str(args.rounds)],
                    env={**os.environ, "PYTHONPATH": str(code)},
                    cwd=str(code),  # not this checkout: '' (the working folder) leads sys.path
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    raise SystemExit(f"{name}: {out.stderr.strip()}")
                result = json.loads(out.stdout)
                assert Path(result["code"]).is_relative_to(code), f"{name} ran {result['code']}"
                medians[name] = statistics.median(result["times"])
        finally:
            if args.compare:
                subprocess.run([*git, "remove", "--force", str(old)], check=True)
    print(f"{args.sessions} followed sessions, nothing new, load {os.getloadavg()[0]:.1f}:")
    for name, cpu in medians.items():
        print(f"  {name:>14}: {cpu:.3f} s CPU a flush ({cpu / args.sessions * 1000:.2f} ms a session)")


if __name__ == "__main__":
    main()
