"""The first commands in a moved repository (issue 11), old code against new, side by side in one run.

The history is bench/report_scale.py's (N messages, a commit every 20, ingested by `periscope
flush`), plus 15 messages not linked yet (pending when the repository moves).  --keep DIR builds it
there once and reuses it.  Then, for each code tree (--old PATH: a checkout of the old revision,
`git worktree add --detach`; and this one), alternating, --runs times, on a fresh copy of the
repository and of the local store:

- *same file system*: the repository renamed (`mv`: every file keeps its inode);
- *other file system*: the repository copied file by file and the original removed (what `mv`
  does across file systems, and what a copy, a restore or a new machine look like: the spool is
  a new file with the same bytes);

and in the moved repository `periscope report --format json`, then `status`, then `flush`, each a
fresh process (wall, CPU and peak RSS through wait4).  The report's output is compared between
the code trees (it must be identical).

    .venv/bin/python bench/moved_repo.py --old /tmp/oldcode [--messages 1000000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402
import report_scale  # noqa: E402
from scale import run_fresh  # noqa: E402

PENDING = 15
COMMANDS = (("report", "--format", "json"), ("status",), ("flush",))


def build(base: Path, n: int) -> None:
    """report_scale's history (kept when DIR holds one), then the pending messages, flushed by this
    code (which stores what it keeps about the spool)."""
    setup_path = base / "setup.json"
    setup = json.loads(setup_path.read_text()) if setup_path.exists() else report_scale.build(base, n)
    repo = base / "r"
    spool = repo / ".git" / "periscope" / "spool.jsonl"
    start = (int(setup["commits"]) + int(setup["extra_shas"])) * report_scale.COMMIT_EVERY  # ids never used
    history.write_history(spool, PENDING, report_scale.COMMIT_EVERY, str(repo.resolve()), [], start=start)
    run_one(["flush"], repo, HERE.parent)
    setup["pending"] = PENDING
    (base / "setup.json").write_text(json.dumps(setup), encoding="utf-8")


def run_one(args: list[str], cwd: Path, code: Path, out: Path | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `periscope` process run from `code`."""
    return run_fresh(
        [sys.executable, "-m", "periscope_hooks", *args], cwd, {**os.environ, "PYTHONPATH": str(code)}, out
    )


def _data_home() -> Path:
    """The local store's folder's parent (XDG_DATA_HOME, set by history.isolated_env)."""
    return Path(os.environ["XDG_DATA_HOME"])


def _kept(path: Path) -> Path:
    return path.with_name(path.name + ".kept")


def _copy(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)  # new inodes, like another file system


def move(base: Path, how: str) -> Path:
    """Move the kept repository as `how` says; returns the moved repository (the original is kept
    aside, at base/kept, for restore())."""
    repo, kept, moved = base / "r", base / "kept", base / "moved"
    os.rename(repo, kept)
    data = _data_home()
    os.rename(data, _kept(data))
    _copy(_kept(data), data)
    if how == "other file system":
        _copy(kept, moved)
        return moved
    # same file system: a copy first (the kept history stays as it is) that takes the original's
    # place, its spool's inode written into its state.db as if it had always been there; then `mv`.
    _copy(kept, repo)
    spool = repo / ".git" / "periscope" / "spool.jsonl"
    conn = sqlite3.connect(repo / ".git" / "periscope" / "state.db")
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'spool_ino'", (str(spool.stat().st_ino),))
    conn.close()
    os.rename(repo, moved)
    return moved


def restore(base: Path) -> None:
    shutil.rmtree(base / "moved", ignore_errors=True)
    shutil.rmtree(base / "r", ignore_errors=True)
    data = _data_home()
    shutil.rmtree(data)
    os.rename(base / "kept", base / "r")
    os.rename(_kept(data), data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the old code (its top folder)")
    ap.add_argument("--keep", type=Path, default=None, help="build the history here once and reuse it")
    ap.add_argument("--moves", default="same file system,other file system")
    args = ap.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed periscope runs from bytecode
    codes = {"old": args.old.resolve(), "new": HERE.parent}
    moves = args.moves.split(",")
    with tempfile.TemporaryDirectory(prefix="periscope-moved-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        history.isolated_env(str(base))
        if (base / "kept").exists():  # an interrupted run
            restore(base)
        if not (base / "setup.json").exists() or "pending" not in json.loads((base / "setup.json").read_text()):
            build(base, args.messages)
        setup = json.loads((base / "setup.json").read_text())
        results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        reports: dict[str, bytes] = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.runs):
            for how in moves:
                for name, code in codes.items():
                    moved = move(base, how)
                    log = moved / ".git" / "periscope" / "hook.log"
                    logged = log.stat().st_size if log.exists() else 0
                    try:
                        for cmd in COMMANDS:
                            out = base / f"out-{name}.json" if cmd[0] == "report" else None
                            r = run_one(list(cmd), moved, code, out)
                            results.setdefault((how, " ".join(cmd), name), []).append(r)
                            if out:
                                reports[name] = out.read_bytes()
                        new_lines = log.read_bytes()[logged:] if log.exists() else b""
                        results.setdefault((how, "re-read", name), []).append(
                            {"re-read": float(b"re-reading" in new_lines)}
                        )
                    finally:
                        restore(base)
                if reports["old"] != reports["new"]:
                    raise SystemExit(f"the reports differ after a move ({how})")
        load_after = os.getloadavg()[0]
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load_before:.1f} -> {load_after:.1f};"
            f" {setup['messages']:,} messages, {setup['commits']:,} commits, {setup['pending']} pending at the move;"
            f" medians of {args.runs} runs, old and new alternating; reports identical"
        )
        print(
            "| moved to | command | old CPU s | new CPU s | old / new | old wall s | new wall s | old RSS MB | new RSS MB |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for how in moves:
            for cmd in COMMANDS:
                c = " ".join(cmd)
                old = {k: statistics.median(r[k] for r in results[(how, c, "old")]) for k in ("wall", "cpu", "rss_mb")}
                new = {k: statistics.median(r[k] for r in results[(how, c, "new")]) for k in ("wall", "cpu", "rss_mb")}
                print(
                    f"| {how} | `{c}` | {old['cpu']:.2f} | {new['cpu']:.2f} | {old['cpu'] / new['cpu']:.1f}x |"
                    f" {old['wall']:.2f} | {new['wall']:.2f} | {old['rss_mb']:.0f} | {new['rss_mb']:.0f} |"
                )
            for name in codes:
                rr = results[(how, "re-read", name)]
                print(
                    f"({how}, {name}: spool re-read from its start in {sum(r['re-read'] for r in rr):.0f} of {len(rr)} runs)"
                )


if __name__ == "__main__":
    main()
