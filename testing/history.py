"""A realistic history, shared by the scale benchmarks (bench/history.py) and the tests: a real git
repository whose spool holds N message records with a commit record every K messages (K = 20 by
default; heavy users commit every 10-50).

The commits are real (written by `git fast-import`, about 1 s for 50,000), so ingest reads their
parents from git exactly as it does for a user's repository.  Messages rotate over 7 sessions,
3 models and 2 branches; times advance 1.5 s per message (so `--by day` has many days).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

T0 = 1764000000000
MESSAGE_STEP_MS = 1500


def make_commits(repo: Path, count: int) -> list[str]:
    """`count` real empty commits on main, oldest first."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    if not count:
        return []
    chunks = []
    for i in range(count):
        msg = f"c{i}\n".encode()
        chunks.append(
            b"commit refs/heads/main\n"
            + f"mark :{i + 1}\ncommitter b <b@example.com> {1764000000 + i} +0000\n".encode()
            + f"data {len(msg)}\n".encode()
            + msg
            + (f"from :{i}\n".encode() if i else b"")
            + b"\n"
        )
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(chunks), check=True)
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True, text=True, check=True
    ).stdout.split()
    return out


def message_line(i: int, worktree: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "kind": "message",
            "id": f"msg_{i:08d}",
            "session_id": f"ses_{i // 500 % 7}",
            "time": T0 + i * MESSAGE_STEP_MS,
            "provider": "anthropic",
            "model": f"claude-model-{i % 3}",
            "agent": "build",
            "tokens": {"input": 1200 + i % 97, "output": 310, "reasoning": 0, "cache_read": 800, "cache_write": i % 5},
            "cost": round(0.0123 + (i % 11) * 0.000137, 6),
            "cwd": worktree,
            "git": {"branch": "main" if i % 1000 < 700 else "topic", "sha": None},
        },
        separators=(",", ":"),
    )


def commit_line(i: int, sha: str, parent: str | None, worktree: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "kind": "commit",
            "hook": "post-commit",
            "time": T0 + i * MESSAGE_STEP_MS + 1,
            "worktree": worktree,
            "sha": sha,
            "branch": "main",
            "reflog": {"old": parent, "new": sha, "subject": "commit"},
            "reflog_prev": None,
            "rebasing": False,
        },
        separators=(",", ":"),
    )


def write_history(spool: Path, n: int, commit_every: int, worktree: str, shas: list[str], start: int = 0) -> int:
    """Append messages start..start+n-1 with a commit record after every `commit_every` (taking
    SHAs from `shas` in order); returns how many records were written."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    records = 0
    sha_at = start // commit_every
    with open(spool, "a", encoding="utf-8") as f:
        buf = []
        for i in range(start, start + n):
            buf.append(message_line(i, worktree))
            if i % commit_every == commit_every - 1:
                parent = shas[sha_at - 1] if sha_at else None
                buf.append(commit_line(i, shas[sha_at], parent, worktree))
                sha_at += 1
            if len(buf) >= 10000:
                records += len(buf)
                f.write("\n".join(buf) + "\n")
                buf = []
        records += len(buf)
        if buf:
            f.write("\n".join(buf) + "\n")
    return records
