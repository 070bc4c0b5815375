"""The first flush that recovers N Claude Code messages (issue 11), old code against new, side by side.

Claude Code's hooks never ran (`--bare`, or installed after the sessions): its transcripts hold N
assistant messages (bench/ccusage_compare.py's transcript lines: sessions of --session-size
messages, a user prompt every 10, 3 models, 12 s apart; with --blocks, every third message
written as three lines, a text block and two tool calls, each followed by its tool result, and
every 25th message a sub-agent's, in the session's `subagents/` transcripts: the shapes that
merge and split records), and the spool holds only the commits
Claude Code made, one every 20 messages, each naming its session (the post-commit hook's record
with its `agent` block).  The first `periscope flush` ingests the commits, finds the sessions no
hook captured, reads their transcripts into the spool (agents/recovery.py), and ingests what it
appended.

For each code tree (--old PATH: a checkout of the old revision; and this one), alternating,
--runs times, from the same starting point (the spool cut back to its commits; state.db, the
capture state and the local store removed): one `periscope flush`, a fresh process started by a
small launcher (a child's peak RSS counts its parent's at the exec: the launcher keeps this
driver's out of it), wall, CPU and peak RSS through wait4.  The spool bytes each recovery
appended are compared between the code trees (they must be identical).

    .venv/bin/python bench/recovery_scale.py --old /tmp/oldcode [--messages 1000000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ccusage_compare  # noqa: E402
import history  # noqa: E402
from scale import run_fresh  # noqa: E402

COMMIT_EVERY = 20
SUBAGENT_EVERY = 25


def _blocks(s: int, first: int, count: int, cwd: str) -> tuple[str, dict[str, str]]:
    """ccusage_compare's lines reshaped (see --blocks): (the session's lines, sub-agent id -> its lines)."""
    main: list[str] = []
    subs: dict[str, list[str]] = {}
    for raw in ccusage_compare.transcript_lines(s, first, count, cwd).splitlines():
        line = json.loads(raw)
        if line["type"] != "assistant":
            main.append(raw)
            continue
        i = int(line["message"]["id"][len("msg_") :])
        out = main
        if i % SUBAGENT_EVERY == SUBAGENT_EVERY - 1:
            agent = f"a{s:04x}{i % 7}"
            line.update(isSidechain=True, agentId=agent)
            out = subs.setdefault(agent, [])
        if i % 3 != 1:
            out.append(json.dumps(line, separators=(",", ":")))
            continue
        for b, block in enumerate(
            (
                {"type": "text", "text": "Running the tests."},
                {"type": "tool_use", "id": f"toolu_{i:012d}a", "name": "Bash", "input": {"command": "make test"}},
                {"type": "tool_use", "id": f"toolu_{i:012d}b", "name": "Read", "input": {"file_path": "x.py"}},
            )
        ):
            line["message"]["content"] = [block]
            line["uuid"] = f"a{i:011d}-000{b}-4000-8000-000000000000"
            out.append(json.dumps(line, separators=(",", ":")))
        for b in "ab":
            result = {"type": "tool_result", "tool_use_id": f"toolu_{i:012d}{b}", "content": "ok"}
            out.append(
                json.dumps(
                    {
                        "type": "user",
                        "cwd": cwd,
                        "sessionId": line["sessionId"],
                        "message": {"role": "user", "content": [result]},
                    },
                    separators=(",", ":"),
                )
            )
    return "".join(x + "\n" for x in main), {a: "".join(x + "\n" for x in lines) for a, lines in subs.items()}


def _agent_commit(i: int, sha: str, parent: str | None, worktree: str, session: str) -> str:
    rec = json.loads(history.commit_line(i, sha, parent, worktree))
    rec["time"] = ccusage_compare.T0_MS + i * ccusage_compare.STEP_MS + 1
    rec["agent"] = {"coding_agent": "claude-code", "session_id": session, "message_id": None}
    return json.dumps(rec, separators=(",", ":"))


def build(base: Path, n: int, session_size: int, blocks: bool) -> dict[str, object]:
    env, repo, shas, worktree, project, spool = ccusage_compare.claude_repo(base, n // COMMIT_EVERY)
    spool.parent.mkdir(parents=True, exist_ok=True)
    sha_at = 0
    with open(spool, "w", encoding="utf-8") as out:
        for s in range(0, (n + session_size - 1) // session_size):
            first, count = s * session_size, min(session_size, n - s * session_size)
            transcript = project / f"{ccusage_compare.session_id(s)}.jsonl"
            if blocks:
                text, subs = _blocks(s, first, count, worktree)
                for agent, sub in subs.items():
                    path = transcript.with_suffix("") / "subagents" / f"agent-{agent}.jsonl"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(sub, encoding="utf-8")
                    path.with_name(f"agent-{agent}.meta.json").write_text('{"agentType":"Explore"}', encoding="utf-8")
            else:
                text = ccusage_compare.transcript_lines(s, first, count, worktree)
            transcript.write_text(text, encoding="utf-8")
            for i in range(first, first + count):
                if i % COMMIT_EVERY == COMMIT_EVERY - 1 and sha_at < len(shas):
                    parent = shas[sha_at - 1] if sha_at else None
                    out.write(_agent_commit(i, shas[sha_at], parent, worktree, ccusage_compare.session_id(s)) + "\n")
                    sha_at += 1
    setup = {
        "messages": n,
        "session_size": session_size,
        "blocks": blocks,
        "commits": sha_at,
        "spool_bytes": spool.stat().st_size,
    }
    (base / "setup.json").write_text(json.dumps({"env": env, **setup}), encoding="utf-8")
    return setup


def reset(base: Path, spool_bytes: int) -> None:
    """Back to the state before the first flush: the commits alone in the spool, nothing else."""
    sd = base / "r" / ".git" / "periscope"
    with open(sd / "spool.jsonl", "r+b") as f:
        f.truncate(spool_bytes)
    for name in os.listdir(sd):
        if name.startswith("state.db") or name in ("hook.log", "flush.lock"):
            os.remove(sd / name)
    shutil.rmtree(Path(os.environ["XDG_STATE_HOME"]) / "periscope", ignore_errors=True)
    shutil.rmtree(Path(os.environ["XDG_DATA_HOME"]) / "periscope", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--session-size", type=int, default=ccusage_compare.SESSION_SIZE)
    ap.add_argument("--blocks", action="store_true", help="messages of several lines, and sub-agents")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the old code (its top folder)")
    ap.add_argument("--keep", type=Path, default=None, help="build the history here once and reuse it")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed periscope runs from bytecode
    codes = {"old": args.old.resolve(), "new": HERE.parent}
    with tempfile.TemporaryDirectory(prefix="periscope-recovery-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        if (base / "setup.json").exists():
            setup = json.loads((base / "setup.json").read_text())
            os.environ.update(setup.pop("env"))
        else:
            start = time.perf_counter()
            setup = build(base, args.messages, args.session_size, args.blocks)
            print(f"built in {time.perf_counter() - start:.0f} s")
        os.environ["CLAUDE_CONFIG_DIR"] = str(base / "claude")
        os.environ["TZ"] = "UTC"
        spool = base / "r" / ".git" / "periscope" / "spool.jsonl"
        results: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
        appended: dict[str, str] = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for name, code in codes.items():
                reset(base, int(setup["spool_bytes"]))
                r = run_fresh(
                    [sys.executable, "-m", "periscope_hooks", "flush"],
                    base / "r",
                    {**os.environ, "PYTHONPATH": str(code)},
                )
                results[name].append(r)
                digest, size = hashlib.sha256(), 0
                with open(spool, "rb") as f:
                    f.seek(int(setup["spool_bytes"]))
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                        size += len(chunk)
                for state in sorted((Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "claude-code").glob("*.json")):
                    digest.update(state.read_bytes())  # the capture state too (offsets, recent ids)
                appended[name] = f"{size} bytes, sha256 {digest.hexdigest()[:16]}"
            if appended["old"] != appended["new"]:
                raise SystemExit(f"the recovered records differ: {appended}")
        load_after = os.getloadavg()[0]
        reset(base, int(setup["spool_bytes"]))
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load_before:.1f} -> {load_after:.1f};"
            f" {setup['messages']:,} messages in sessions of {setup['session_size']}"
            f"{' (several lines a message, sub-agents)' if setup.get('blocks') else ''}, {setup['commits']:,} agent commits;"
            f" medians of {args.runs} runs, old and new alternating; recovered spool records and capture state"
            f" identical ({appended['new']})"
        )
        print("| first `periscope flush` | wall s | CPU s | peak RSS MB |")
        print("|---|---|---|---|")
        for name, runs in results.items():
            med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mb")}
            print(f"| {name} | {med['wall']:.1f} | {med['cpu']:.1f} | {med['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
