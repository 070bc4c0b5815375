"""`periscope report`: AI usage per commit, model, branch, session or day.

Computed from the repository's state.db after ingesting the spool, so it works
whatever the sink is and follows rewrites (usage linked to a rewritten commit is
shown under its replacement, once).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from typing import Any

from periscope_hooks import output, statedb
from periscope_hooks.events import TOKEN_FIELDS
from periscope_hooks.repo import resolve_state_dir
from periscope_hooks.state_reader import read_state


def _usage(row: Any) -> dict[str, Any]:
    """The usage block of a report row from an aggregate row (statedb.USAGE_AGGREGATES)."""
    return {
        "messages": int(row["messages"]),
        "tokens": {f: int(row[f] or 0) for f in TOKEN_FIELDS},
        "cost": cost_from_units(int(row["cost_units"] or 0)),
    }


def cost_from_units(units: int) -> float:
    """Dollars from the exact integer sum (the float nearest to it, as round(fsum(...), 10) gives)."""
    return units / statedb.COST_UNITS_PER_DOLLAR


_USAGE_KEYS = ("messages", *TOKEN_FIELDS, "cost_units")


def by_commit(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """One row per commit that holds usage now (rewritten commits' usage under their replacements),
    in the order the commits were first linked; sums done in SQL per link, then per commit."""
    per_link = {r["link_id"]: r for r in statedb.usage_by_link(conn)}
    commits: dict[str, dict[str, Any]] = {}
    for link in statedb.commit_links(conn):
        sha = link["current_sha"]
        c = commits.get(sha)
        if c is None:
            c = commits[sha] = {"own": None, "last": None, **dict.fromkeys(_USAGE_KEYS, 0)}
        c["last"] = link
        if link["sha"] == sha:
            c["own"] = link  # the commit's own link (made when it was created) describes it
        usage = per_link.get(link["id"])
        if usage is not None:
            for k in _USAGE_KEYS:
                c[k] += int(usage[k] or 0)
    rows = []
    for sha, c in commits.items():
        own = c["own"] or c["last"]
        rows.append({"sha": sha, "branch": own["branch"], "kind": own["kind"], "origin": own["origin"], **_usage(c)})
    _mark_reachability(conn, rows)
    return rows


def _mark_reachability(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    common_dir = conn.execute("PRAGMA database_list").fetchone()[2]
    try:
        from pathlib import Path

        from periscope_hooks.reachability import unreachable

        gone = unreachable(str(Path(common_dir).parent.parent), [r["sha"] for r in rows])
    except ImportError:
        return
    for r in rows:
        r["reachable"] = r["sha"] not in gone


def _group(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    """One row per model, branch, session or day, aggregated in SQL (constant memory in the number
    of messages), listed in the order of each group's first message (time, then spool order)."""
    groups = statedb.usage_by(conn, key)
    firsts: dict[int, int] = {}
    for g in groups:
        firsts[g["first_ms"]] = firsts.get(g["first_ms"], 0) + 1

    def order(g: sqlite3.Row) -> tuple[int, int]:
        if firsts[g["first_ms"]] == 1:
            return g["first_ms"], 0
        # Two groups start in the same millisecond: the spool decides.
        keys = [g[f"k{i}"] for i in range(len(statedb.GROUP_KEYS[key]))]
        return g["first_ms"], statedb.first_spool_offset(conn, key, keys, g["first_ms"])

    groups = sorted(groups, key=order)
    sessions = statedb.session_heads(conn, [g["k0"] for g in groups]) if key == "session" else {}
    rows = []
    for g in groups:
        if key == "model":
            head: dict[str, Any] = {"model": g["k1"], "provider": g["k0"]}
        elif key == "session":
            s = sessions.get(g["k0"])
            head = {
                "session": g["k0"],
                "title": s["title"] if s is not None else None,
                "is_subagent": bool(s["parent_id"]) if s is not None else False,
            }
        else:
            head = {key: g["k0"]}
        rows.append({**head, **_usage(g)})
    return rows


def report_rows(conn: sqlite3.Connection, by: str) -> list[dict[str, Any]]:
    return by_commit(conn) if by == "commit" else _group(conn, by if by != "day" else "day")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k != "tokens"}
    for f in TOKEN_FIELDS:
        flat[f] = row["tokens"][f]
    return flat


def report(repo: str | None, by: str, fmt: str) -> int:
    state_dir = resolve_state_dir(repo)
    (rows, pending), note = read_state(state_dir, lambda conn: (report_rows(conn, by), statedb.pending_count(conn)))
    if note:
        output.info(f"note: {note}")
    if fmt == "json":
        output.out(json.dumps(rows, indent=2))
        return 0
    flat = [_flat(r) for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        fields = list(flat[0]) if flat else [by if by != "commit" else "sha", "messages", *TOKEN_FIELDS, "cost"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        output.write(buf.getvalue())
        return 0
    if not flat:
        output.out("no AI usage recorded yet")
    else:
        if by == "commit":
            for r in flat:
                r["sha"] = r["sha"][:12] + ("" if r.get("reachable", True) else " (unreachable)")
                r.pop("reachable", None)
        cols = list(flat[0])
        table = [[str(c) for c in cols]] + [
            ["" if r.get(c) is None else (f"{r[c]:.4f}" if c == "cost" else str(r[c])) for c in cols] for r in flat
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        for row in table:
            output.out("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if pending and by == "commit":
        output.out(f"({pending} message(s) not linked to a commit yet)")
    return 0
