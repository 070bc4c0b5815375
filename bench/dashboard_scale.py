"""Dashboard at scale: a state of N messages and N/20 commits, aggregated, rendered and drawn.

The state: a real git repository whose C commits are made with `git fast-import` (50,000 commits
through the hook would take an hour), and a spool of N message records (4 models, sessions of 500
messages, every fifth a sub-agent; times spread over 180 days) with a commit record after every 20
messages (a commit every 10-50 messages is the realistic shape), ingested once by the real
`process_spool` (timed, but not part of the dashboard).  Then, --runs times each:

- `report --by X` for every grouping, in-process (`report_rows` after ingest: what the dashboard calls);
- `build_aggregate` (everything `periscope dashboard --format json` computes);
- `render_html` (the page; its size is reported);
- headless chromium (Debian's, through Playwright): navigation start to the page's own
  "all charts drawn" mark (`data-draw-ms`), and the wall time of `goto` + that wait.

    .venv/bin/python bench/dashboard_scale.py [--messages 1000000] [--runs 3] [--keep DIR] [--json]

--keep DIR builds the state in DIR once and reuses it on the next run (ingest of 1M messages takes
minutes).  Medians are reported, with every run.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.history import isolated_env  # noqa: E402

MODELS = (
    ("anthropic", "claude-sonnet-4"),
    ("anthropic", "claude-haiku-4"),
    ("openai", "gpt-5"),
    ("google", "gemini-2.5-pro"),
)
COMMIT_EVERY = 20
SESSION_SIZE = 500
T0_MS = 1764000000000
SPAN_MS = 180 * 86400 * 1000


def make_repo(repo: Path, commits: int) -> list[str]:
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    lines = []
    for i in range(commits):
        msg = f"c{i}\n"
        lines.append(
            f"commit refs/heads/main\nmark :{i + 1}\ncommitter Bench <bench@example.com> {1764000000 + i} +0000\n"
        )
        lines.append(f"data {len(msg)}\n{msg}")
        if i:
            lines.append(f"from :{i}\n")
        lines.append("\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(lines).encode(), check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True)
    out = subprocess.run(["git", "-C", str(repo), "rev-list", "--reverse", "main"], capture_output=True, text=True)
    return out.stdout.split()


def write_spool(path: Path, n: int, worktree: str, shas: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for s in range(n // SESSION_SIZE + 1):
            parent = f"ses_{s - 1:05d}" if s % 5 == 4 else None
            rec = {
                "v": 1,
                "kind": "session",
                "session_id": f"ses_{s:05d}",
                "title": f"Session {s}",
                "parent_id": parent,
            }
            f.write(json.dumps({**rec, "time": T0_MS + s * SESSION_SIZE * (SPAN_MS // n)}) + "\n")
        prev = None
        for i in range(n):
            provider, model = MODELS[(i // 7) % len(MODELS)]
            t = T0_MS + i * (SPAN_MS // n)
            rec = {
                "v": 1,
                "kind": "message",
                "id": f"msg_{i:08d}",
                "session_id": f"ses_{i // SESSION_SIZE:05d}",
                "time": t,
                "provider": provider,
                "model": model,
                "agent": "build",
                "tokens": {
                    "input": 800 + i % 900,
                    "output": 150 + i % 400,
                    "reasoning": i % 3 * 50,
                    "cache_read": 4000 + i % 9000,
                    "cache_write": i % 5 * 200,
                },
                "cost": round(0.001 + (i % 97) * 0.0007, 6),
                "cwd": worktree,
                "git": {"branch": "main", "sha": None},
            }
            f.write(json.dumps(rec) + "\n")
            if i % COMMIT_EVERY == COMMIT_EVERY - 1 and i // COMMIT_EVERY < len(shas):
                sha = shas[i // COMMIT_EVERY]
                commit = {
                    "v": 1,
                    "kind": "commit",
                    "hook": "post-commit",
                    "time": t,
                    "worktree": worktree,
                    "sha": sha,
                    "branch": "main",
                    "reflog": {"old": prev, "new": sha, "subject": "commit"},
                    "reflog_prev": {"old": None, "new": prev, "subject": "commit"},
                    "rebasing": False,
                }
                f.write(json.dumps(commit) + "\n")
                prev = sha


def build_state(base: Path, n: int) -> tuple[Path, dict[str, Any]]:
    from periscope_hooks.ingest import process_spool

    repo = base / "repo"
    state_dir = repo / ".git" / "periscope"
    marker = base / "built.json"
    if marker.exists():
        return repo, json.loads(marker.read_text())
    shutil.rmtree(repo, ignore_errors=True)
    t = time.perf_counter()
    shas = make_repo(repo, n // COMMIT_EVERY)
    made = time.perf_counter() - t
    write_spool(state_dir / "spool.jsonl", n, str(repo.resolve()), shas)
    t = time.perf_counter()
    process_spool(state_dir)
    info = {
        "messages": n,
        "commits": len(shas),
        "fast_import_s": round(made, 1),
        "ingest_s": round(time.perf_counter() - t, 1),
    }
    marker.write_text(json.dumps(info))
    return repo, info


def synthetic_aggregate(commits: int, days: int = 180, sessions: int = 2000) -> dict[str, Any]:
    """An aggregate of the real shape (build_aggregate's keys) with `commits` commit rows, for timing
    the page alone: render_html and the browser do not care where the rows came from."""
    from periscope_hooks import dashboard
    from periscope_hooks.events import TOKEN_FIELDS

    def usage(i: int, n: int = 20) -> dict[str, Any]:
        return {
            "messages": n,
            "tokens": {f: 1000 + (i * 37 + k) % 5000 for k, f in enumerate(TOKEN_FIELDS)},
            "cost": round(0.01 + (i % 997) * 0.003, 6),
        }

    rows = [
        {
            "sha": f"{i:040x}",
            "date": "2026-03-01 10:00",
            "branch": f"feature/{i % 300}",
            "kind": "commit",
            "origin": "agent" if i % 3 else "human",
            "reachable": True,
            **usage(i),
        }
        for i in range(commits)
    ]
    rows.sort(key=lambda c: -c["cost"])
    day_names = [time.strftime("%Y-%m-%d", time.gmtime(T0_MS / 1000 + d * 86400)) for d in range(days)]
    agg = {
        "schema": 1,
        "generated": "2026-03-01T00:00:00.000Z",
        "filter": {"repos": ["/bench/repo"], "since": None, "until": None, "titles": True},
        "totals": {
            **usage(0, commits * 20),
            "cache_hit_rate": 0.8,
            "commits": commits,
            "linked": usage(0),
            "pending": {"messages": 0, "cost": 0.0},
            "shipped": None,
            "cost_per_commit": {"mean": 0.5, "median": 0.4, "p90": 2.0, "max": 3.0},
        },
        "commit_columns": ["date", "reachable"],
        "commits": rows,
        "commit_cost_histogram": dashboard._cost_histogram([c["cost"] for c in rows]),
        "by_origin": [
            {"origin": "agent", "commits": commits * 2 // 3, "cost": 1.0},
            {"origin": "human", "commits": commits // 3, "cost": 1.0},
        ],
        "models": [{"provider": p, "model": m, **usage(i), "cache_hit_rate": 0.8} for i, (p, m) in enumerate(MODELS)],
        "branches": [{"branch": f"feature/{b}", **usage(b)} for b in range(300)],
        "days": [{"day": d, **usage(i), "cumulative_cost": float(i)} for i, d in enumerate(day_names)],
        "day_model": [
            {"day": d, "provider": p, "model": m, "messages": 5, "cost": 0.1 * (i % 7)}
            for i, d in enumerate(day_names)
            for p, m in MODELS
        ],
        "sessions": [
            {"session": f"ses_{s:05d}", "title": f"Session {s}", "is_subagent": s % 5 == 4, **usage(s)}
            for s in range(sessions)
        ],
        "subagents": {"subagent": usage(1), "main": {"messages": 1, "cost": 1.0}, "share": 0.2},
    }
    return agg


def time_page(html_path: Path, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PERISCOPE_TEST_CHROMIUM") or shutil.which("chromium")
    draw_s, wall_s = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t = time.perf_counter()
            page.goto(html_path.as_uri())
            page.wait_for_selector("html[data-rendered]", state="attached", timeout=120000)
            wall_s.append(time.perf_counter() - t)
            ds = json.loads(page.evaluate("JSON.stringify(document.documentElement.dataset)"))
            assert ds["rendered"] == "ok", ds
            draw_s.append(float(ds["drawMs"]) / 1000)
            page.close()
        browser.close()
    return {
        "chromium: navigation to all charts drawn (s)": median_of(draw_s),
        "chromium: goto + wait, wall (s)": median_of(wall_s),
    }


def median_of(samples: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(samples), 3), "runs": [round(s, 3) for s in samples]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--max-commits", type=int, default=2000, help="the page's cap (with --page-only)")
    ap.add_argument(
        "--page-only", type=int, default=0, metavar="COMMITS", help="time only the page, of COMMITS commits"
    )
    args = ap.parse_args()

    if args.page_only:  # the page alone, from an aggregate of the real shape with --page-only commits
        from periscope_hooks import dashboard

        agg = synthetic_aggregate(args.page_only)
        results: dict[str, Any] = {"aggregate": f"synthetic, {args.page_only} commits, 180 days, 2000 sessions"}
        render_s = []
        html = ""
        for _ in range(args.runs):
            t = time.perf_counter()
            html = dashboard.render_html(agg, max_commits=args.max_commits)
            render_s.append(time.perf_counter() - t)
        results["render_html (s)"] = median_of(render_s)
        results["page (MB)"] = round(len(html.encode()) / 1e6, 2)
        with tempfile.TemporaryDirectory() as tmp:
            page_path = Path(tmp) / "dashboard.html"
            page_path.write_text(html, encoding="utf-8")
            results.update(time_page(page_path, args.runs))
        print(json.dumps(results, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in results.items()))
        return 0
    base = args.keep or Path(tempfile.mkdtemp(prefix="periscope-dash-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    isolated_env(str(base / "home"))
    from periscope_hooks import dashboard, paths
    from periscope_hooks.commands.report import report_rows
    from periscope_hooks.state import open_state_db

    repo, info = build_state(base, args.messages)
    state_dir = paths.state_dir_for_common_dir(repo / ".git")
    source = dashboard.Source(str(repo), state_dir)

    results: dict[str, Any] = {"state": info}
    for by in ("commit", "model", "branch", "session", "day"):
        samples = []
        for _ in range(args.runs):
            conn = open_state_db(state_dir)
            t = time.perf_counter()
            report_rows(conn, by)
            samples.append(time.perf_counter() - t)
            conn.close()
        results[f"report --by {by} (s)"] = median_of(samples)
    agg_s, render_s = [], []
    aggregate: dict[str, Any] = {}
    html = ""
    for _ in range(args.runs):
        t = time.perf_counter()
        aggregate = dashboard.build_aggregate([source])
        agg_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        html = dashboard.render_html(aggregate)
        render_s.append(time.perf_counter() - t)
    results["build_aggregate (s)"] = median_of(agg_s)
    results["render_html (s)"] = median_of(render_s)
    results["json aggregate (MB)"] = round(len(json.dumps(aggregate)) / 1e6, 2)
    results["page (MB)"] = round(len(html.encode()) / 1e6, 2)
    page_path = base / "dashboard.html"
    page_path.write_text(html, encoding="utf-8")

    chromium = os.environ.get("PERISCOPE_TEST_CHROMIUM") or shutil.which("chromium")
    if chromium:
        from playwright.sync_api import sync_playwright

        draw_ms, wall_s = [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for _ in range(args.runs):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                t = time.perf_counter()
                page.goto(page_path.as_uri())
                page.wait_for_selector("html[data-rendered]", state="attached", timeout=120000)
                wall_s.append(time.perf_counter() - t)
                ds = json.loads(page.evaluate("JSON.stringify(document.documentElement.dataset)"))
                assert ds["rendered"] == "ok", ds
                draw_ms.append(float(ds["drawMs"]) / 1000)
                page.close()
            browser.close()
        results["chromium: navigation to all charts drawn (s)"] = median_of(draw_ms)
        results["chromium: goto + wait, wall (s)"] = median_of(wall_s)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print(f"{k}: {v}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
