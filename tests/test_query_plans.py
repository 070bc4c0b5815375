"""EXPLAIN QUERY PLAN regression tests for the hot statements of ingest and linking.

A new index (or new planner statistics) must never silently turn one of these into a scan
of every message: at 1M messages that cost 200-250 ms per commit (issue 11).  The database
holds enough rows, with ANALYZE statistics, for the planner to have real choices.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from periscope_hooks import statedb
from periscope_hooks.state import open_state_db


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    db = open_state_db(Path(tmp_path_factory.mktemp("plans")))
    rows = [
        (f"m{i}", "ses", f"/wt{i % 3}", i, "p", "m", "a", 1, 1, 0, 0, 0, 0.01, "main", None, i, None if i > 1900 else 1)
        + (None, "unknown", None, 1)  # list price, cost source, price table, cost reported
        + (None,) * (len(statedb.MESSAGE_COLUMNS) - 21)  # columns added since (coding_agent, ...)
        for i in range(2000)
    ]
    db.executemany(statedb.INSERT_MESSAGE_SQL, rows)
    db.execute("ANALYZE")
    yield db
    db.close()


def plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (statedb.PENDING_SUMMARY_SQL, ("/wt1",), "messages_pending"),
        (statedb.LINK_PENDING_SQL, (7, "/wt1"), "messages_pending"),
        (statedb.LINK_PENDING_RETURNING_SQL, (7, "/wt1"), "messages_pending"),
        (statedb.LINK_MESSAGES_FOR_EVENT_SQL, (1,), "messages_link"),
        (statedb.LAST_MESSAGE_TIME_SQL, ("/wt1",), "messages_worktree_time"),
        ("SELECT * FROM messages WHERE id = ?", ("m1",), "sqlite_autoindex_messages_1"),
        ("SELECT * FROM messages WHERE link_id = ? ORDER BY spool_offset", (1,), "messages_link"),
        ("SELECT link_id, count(*) FROM messages WHERE link_id IS NOT NULL GROUP BY link_id", (), "messages_link"),
        ("SELECT * FROM links WHERE agent_message_id = ? AND emitted = 0 ORDER BY id LIMIT 1", ("m1",), "links_held"),
        ("SELECT * FROM links WHERE current_sha = ? ORDER BY id", ("abc",), "links_current"),
    ],
)
def test_hot_statements_use_their_index(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...], index: str
) -> None:
    text = plan(conn, sql, params)
    assert f"USING INDEX {index}" in text or f"USING COVERING INDEX {index}" in text, text
    assert "SCAN messages" not in text and "SCAN m " not in text, text


def test_pending_statements_fail_loudly_without_their_index(tmp_path: Path) -> None:
    """INDEXED BY: should messages_pending ever be dropped, linking errors out instead of scanning."""
    db = open_state_db(tmp_path)
    db.execute("DROP INDEX messages_pending")
    with pytest.raises(sqlite3.OperationalError, match="no such index"):
        statedb.pending_summary(db, "/wt")
    db.close()


def test_report_statements_never_scan_the_messages(conn: sqlite3.Connection) -> None:
    """Reports read the rollups (issue 11): whatever they read from messages themselves (rows past
    the rollup's mark, newer links, a window's cut quarter hours) is an index or rowid range, at
    any size of the table.  Every statement the report functions run is checked, stale rollup
    included (its catch-up and read paths are the ones that touch messages)."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        conn.execute("BEGIN IMMEDIATE")
        statedb.roll_up_reports(conn)  # the whole table once: a rowid range from 0
        conn.execute("COMMIT")
        t0 = 1000
        for by in ("model", "branch", "session", "agent", "day"):
            for window in ((None, None), (t0, None), (None, 1900), (t0 + 1, 1899), (1200, 1210)):
                statedb.usage_by(conn, by, *window)
        statedb.usage_by_commit(conn)
        statedb.usage_by_commit(conn, 5, 1000)
        statedb.cost_by_bucket_and_model(conn)  # the dashboard's day x model split
        statedb.cost_by_bucket_and_model(conn, t0 + 1, 1899)
    finally:
        conn.set_trace_callback(None)
    checked = 0
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "INSERT")) or "messages" not in sql:
            continue
        text = "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SCAN messages" not in text and "SCAN m " not in text, (sql, text)
        # rowids up to the rollup's mark are every rolled-up message: a scan in all but name
        assert "INTEGER PRIMARY KEY (rowid<?)" not in text, (sql, text)
        # a window's cut quarter hours: a range of (worktree, time), never all of a worktree's rows
        assert "messages_worktree_time (worktree=?)" not in text, (sql, text)
        checked += 1
    assert checked >= 10


def test_unlinked_messages_are_counted_from_the_partial_index(conn: sqlite3.Connection) -> None:
    """A walk of messages_pending reads exactly the unlinked messages (m016: messages_link holds
    linked ones only), never the table."""
    text = plan(conn, "SELECT count(*) FROM messages WHERE link_id IS NULL", ())
    assert "USING INDEX messages_pending" in text or "USING COVERING INDEX messages_pending" in text, text


@pytest.fixture(scope="module")
def links_db(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    """Links, rewrites and reconciliation's status rows in the proportions of the 1M history (one
    link per commit, nearly all shipped, a few cherry-picks and agent commits), with ANALYZE."""
    db = open_state_db(Path(tmp_path_factory.mktemp("links")))
    db.executemany(
        "INSERT INTO links (worktree, sha, current_sha, kind, origin, time_ms) VALUES ('/wt', ?, ?, ?, ?, ?)",
        [
            (
                f"{i:040x}",
                f"{i:040x}",
                "cherry-pick" if i % 500 == 0 else "commit",
                "agent" if i % 300 == 0 else "human",
                i,
            )
            for i in range(3000)
        ],
    )
    db.executemany(
        "INSERT INTO rewrites (command, old_sha, new_sha, time_ms) VALUES ('amend', ?, ?, 0)",
        [(f"{i:040x}", f"{i + 1:040x}") for i in range(0, 3000, 100)],
    )
    db.executemany(
        "INSERT INTO reconcile_status (sha, reachable, shipped) VALUES (?, 1, ?)",
        [(f"{i:040x}", int(i % 200 != 0)) for i in range(3000)],
    )
    db.execute("ANALYZE")
    yield db
    db.close()


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        # what the flush after a commit reads to reconcile: never every link or status row
        (statedb.LINK_MARKS_SQL, (), "SEARCH links"),
        (statedb.LINKED_BETWEEN_SQL, (2990, 3000), "SEARCH links USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        (statedb.MOVED_BETWEEN_SQL, (28, 30), "SEARCH rewrites USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        (statedb.UNSHIPPED_SQL, (), "INDEX reconcile_status_unshipped"),
        (statedb.CHERRY_PICKS_SQL, (), "INDEX links_cherry_pick (kind=?)"),
        (statedb.AGENT_LINKS_AFTER_SQL, (0,), "INDEX links_agent (id>?)"),
        (
            "DELETE FROM reconcile_status WHERE sha = ?",
            ("0" * 40,),
            "INDEX sqlite_autoindex_reconcile_status_1 (sha=?)",
        ),
        ("SELECT DISTINCT current_sha FROM links WHERE current_sha IN (?, ?)", ("a", "b"), "INDEX links_current"),
    ],
)
def test_reconciliation_reads_what_changed_through_an_index(
    links_db: sqlite3.Connection, sql: str, params: tuple[object, ...], expected: str
) -> None:
    text = plan(links_db, sql, params)
    assert expected in text, text
    assert "SCAN links" not in text or "INDEX links_" in text, text
    assert "SCAN reconcile_status" not in text or "INDEX reconcile_status_unshipped" in text, text
