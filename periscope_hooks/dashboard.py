"""The local dashboard: one aggregate of the report's rows, and one self-contained HTML page.

One source of truth: every figure comes from the functions behind `periscope report`
(commands/report.py `report_rows`), called once per grouping on each repository's state.db; this
module only sorts, caps and sums those rows.  The one split the report has no grouping for
(cost per day *and* model, for the stacked chart) is read with the report's own day bucketing and
checked against the report's day and model rows by the tests.

The page is offline and private by construction: Chart.js is vendored (resources/, fetched and
checked by scripts/vendor-chartjs.py) and inlined, a Content-Security-Policy with
`default-src 'none'` allows only the page's own inline scripts and style by hash (so no request can
leave it), and the data is embedded as JSON with `<`, `>` and `&` escaped so no string in it can
close the script element.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from periscope_hooks import paths, repo_registry, statedb
from periscope_hooks.errors import UserError
from periscope_hooks.events import TOKEN_FIELDS, rfc3339, round_cost

AGGREGATE_SCHEMA = 1
RESOURCES = Path(__file__).resolve().parent / "resources"
CHARTJS_FILE = "chart.umd.min.js"
# Pinned: scripts/vendor-chartjs.py writes this file from the npm tarball it checked.
CHARTJS_SHA256 = "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
CHARTJS_VERSION = "4.6.1"
# The page gets at most this many commit rows (most expensive first) and sessions.  At 50,000
# commits the table alone would be ~8 MB of DOM; 2,000 rows draw in well under a second.
PAGE_MAX_COMMITS = 2000
PAGE_MAX_SESSIONS = 50
TOP_COMMITS_CHART = 25
DAY_GROUPINGS = ("model", "branch", "session", "day")
# The page's money figures (`--basis`, main.py): the agents' own (`reported`: `cost`), or list
# prices (`list`: `list_cost`), the only figure there is for Claude Code (it reports no cost) and
# plans (they report $0).  `auto` takes list prices when nothing in the window reported a cost and
# some usage has a list price.


@dataclass(frozen=True)
class Window:
    """The report's time window (commands/report.py parse_window): since_ms <= t < until_ms (None: open)."""

    since_ms: int | None = None
    until_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.since_ms is not None or self.until_ms is not None


@dataclass(frozen=True)
class Source:
    """One state dir to read: a repository's (`label` is its path) or the no-repo state."""

    label: str
    state_dir: Path


def remember(source: Source) -> None:
    """Note a repository for `--all-repos` (repo_registry.py)."""
    repo_registry.remember(source.label, source.state_dir)


def known_sources() -> list[Source]:
    """Every remembered repository whose state dir still exists, and the no-repo state."""
    found = {sd: Source(label, Path(sd)) for sd, label in repo_registry.remembered().items()}
    no_repo = paths.no_repo_state_dir()
    if (no_repo / paths.SPOOL_NAME).exists():
        found.setdefault(str(no_repo), Source("(outside any repository)", no_repo))
    return list(found.values())


# --- reading one state dir through the report's functions --------------------------------------


def day_model_rows(conn: sqlite3.Connection, window: Window = Window()) -> list[dict[str, Any]]:
    """Cost per (day, provider, model), days bucketed as the report buckets them (quarter hours
    from the reports' rollup, folded into local days), costs summed exactly like the report's."""
    from periscope_hooks.commands.report import day_of

    cells: dict[tuple[str, Any, Any], list[int]] = {}
    for bucket, provider, model, messages, cost_units, list_micro in statedb.cost_by_bucket_and_model(
        conn, window.since_ms, window.until_ms
    ):
        cell = cells.setdefault((day_of(int(bucket) * statedb.DAY_BUCKET_MS), provider, model), [0, 0, 0])
        cell[0] += int(messages)
        cell[1] += int(cost_units or 0)
        cell[2] += int(list_micro or 0)
    return [
        {
            "day": d,
            "provider": p,
            "model": m,
            "messages": n,
            "cost": units / statedb.COST_UNITS_PER_DOLLAR,
            "list_cost": list_micro / 1_000_000,
        }
        for (d, p, m), (n, units, list_micro) in sorted(
            cells.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), str(kv[0][2]))
        )
    ]


def read_source(
    source: Source,
    window: Window,
    on_long_ingest: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The report's rows for every grouping, for one state dir, read as `report` reads them
    (ingested first; a read-only state folder read as it is, or from the spool).  `on_note`: told
    what `report` says then (showing what was ingested before, or the spool)."""
    from periscope_hooks.commands.report import report_rows
    from periscope_hooks.reconcile import refresh_unless_read_only
    from periscope_hooks.state_reader import read_state

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        refresh_unless_read_only(conn, source.state_dir)  # `shipped` as of the refs now (cached)
        span = (window.since_ms, window.until_ms)
        rows: dict[str, Any] = {by: report_rows(conn, by, span) for by in (*DAY_GROUPINGS, "commit")}
        rows["day_model"] = day_model_rows(conn, window)
        pending, pending_list_micro = statedb.pending_costs(conn, window.since_ms, window.until_ms)
        rows["pending"] = {
            "messages": len(pending),
            "cost": round_cost(pending),
            "list_cost": pending_list_micro / 1_000_000,
        }
        return rows

    rows, note = read_state(source.state_dir, read, on_long_ingest)
    if note is not None and on_note is not None:
        on_note(note)
    return rows


# --- the aggregate ------------------------------------------------------------------------------


def _at_list_prices(row: dict[str, Any]) -> dict[str, Any]:
    """A report row whose `cost` is its list price (0 where none of its messages has one); its
    sub-agents' rows and share too."""
    out = {**row, "cost": float(row.get("list_cost") or 0.0)}
    if isinstance(row.get("subagent_share"), dict):
        out["subagent_share"] = _at_list_prices(row["subagent_share"])
    if isinstance(row.get("subagents"), list):
        out["subagents"] = [_at_list_prices(child) for child in row["subagents"]]
    return out


def _choose_basis(basis: str, per_source: Sequence[tuple[Source, dict[str, Any]]]) -> str:
    """`auto`: list prices when every cost reads $0 (Claude Code, plans) and some usage is priced."""
    if basis != "auto":
        return basis
    models = [r for _, rows in per_source for r in rows["model"]]
    reported = any(r["cost"] for r in models)
    priced = any(r.get("list_cost") for r in models)
    return "list" if priced and not reported else "reported"


def _rows_at_list_prices(rows: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {by: [_at_list_prices(r) for r in rows[by]] for by in (*DAY_GROUPINGS, "commit", "day_model")}
    out["pending"] = _at_list_prices(rows["pending"])
    return out


def _add(into: dict[str, Any], row: dict[str, Any]) -> None:
    """Sum a report row's usage into `into` (list prices and cost sources too, when the report has them)."""
    into["messages"] += row["messages"]
    into["cost"] = round_cost([into["cost"], row["cost"]])
    for f in TOKEN_FIELDS:
        into["tokens"][f] += row["tokens"][f]
    if "list_cost" in row:  # None (no message with a list price) stays None until one has one
        if row["list_cost"] is None:
            into.setdefault("list_cost", None)
        else:
            into["list_cost"] = round((into.get("list_cost") or 0.0) + float(row["list_cost"]), 6)
    if isinstance(row.get("cost_sources"), dict):
        mix = into.setdefault("cost_sources", {})
        for k, n in row["cost_sources"].items():
            mix[k] = mix.get(k, 0) + n


def _zero() -> dict[str, Any]:
    return {"messages": 0, "cost": 0.0, "tokens": dict.fromkeys(TOKEN_FIELDS, 0)}


def _merge(rows: Iterable[dict[str, Any]], key: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of several repositories with the same key summed (one repository: the rows as given)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row.get(f) for f in key)
        if k not in merged:
            summed = ("messages", "cost", "tokens", "list_cost", "cost_sources")
            merged[k] = {**{f: row.get(f) for f in row if f not in summed}, **_zero()}
        _add(merged[k], row)
    return list(merged.values())


def _cache_hit_rate(tokens: dict[str, int]) -> float | None:
    """Share of prompt tokens served from the cache: cache_read / (input + cache_read + cache_write)."""
    prompt = tokens["input"] + tokens["cache_read"] + tokens["cache_write"]
    return round(tokens["cache_read"] / prompt, 6) if prompt else None


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def _median(sorted_values: Sequence[float]) -> float | None:
    """The usual median: the middle value, or the mean of the two middle ones (the nearest-rank
    rule, kept for p90, gave the lower of the two: 12.5823 where 12.67615 was the median)."""
    n = len(sorted_values)
    if not n:
        return None
    if n % 2:
        return sorted_values[n // 2]
    return round((sorted_values[n // 2 - 1] + sorted_values[n // 2]) / 2, 10)


def _cost_histogram(costs: Sequence[float]) -> list[dict[str, Any]]:
    """Commits per cost band, decade bands split in 1-2-5 steps ($0.001 .. $1000+)."""
    edges = [0.0] + [m * 10.0**e for e in range(-3, 3) for m in (1, 2, 5)] + [1000.0]
    counts = [0] * len(edges)
    for c in costs:
        i = len(edges) - 1
        while i > 0 and c < edges[i]:
            i -= 1
        counts[i] += 1
    bins: list[dict[str, Any]] = [
        {"from": lo, "to": hi, "commits": n} for lo, hi, n in zip(edges, [*edges[1:], None], counts)
    ]
    while len(bins) > 1 and bins[-1]["commits"] == 0:
        bins.pop()
    while len(bins) > 1 and bins[0]["commits"] == 0:
        bins.pop(0)
    return bins


def build_aggregate(
    sources: Sequence[Source],
    window: Window = Window(),
    *,
    titles: bool = True,
    basis: str = "auto",
    on_long_ingest: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    label_rows: bool = False,
) -> dict[str, Any]:
    """Everything the dashboard shows, from the report's rows of every source; its money figures
    (`cost`) the agents' own or list prices (`basis`: auto, reported, list).  Commit and session
    rows carry their source's `repo` when there are several sources, or `label_rows` says so
    (`--all-repos`, whatever number of repositories it found)."""
    per_source = [(s, read_source(s, window, on_long_ingest, on_note)) for s in sources]
    basis = _choose_basis(basis, per_source)
    if basis == "list":
        per_source = [(s, _rows_at_list_prices(rows)) for s, rows in per_source]
    several = label_rows or len(sources) > 1

    commits: list[dict[str, Any]] = []
    for source, rows in per_source:
        # One source: its rows as read_source made them (fresh dicts, nothing else holds them).
        commits.extend([{**c, "repo": source.label} for c in rows["commit"]] if several else rows["commit"])
    commits.sort(key=lambda c: -c["cost"])

    def grouped(by: str, key: Sequence[str]) -> list[dict[str, Any]]:
        return _merge((r for _, rows in per_source for r in rows[by]), key)

    models = sorted(grouped("model", ("provider", "model")), key=lambda r: -r["cost"])
    branches = sorted(grouped("branch", ("branch",)), key=lambda r: -r["cost"])
    days = sorted(grouped("day", ("day",)), key=lambda r: r["day"])
    sessions = [
        {**r, "repo": source.label} if several else dict(r) for source, rows in per_source for r in rows["session"]
    ]
    sessions.sort(key=lambda r: -r["cost"])
    if not titles:
        for s in sessions:
            s["title"] = None
            for child in s.get("subagents") or []:
                child["title"] = None
    day_model: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _, rows in per_source:
        for r in rows["day_model"]:
            k = (r["day"], r["provider"], r["model"])
            cell = day_model.setdefault(
                k, {"day": r["day"], "provider": r["provider"], "model": r["model"], "messages": 0, "cost": 0.0}
            )
            cell["messages"] += r["messages"]
            cell["cost"] = round_cost([cell["cost"], r["cost"]])

    total = _zero()
    for d in days:
        _add(total, d)
    linked = _zero()
    for c in commits:
        _add(linked, c)
    pending = {"messages": 0, "cost": 0.0, "list_cost": 0.0}
    for _, rows in per_source:
        pending["messages"] += rows["pending"]["messages"]
        pending["cost"] = round_cost([pending["cost"], rows["pending"]["cost"]])
        pending["list_cost"] = round(pending["list_cost"] + rows["pending"]["list_cost"], 6)

    by_origin: dict[str, dict[str, Any]] = {}
    for c in commits:
        o = by_origin.setdefault(c["origin"], {"origin": c["origin"], "commits": 0, "cost": 0.0})
        o["commits"] += 1
        o["cost"] = round_cost([o["cost"], c["cost"]])
    # Sub-agents: rows of their own (is_subagent), or rolled up into their parent's row with the
    # children's part in `subagent_share` (the report's roll-up, issue 13).
    sub = {"subagent": _zero(), "all": _zero()}
    for s in sessions:
        _add(sub["all"], s)
        if s.get("is_subagent"):
            _add(sub["subagent"], s)
        elif isinstance(s.get("subagent_share"), dict):
            _add(sub["subagent"], s["subagent_share"])
    sub_cost = sub["subagent"]["cost"]
    main = {
        "messages": sub["all"]["messages"] - sub["subagent"]["messages"],
        "cost": round(sub["all"]["cost"] - sub_cost, 10),
    }
    shipped: dict[str, Any] | None = None
    if any("shipped" in c for c in commits):
        yes = [c for c in commits if c.get("shipped")]
        shipped_cost = round_cost(c["cost"] for c in yes)
        share = round(shipped_cost / linked["cost"], 6) if linked["cost"] else None
        shipped = {"commits": len(yes), "cost": shipped_cost, "share": share}

    costs = sorted(c["cost"] for c in commits)
    cumulative = 0.0
    daily = []
    for d in days:
        cumulative = round_cost([cumulative, d["cost"]])
        daily.append({**d, "cumulative_cost": cumulative})
    extra_columns = [f for f in ("date", "shipped", "list_cost", "reachable") if any(f in c for c in commits)]
    if basis == "list":
        extra_columns = [f for f in extra_columns if f != "list_cost"]  # the cost column is it

    return {
        "schema": AGGREGATE_SCHEMA,
        "generated": rfc3339(),
        "basis": basis,
        "filter": {
            "repos": [s.label for s in sources],
            "since": rfc3339(window.since_ms) if window.since_ms is not None else None,
            "until": rfc3339(window.until_ms) if window.until_ms is not None else None,
            "titles": titles,
        },
        "totals": {
            **total,
            "cache_hit_rate": _cache_hit_rate(total["tokens"]),
            "commits": len(commits),
            "linked": linked,
            "pending": pending,
            "shipped": shipped,
            "cost_per_commit": {
                "mean": round(linked["cost"] / len(commits), 10) if commits else None,
                "median": _median(costs),
                "p90": _quantile(costs, 0.9),
                "max": costs[-1] if costs else None,
            },
        },
        "commit_columns": extra_columns,
        "commits": commits,
        "commit_cost_histogram": _cost_histogram(costs),
        "by_origin": sorted(by_origin.values(), key=lambda o: o["origin"]),
        "models": [{**m, "cache_hit_rate": _cache_hit_rate(m["tokens"])} for m in models],
        "branches": branches,
        "days": daily,
        "day_model": sorted(day_model.values(), key=lambda r: (r["day"], str(r["provider"]), str(r["model"]))),
        "sessions": sessions,
        "subagents": {
            "subagent": sub["subagent"],
            "main": main,
            "share": round(sub_cost / total["cost"], 6) if total["cost"] else None,
        },
    }


# --- the page -----------------------------------------------------------------------------------


def _resource(name: str) -> str:
    return (RESOURCES / name).read_text(encoding="utf-8")


def chartjs_source() -> str:
    """The vendored Chart.js, checked against its pinned sha256 (a changed copy is refused)."""
    data = (RESOURCES / CHARTJS_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != CHARTJS_SHA256:
        raise UserError(f"{RESOURCES / CHARTJS_FILE} is not the vendored Chart.js", "reinstall periscope-hooks")
    # The source map is not shipped; its comment would only make a browser's devtools look for it.
    return "\n".join(line for line in data.decode().splitlines() if not line.startswith("//# sourceMappingURL="))


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def embed_json(value: Any) -> str:
    """JSON that is inert inside a <script> element: no `<`, `>` or `&` survives unescaped."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_data(aggregate: dict[str, Any], max_commits: int = PAGE_MAX_COMMITS) -> dict[str, Any]:
    """The aggregate as the page gets it: commit and session rows capped, with a note when capped."""
    data = dict(aggregate)
    commits = aggregate["commits"]
    data["commits"] = commits[:max_commits]
    data["top_commits"] = commits[:TOP_COMMITS_CHART]
    data["commits_capped"] = len(commits) > max_commits
    data["sessions"] = aggregate["sessions"][:PAGE_MAX_SESSIONS]
    data["sessions_capped"] = len(aggregate["sessions"]) > PAGE_MAX_SESSIONS
    return data


def render_html(aggregate: dict[str, Any], max_commits: int = PAGE_MAX_COMMITS) -> str:
    chart = chartjs_source()
    app = _resource("dashboard.js")
    style = _resource("dashboard.css")
    body = _resource("dashboard.html")
    data = embed_json(page_data(aggregate, max_commits))
    for name, text in (("Chart.js", chart), ("dashboard.js", app)):
        if "</script" in text.lower() or "<!--" in text:  # either would end or bend the script element
            raise AssertionError(f"{name} cannot be inlined as it is")
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_csp_hash(chart)} {_csp_hash(app)}",
            f"style-src {_csp_hash(style)}",
            "img-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        "<title>Periscope: AI cost per commit</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n{body}\n"
        f'<script id="periscope-data" type="application/json">{data}</script>\n'
        f"<script>{chart}</script>\n<script>{app}</script>\n</body>\n</html>\n"
    )


def default_output_path() -> Path:
    return paths.state_home() / "periscope" / "dashboard.html"


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[TextIO]:
    """A text file that becomes `path` when the block ends, readable by the user only (0600 from
    the start, replaced atomically); nothing is left behind when the block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the user only (private_file)."""
    with private_file(path) as f:
        f.write(text)


def open_in_browser(path: Path) -> bool:
    """Open the page in the user's browser; False (never an error) when there is none."""
    return open_in_browser_url(path.resolve().as_uri())


def open_in_browser_url(url: str) -> bool:
    try:
        import webbrowser

        return bool(webbrowser.open(url))
    except Exception:  # no browser, no display, a broken BROWSER setting: the path is printed anyway
        return False
