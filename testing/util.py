"""Helpers the tests share: real git repositories, the real CLI in a subprocess, spool records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def git(
    cwd: os.PathLike[str] | str, *args: str, input: str | None = None, check: bool = True, env: dict | None = None
) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip()


def init_repo(path: Path, *, remote: str | None = "https://user:secret-token@example.com/acme/widgets.git") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    if remote:
        git(path, "remote", "add", "origin", remote)
    return path


def commit(repo: Path, message: str = "change", *args: str, filename: str = "file.txt", env: dict | None = None) -> str:
    f = repo / filename
    with open(f, "a", encoding="utf-8") as fh:
        fh.write(f"{message}\n")
    git(repo, "add", filename)
    git(repo, "commit", "-q", "-m", message, *args, env=env)
    return git(repo, "rev-parse", "HEAD")


def periscope(
    *args: str,
    cwd: os.PathLike[str] | str | None = None,
    input: str | None = None,
    env: dict | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "periscope_hooks", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"periscope {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def common_dir(repo: Path) -> Path:
    out = git(repo, "rev-parse", "--git-common-dir")
    p = Path(out)
    return p if p.is_absolute() else (repo / p).resolve()


def state_dir(repo: Path) -> Path:
    return common_dir(repo) / "periscope"


def spool_path(repo: Path) -> Path:
    return state_dir(repo) / "spool.jsonl"


def append_spool(repo: Path | None, *records: dict[str, Any], path: Path | None = None) -> None:
    target = path or spool_path(repo)  # type: ignore[arg-type]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab") as f:
        for r in records:
            f.write((json.dumps(r) + "\n").encode())


_counter = [0]


def message_record(
    repo: Path | None,
    *,
    id: str | None = None,
    session_id: str = "ses_01",
    model: str = "claude-sonnet-4",
    provider: str = "anthropic",
    agent: str = "build",
    tokens: Sequence[int] = (1200, 310, 0, 800, 0),
    cost: float = 0.0123,
    cwd: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    _counter[0] += 1
    inp, out, reasoning, cread, cwrite = tokens
    rec = {
        "v": 1,
        "kind": "message",
        "id": id or f"msg_{_counter[0]:06d}",
        "session_id": session_id,
        "time": int(time.time() * 1000),
        "provider": provider,
        "model": model,
        "agent": agent,
        "tokens": {"input": inp, "output": out, "reasoning": reasoning, "cache_read": cread, "cache_write": cwrite},
        "cost": cost,
        "cwd": cwd if cwd is not None else (str(repo) if repo else ""),
        "git": {"branch": "main", "sha": None},
    }
    rec.update(extra)
    return rec


def session_record(
    session_id: str = "ses_01", title: str = "Fix login", parent_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    rec = {
        "v": 1,
        "kind": "session",
        "session_id": session_id,
        "title": title,
        "parent_id": parent_id,
        "time": int(time.time() * 1000),
    }
    rec.update(extra)
    return rec


def report_json(repo: Path, by: str = "commit") -> list[dict[str, Any]]:
    return json.loads(periscope("report", "--by", by, "--format", "json", cwd=repo).stdout)


def export_events(event_type: str | None = None) -> list[dict[str, Any]]:
    args = ["export"] + (["--type", event_type] if event_type else [])
    out = periscope(*args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]
