"""The read side at scale (issue 11): every `report --by`, export and the dashboard over one stored
history of N messages (default 1M, a commit every 20), side by side in one run.

The history is bench/history.py's (a real repository from `git fast-import`, N messages over 7
sessions, 3 models, 2 branches, 1.5 s apart), ingested once by `periscope flush`; --keep DIR
builds it there once and reuses it (the first ingest of 1M takes minutes).  Then, each a fresh
`periscope` process (wall, CPU and peak RSS through wait4), alternating, --runs times:

- `report --by X --format json` and `report --by X` (the table) for every X the CLI has, and
  windows (`--since` a day, and `--since`/`--until` cutting quarter hours);
- `export > /dev/null` (events/s over the stored events);
- `dashboard --format json` (the aggregate the page is drawn from);
- last, "after a commit": 20 new messages and their commit appended to the spool, then `report
  --by commit` (it ingests them, rolls them up and reconciles the moved refs first: what a user
  who just committed sees).  This changes the kept history (at most the spare commits it has).

    .venv/bin/python bench/report_scale.py [--messages 1000000] [--runs 3] [--keep DIR]
        [--code old=/tmp/oldcode --code new=.]

`--code NAME=PATH` (repeatable) runs each command with PYTHONPATH=PATH, every version on its own
copy of the history (bench/history.py's version_copies), alternating, and says whether each
command's output (the first run's) is byte for byte the same in every version.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402
from scale import periscope, run  # noqa: E402

COMMIT_EVERY = 20
SPARE_COMMITS = 10
BYS = ("commit", "model", "branch", "session", "day", "agent")


def build(base: Path, n: int) -> dict[str, object]:
    repo = base / "r"
    shas = history.make_commits(repo, n // COMMIT_EVERY + SPARE_COMMITS)
    worktree = str(repo.resolve())
    records = history.write_history(repo / ".git" / "periscope" / "spool.jsonl", n, COMMIT_EVERY, worktree, shas)
    first = run(periscope("flush"), repo)
    setup = {
        "messages": n,
        "commit_every": COMMIT_EVERY,
        "commits": n // COMMIT_EVERY,
        "records": records,
        "extra_shas": SPARE_COMMITS,
        "extra_used": 0,
        "first_flush": first,
    }
    (base / "setup.json").write_text(json.dumps(setup), encoding="utf-8")
    return setup


def commands(first_ms: int) -> dict[str, list[str]]:
    day = time.strftime("%Y-%m-%d", time.localtime(first_ms / 1000 + 3 * 86400))
    cut_since = time.strftime("%Y-%m-%dT%H:%M", time.localtime(first_ms / 1000 + 86400 + 7 * 60))
    cut_until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(first_ms / 1000 + 5 * 86400 + 53 * 60))
    out: dict[str, list[str]] = {}
    for by in BYS:
        out[f"report --by {by} --format json"] = periscope("report", "--by", by, "--format", "json")
        out[f"report --by {by} (table)"] = periscope("report", "--by", by)
    out[f"report --by day --since {day}"] = periscope("report", "--by", "day", "--since", day, "--format", "json")
    out["report --by model, window cutting quarter hours"] = periscope(
        "report", "--by", "model", "--since", cut_since, "--until", cut_until, "--format", "json"
    )
    out["export > /dev/null"] = periscope("export")
    out["dashboard --format json"] = periscope("dashboard", "--format", "json")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="build the history here once and reuse it")
    ap.add_argument("--code", action="append", default=[], help="NAME=PATH of a source tree (repeatable)")
    args = ap.parse_args()
    # An installed periscope runs from compiled bytecode; a PYTHONDONTWRITEBYTECODE environment
    # would recompile every module in every measured process (~0.1 s of CPU each).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    codes: dict[str, Path | None] = {c.split("=", 1)[0]: Path(c.split("=", 1)[1]).resolve() for c in args.code}
    codes = codes or {"this": None}
    with tempfile.TemporaryDirectory(prefix="periscope-report-scale-") as tmp:
        base = (args.keep or Path(tmp)).resolve()
        base.mkdir(parents=True, exist_ok=True)
        pristine = base / "pristine"
        if (pristine / "setup.json").exists():
            print(f"reusing the history in {pristine}")
        else:
            live = base / "live"
            live.mkdir()
            history.code_env(live, next(iter(codes.values())))
            build(live, args.messages)
            live.rename(pristine)
        history.version_copies(base, pristine, list(codes))
        setup = json.loads((pristine / "setup.json").read_text())
        n = int(setup["messages"])
        cmds = commands(history.T0)
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        outputs = base / "outputs"
        outputs.mkdir(exist_ok=True)
        load_before = os.getloadavg()[0]
        for i in range(args.runs):
            for name, argv in cmds.items():
                for version, code in codes.items():
                    with history.AtLivePath(base, version) as live:
                        history.code_env(live, code)
                        # the first run's report is kept: the versions' outputs are compared below
                        out = outputs / f"{version}.{name.replace(' ', '_').replace('/', '_')}"
                        with open(out if i == 0 and name.startswith("report") else os.devnull, "wb") as f:
                            results.setdefault((name, version), []).append(run(argv, live / "r", stdout=f.fileno()))
        for version, code in codes.items():
            with history.AtLivePath(base, version) as live:
                history.code_env(live, code)
                repo = live / "r"
                shas = subprocess.run(
                    ["git", "-C", str(repo), "rev-list", "--reverse", "main"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                spool = repo / ".git" / "periscope" / "spool.jsonl"
                mine = json.loads((live / "setup.json").read_text())
                for _ in range(min(args.runs, int(mine["extra_shas"]) - int(mine["extra_used"]))):
                    used = int(mine["commits"]) + int(mine["extra_used"])
                    history.write_history(
                        spool, COMMIT_EVERY, COMMIT_EVERY, str(repo.resolve()), shas, start=used * COMMIT_EVERY
                    )
                    mine["extra_used"] = int(mine["extra_used"]) + 1
                    (live / "setup.json").write_text(json.dumps(mine), encoding="utf-8")
                    results.setdefault(("report --by commit, after a commit", version), []).append(
                        run(periscope("report", "--by", "commit", "--format", "json"), repo)
                    )
        load_after = os.getloadavg()[0]

        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load_before:.1f} -> {load_after:.1f};"
            f" {n:,} messages, {setup['commits']:,} commits (one every {COMMIT_EVERY}); medians of {args.runs}"
            " runs, alternating"
        )
        print("| command | version | wall s | CPU s | peak RSS MB | |")
        print("|---|---|---|---|---|---|")
        for (name, version), runs in results.items():
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            rss = statistics.median(r["rss_mb"] for r in runs)
            extra = ""
            if name.startswith("export"):
                events = int(setup["records"])
                extra = f"{events / wall:,.0f} events/s (CPU: {events / cpu:,.0f}/s)"
            print(f"| `{name}` | {version} | {wall:.3f} | {cpu:.3f} | {rss:.0f} | {extra} |")
        if len(codes) > 1:
            first, *others = codes
            for name in (c for c in cmds if c.startswith("report")):
                slug = name.replace(" ", "_").replace("/", "_")
                texts = {v: (outputs / f"{v}.{slug}").read_bytes() for v in codes}
                same = all(texts[v] == texts[first] for v in others)
                print(f"output of `{name}`: {'identical' if same else 'DIFFERENT'} across {', '.join(codes)}")


if __name__ == "__main__":
    main()
