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
import time
from typing import Any

from periscope_hooks import output, reconcile, statedb
from periscope_hooks.events import TOKEN_FIELDS, round_cost
from periscope_hooks.ingest import commit_summary, process_spool
from periscope_hooks.repo import resolve_state_dir
from periscope_hooks.state import open_state_db


def _totals(rows: list[sqlite3.Row]) -> dict[str, Any]:
    return {
        "messages": len(rows),
        "tokens": {f: sum(int(r[f] or 0) for r in rows) for f in TOKEN_FIELDS},
        "cost": round_cost(float(r["cost"] or 0) for r in rows),
    }


def by_commit(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = []
    for sha in statedb.commits_in_link_order(conn):
        s = commit_summary(conn, sha)
        if s is not None:
            rows.append({"sha": sha, "branch": s["branch"], "kind": s["kind"], "origin": s["origin"], **s["usage"]})
    _mark_reachability(conn, rows)
    return rows


def _mark_reachability(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    """reachable and shipped (on the upstream default branch) per commit, from reconciliation's
    cache: refreshed only when the refs changed, never a walk of the whole history per call."""
    from periscope_hooks.reconcile import ship_status

    status = ship_status(conn)
    for r in rows:
        r["reachable"], r["shipped"] = status.get(r["sha"], (True, False))


def day_of(time_ms: int | None) -> str:
    """The local calendar day of a message (what a user calls "today", not UTC's)."""
    return time.strftime("%Y-%m-%d", time.localtime((time_ms or 0) / 1000))


def _group(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    msgs = statedb.messages_with_sessions(conn)
    groups: dict[Any, list[sqlite3.Row]] = {}
    for m in msgs:
        if key == "model":
            k: Any = (m["provider"], m["model"])
        elif key == "branch":
            k = m["branch"]
        elif key == "session":
            k = m["session_id"]
        else:
            k = day_of(m["time_ms"])
        groups.setdefault(k, []).append(m)
    rows = []
    for k, group in groups.items():
        if key == "model":
            head: dict[str, Any] = {"model": k[1], "provider": k[0]}
        elif key == "session":
            head = {"session": k, "title": group[0]["title"], "is_subagent": bool(group[0]["parent_id"])}
        else:
            head = {key: k}
        rows.append({**head, **_totals(group)})
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
    conn = open_state_db(state_dir)
    try:
        process_spool(state_dir, conn)
        reconcile.refresh(conn, state_dir)
        rows = report_rows(conn, by)
        pending = statedb.pending_count(conn)
    finally:
        conn.close()
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
                r["shipped"] = "yes" if r.get("shipped") else "no"
        cols = list(flat[0])
        table = [[str(c) for c in cols]] + [
            ["" if r.get(c) is None else (f"{r[c]:.4f}" if c == "cost" else str(r[c])) for c in cols] for r in flat
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        for row in table:
            output.out("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if flat and by == "commit":
        output.out(reconcile.shipped_line(rows))
    if pending and by == "commit":
        output.out(f"({pending} message(s) not linked to a commit yet)")
    return 0
