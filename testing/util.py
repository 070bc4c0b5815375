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
GITCONFIG = '[init]\n\tdefaultBranch = main\n[protocol "file"]\n\tallow = always\n'


def xdg_env(home: Path) -> dict[str, str]:
    """HOME and the XDG folders inside `home`: nothing a test runs touches the real home."""
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }


def home_env(home: Path) -> dict[str, str]:
    """xdg_env plus a pinned git author and a git configuration of its own (written to `home`)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(GITCONFIG)
    return {
        **xdg_env(home),
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author",
        "GIT_COMMITTER_EMAIL": "author@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
    }


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


# Commands a test may run inside the test process: what they do does not depend on being a
# fresh interpreter, and a subprocess costs an interpreter start and the package's imports (about
# 0.2 s each, some 180 times in the suite).  The hook (what git runs: its own process, its import
# graph), login (a browser round trip), dashboard (a server), --help/--version and bad usage (argparse
# exits) always run as real subprocesses; so does any call a test makes with in_process=False.
IN_PROCESS_COMMANDS = frozenset(
    (
        "install-hooks",
        "uninstall-hooks",
        "install-opencode",
        "uninstall-opencode",
        "status",
        "report",
        "export",
        "log",
        "whoami",
        "logout",
        "flush",
    )
)


def _periscope_in_process(
    args: Sequence[str], cwd: str | None, input: str | None, env: dict | None
) -> tuple[int, str, str]:
    """main() with this process's stdin/stdout/stderr, working directory and environment swapped
    for the call's own, and all of them put back afterwards."""
    import contextlib
    import io

    from periscope_hooks.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_stdin = dict(os.environ), os.getcwd(), sys.stdin
    try:
        os.environ.update(env or {})
        time.tzset()  # a TZ in `env` must reach localtime() as it would in a new process
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.StringIO(input or "")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        time.tzset()
    return rc, out.getvalue(), err.getvalue()


def periscope(
    *args: str,
    cwd: os.PathLike[str] | str | None = None,
    input: str | None = None,
    env: dict | None = None,
    check: bool = True,
    in_process: bool | None = None,
) -> subprocess.CompletedProcess:
    """Run the CLI: in this process for IN_PROCESS_COMMANDS (unless in_process=False), else as
    `python -m periscope_hooks`."""
    argv = [sys.executable, "-m", "periscope_hooks", *args]
    if in_process is None:
        in_process = bool(args) and args[0] in IN_PROCESS_COMMANDS and "--background" not in args
    if in_process:
        rc, stdout, stderr = _periscope_in_process(args, None if cwd is None else os.fspath(cwd), input, env)
        proc = subprocess.CompletedProcess(argv, rc, stdout, stderr)
    else:
        proc = subprocess.run(
            argv, cwd=cwd, input=input, capture_output=True, text=True, env={**os.environ, **(env or {})}
        )
    if check and proc.returncode != 0:
        raise AssertionError(f"periscope {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def user_hook(repo: Path, name: str, body: str) -> Path:
    """A user's own hook `name` in the repository's .git/hooks (`#!/bin/sh` and `body`),
    executable; the hooks folder."""
    hooks = repo / ".git" / "hooks"
    (hooks / name).write_text(f"#!/bin/sh\n{body}\n")
    (hooks / name).chmod(0o755)
    return hooks


def hook_records(spool_text: str) -> list[dict[str, Any]]:
    """The records git's hooks wrote in these spool lines (kind `commit`): a background flusher
    may append its own meanwhile (`reconcile-seen` when reconciliation remembers a commit)."""
    records = [json.loads(line) for line in spool_text.splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == "commit"]


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


def cost_at(rates: dict[str, float], tokens: dict[str, int]) -> float:
    """Dollars for `tokens` at `rates` (dollars per million tokens, as providers publish them).
    The agents' tokens: input excludes the cached ones, reasoning is billed as output, and the
    cache writes kept for an hour (`cache_write_1h`, part of cache_write) at their own rate."""
    hour = tokens.get("cache_write_1h", 0)
    return (
        tokens["input"] * rates["input"]
        + (tokens["output"] + tokens["reasoning"]) * rates["output"]
        + tokens["cache_read"] * rates["cache_read"]
        + (tokens["cache_write"] - hour) * rates["cache_write"]
        + hour * rates.get("cache_write_1h", rates["cache_write"])
    ) / 1e6


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of this tree (what `pip install .` installs), built from a copy: setuptools'
    build/ folder in the tree would keep files a broken configuration no longer ships."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "node_modules", "__pycache__"),
    )
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    (wheel,) = out.glob("periscope_hooks-*.whl")
    return wheel
