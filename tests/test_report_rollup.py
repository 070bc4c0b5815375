"""The reports' rollups (statedb.report_cells / report_links) give exactly what grouping every
message gives: for every --by, with and without time windows (edges on and off the quarter
hours), whether the rollup is current, stale (a read-only state folder) or compacted, while
messages arrive, wait for a commit and are linked, or arrive for a held link."""

from __future__ import annotations

import contextlib
import io
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from periscope_hooks import statedb
from periscope_hooks.commands import report
from periscope_hooks.events import COST_SOURCES, TOKEN_FIELDS
from periscope_hooks.state import open_state_db, transaction

Q = statedb.DAY_BUCKET_MS
T0 = 1764000000000 - 1764000000000 % Q  # on a quarter hour
BYS = ("model", "branch", "session", "agent", "day")


def reference_usage_by(conn: sqlite3.Connection, by: str, since: int | None, until: int | None) -> list[Any]:
    """What usage_by returned before the rollups: every message grouped in SQL."""
    keys = statedb.GROUP_KEYS[by]
    cols = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
    where = "(? IS NULL OR time_ms >= ?) AND (? IS NULL OR time_ms < ?)"
    rows = conn.execute(
        f"SELECT {cols}, {statedb.USAGE_AGGREGATES}, min(coalesce(time_ms, -9223372036854775807)) AS first_ms"
        f" FROM messages WHERE {where} GROUP BY {', '.join(keys)}",
        (since, since, until, until),
    ).fetchall()
    return sorted((tuple(r) for r in rows), key=repr)


def reference_by_commit(conn: sqlite3.Connection, window: tuple[int | None, int | None]) -> list[dict[str, Any]]:
    """What report.by_commit computed before the rollups: every link walked in Python."""
    keys = (
        "messages",
        *TOKEN_FIELDS,
        "cost_units",
        "list_cost_micro",
        *(f"src_{k}" for k in COST_SOURCES),
        "list_priced",
    )
    per_link = {
        r["link_id"]: r
        for r in conn.execute(
            f"SELECT link_id, {statedb.USAGE_AGGREGATES} FROM messages WHERE link_id IS NOT NULL GROUP BY link_id"
        )
    }
    commits: dict[str, dict[str, Any]] = {}
    for link in conn.execute("SELECT id, sha, current_sha, kind, origin, branch, time_ms FROM links ORDER BY id"):
        sha = link["current_sha"]
        c = commits.get(sha)
        if c is None:
            c = commits[sha] = {"own": None, "last": None, "time_ms": None, **dict.fromkeys(keys, 0)}
        c["last"] = link
        if link["sha"] == sha:
            c["own"] = link
        if link["time_ms"] is not None and (c["time_ms"] is None or link["time_ms"] > c["time_ms"]):
            c["time_ms"] = link["time_ms"]
        usage = per_link.get(link["id"])
        if usage is not None:
            for k in keys:
                c[k] += int(usage[k] or 0)
    status = statedb.reconcile_status(conn)
    rows = []
    for sha, c in commits.items():
        t = int(c["time_ms"] or 0)
        if (window[0] is not None and t < window[0]) or (window[1] is not None and t >= window[1]):
            continue
        own = c["own"] or c["last"]
        reachable, shipped = status.get(sha, (True, False))
        rows.append(
            {
                "sha": sha,
                "date": report._date(c["time_ms"]),
                "branch": own["branch"],
                "kind": own["kind"],
                "origin": own["origin"],
                **report._usage(c),
                "reachable": reachable,
                "shipped": shipped,
            }
        )
    return rows


def normalized(rows: list[sqlite3.Row]) -> list[Any]:
    return sorted((tuple(r) for r in rows), key=repr)


class History:
    """Messages arriving the way ingest stores them: pending, then linked by a new commit, or
    stored already linked to a held link."""

    def __init__(self, conn: sqlite3.Connection, seed: int) -> None:
        self.conn, self.rnd, self.n, self.links = conn, random.Random(seed), 0, []

    def message(self, link_id: int | None = None) -> None:
        r, i = self.rnd, self.n
        self.n += 1
        t = None if r.random() < 0.03 else T0 + r.choice([0, Q, 3 * Q]) * r.randint(0, 40) + r.randint(-2, 2) * 1000
        values = dict.fromkeys(statedb.MESSAGE_COLUMNS)
        values.update(
            id=f"m{i}",
            session_id=r.choice(["s1", "s2", "s2/agent-x", None]),
            worktree=r.choice(["/a", "/b", None]),
            time_ms=t,
            provider=r.choice(["anthropic", "openai", None]),
            model=r.choice(["m1", "m2"]),
            agent="build",
            input=r.randint(0, 5000),
            output=r.randint(0, 900),
            reasoning=r.randint(0, 50),
            cache_read=r.randint(0, 9000),
            cache_write=r.randint(0, 90),
            cost=r.choice([0.0, 0.1, 0.0123456789, 1e-11, 3.3]) * r.random(),
            branch=r.choice(["main", "topic", None]),
            spool_offset=i * 100,
            link_id=link_id,
            list_cost_micro=r.choice([None, r.randint(0, 99999)]),
            cost_source=r.choice(["reported", "estimated", "subscription", "unknown", None, "odd"]),
            coding_agent=r.choice([None, "opencode", "claude-code"]),
            cost_reported=1,
        )
        assert statedb.insert_message(self.conn, [values[c] for c in statedb.MESSAGE_COLUMNS])

    def commit(self) -> None:
        r = self.rnd
        worktree = r.choice(["/a", "/b"])
        # now and then a second link on an existing commit (a merge's, say), or a rewrite
        sha = f"{r.randrange(len(self.links)):040x}" if self.links and r.random() < 0.1 else f"{len(self.links):040x}"
        link_id = statedb.insert_link(
            self.conn,
            worktree=worktree,
            sha=sha,
            kind=r.choice(["commit", "merge"]),
            origin=r.choice(["human", "agent"]),
            branch=r.choice(["main", "topic", None]),
            parents_json="[]",
            time_ms=None if r.random() < 0.05 else T0 + r.randint(0, 12) * Q + r.randint(-9, 9),
            agent_session_id=None,
            agent_message_id=None,
            hold_until_ms=None,
        )
        if link_id is None:  # that (sha, kind, worktree) was linked before
            return
        self.links.append(link_id)
        statedb.link_pending_messages(self.conn, link_id, worktree)
        if r.random() < 0.15:  # a rewrite moves a commit's usage to its replacement
            old = f"{r.randrange(len(self.links)):040x}"
            statedb.move_links(self.conn, {old: f"{r.randrange(len(self.links)):040x}ff"})
        if r.random() < 0.2:
            shas = statedb.linked_commits(self.conn)
            statedb.store_reconcile_status(
                self.conn, {s: (r.randint(0, 1), r.randint(0, 1)) for s in shas if r.random() < 0.7}, "fp", None
            )

    def step(self) -> None:
        r = self.rnd
        for _ in range(r.randint(0, 30)):
            self.message(link_id=r.choice(self.links) if self.links and r.random() < 0.05 else None)
        if r.random() < 0.6:
            self.commit()


WINDOWS = [
    (None, None),
    (T0 + 2 * Q, None),
    (None, T0 + 7 * Q),
    (T0 + 2 * Q, T0 + 30 * Q),  # on quarter hours
    (T0 + 2 * Q + 1, T0 + 30 * Q - 1),  # both edges inside a quarter hour
    (T0 + 5 * Q + 7, T0 + 5 * Q + 90_000),  # inside a single quarter hour
    (T0 - 86400_000, T0 + 3 * Q + 1000),
    (T0 + 9 * Q, T0 + 9 * Q),  # empty
    (0, 5 * Q),  # before any message
]


def general_commit_table(rows: list[dict[str, Any]]) -> str:
    """The table report() printed for --by commit before its fast path."""
    flat = [report._flat(r) for r in rows]
    flat.append(report._flat(report.total_row(rows, "commit")))
    for r in flat[:-1]:
        r["sha"] = r["sha"][:12] + ("" if r.get("reachable", True) else " (unreachable)")
        r.pop("reachable", None)
        r["shipped"] = "yes" if r.get("shipped") else "no"
    from periscope_hooks import reconcile

    flat[-1]["shipped"] = reconcile.shipped_share(
        [float(r["cost"]) for r in rows], [r["list_cost"] for r in rows], [bool(r.get("shipped")) for r in rows]
    )
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report._table(flat, "commit")
    return buf.getvalue()


def general_commit_csv(rows: list[dict[str, Any]]) -> str:
    """The CSV report() printed for --by commit before its fast path."""
    import csv

    flat = [report._flat(r) for r in rows]
    flat.append(report._flat(report.total_row(rows, "commit")))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(c for r in flat for c in r)), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def fast_commit_csv(rows: list[tuple[Any, ...]]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report.write_commit_csv(rows)
    return buf.getvalue()


def commit_json(conn: sqlite3.Connection, window: tuple[int | None, int | None]) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report.write_commit_json(statedb.usage_by_commit(conn, *window))
    return buf.getvalue()


LINK_WINDOWS = [(None, None), (T0 + 3 * Q, None), (None, T0 + 9 * Q), (T0 + Q, T0 + 2 * Q + 5)]


def check(conn: sqlite3.Connection) -> None:
    for by in BYS:
        for since, until in WINDOWS:
            assert normalized(statedb.usage_by(conn, by, since, until)) == reference_usage_by(conn, by, since, until), (
                by,
                since,
                until,
            )
    for window in LINK_WINDOWS:
        # as JSON: key order (the report's output) included
        assert json.dumps(report.by_commit(conn, window)) == json.dumps(reference_by_commit(conn, window)), window
        # the report's streamed JSON for --by commit: the same text as json.dumps of those rows
        assert commit_json(conn, window) == json.dumps(reference_by_commit(conn, window), indent=2) + "\n"
        # and its table: the same text as the general path (_flat, the totals row, _table)
        tuples = statedb.usage_by_commit(conn, *window)
        if tuples:
            assert "\n".join(report.commit_table_lines(tuples)) + "\n" == general_commit_table(
                reference_by_commit(conn, window)
            ), window
            assert fast_commit_csv(tuples) == general_commit_csv(reference_by_commit(conn, window)), window


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_sum_exactly_what_the_messages_sum(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statedb, "ROLLUP_COMPACT_MIN_ROWS", 40)  # compactions happen within the test
    conn = open_state_db(tmp_path)
    history = History(conn, seed)
    check(conn)  # empty
    for i in range(40):
        with transaction(conn):
            history.step()
            if i % 3:  # sometimes the rollup lags behind (a read-only state folder, an older version)
                statedb.roll_up_reports(conn)
        if i % 5 == 0:
            check(conn)
        if i % 3:
            assert not statedb.reports_behind(conn)
    check(conn)
    assert statedb.meta_int(conn, statedb.Meta.REPORTS_ROWS_KEPT) > 0  # compacted at least once
    assert statedb.message_count(conn) == history.n > 300
    conn.close()


def test_a_read_only_state_reads_a_stale_rollup_exactly(tmp_path: Path) -> None:
    conn = open_state_db(tmp_path)
    history = History(conn, 7)
    with transaction(conn):
        for _ in range(10):
            history.step()
        statedb.roll_up_reports(conn)
        for _ in range(10):
            history.step()
    conn.close()
    from periscope_hooks.state import open_state_db_read_only

    ro = open_state_db_read_only(tmp_path)
    assert statedb.reports_behind(ro)
    check(ro)
    ro.close()


def test_a_state_db_from_before_the_rollups_read_only(tmp_path: Path) -> None:
    """An older state.db in a read-only state folder cannot be migrated: reports read the messages."""
    conn = open_state_db(tmp_path)
    history = History(conn, 11)
    with transaction(conn):
        for _ in range(10):
            history.step()
        statedb.roll_up_reports(conn)
        conn.execute("DROP TABLE report_cells")
        conn.execute("DROP TABLE report_links")
        conn.execute("DELETE FROM _migrations WHERE name = 'm016_reports_rollup'")
    conn.close()
    from periscope_hooks.state import open_state_db_read_only

    ro = open_state_db_read_only(tmp_path)
    check(ro)
    ro.close()


def test_commit_json_across_write_chunks() -> None:
    rows = [
        (f"{i:040x}", T0 + i, None if i % 7 else "main", "commit", "human", i % 2, i % 3 == 0)
        + (i, 1, 2, 3, 4, 5, i * 12345, i * 7, 1, 0, 0, i, i % 5)
        for i in range(2500)
    ]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        report.write_commit_json(rows)
    text = buf.getvalue()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert len(json.loads(text)) == 2500


def test_a_roll_up_committed_while_a_report_reads_is_not_counted_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marks and the statement that trusts them are one snapshot: a flusher that rolls up
    between them (its rows in the rollup, and past the mark the report read) changes nothing."""
    writer = open_state_db(tmp_path)
    history = History(writer, 5)
    with transaction(writer):
        for _ in range(10):
            history.step()
        statedb.roll_up_reports(writer)
        for _ in range(10):
            history.step()  # stored, not rolled up yet
    reader = open_state_db(tmp_path)
    expected = {by: reference_usage_by(reader, by, None, None) for by in BYS}
    real_marks = statedb._marks

    def marks_then_a_flusher_rolls_up(conn: sqlite3.Connection) -> tuple[int, int]:
        marks = real_marks(conn)
        if conn is reader and statedb.reports_behind(writer):
            with transaction(writer):
                statedb.roll_up_reports(writer)
        return marks

    monkeypatch.setattr(statedb, "_marks", marks_then_a_flusher_rolls_up)
    assert normalized(statedb.usage_by(reader, "model")) == expected["model"]
    with transaction(writer):
        history.step()
    assert json.dumps(report.by_commit(reader)) == json.dumps(reference_by_commit(reader, (None, None)))
    reader.close()
    writer.close()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_commit_table_and_csv_from_columns_equal_the_general_path(seed: int) -> None:
    """The fast table sizes its columns from whole columns (extremes of the numbers, distinct texts):
    the same text as padding every cell, whatever the values (no time, no branch, unreachable,
    negative and fractional sums, list prices blank or zero, every mix of cost sources)."""
    import random

    r = random.Random(seed)
    n = [1, 2, 30, 700][seed - 1]
    rows = []
    for _ in range(n):
        sources = [r.choice([0, 0, 1, 20, 1234]) for _ in range(4)]
        unpriced = r.random() < 0.15  # no list price known for any message: a blank list_cost, not 0
        if unpriced and r.random() < 0.5:
            sources = [0, 0, 0, r.choice([1, 5])]
        messages = sum(sources) or r.choice([0, 3])
        priced = 0 if unpriced else r.randint(1, max(messages, 1))
        rows.append(
            (
                f"{r.getrandbits(160):040x}",
                None if r.random() < 0.1 else T0 + r.randint(-(10**9), 10**11),
                r.choice([None, "main", "feature/a-much-longer-branch-name", "x", 'fix,"quoted"']),
                r.choice(["commit", "merge", "squash", "cherry-pick"]),
                r.choice(["human", "agent"]),
                r.random() > 0.1,
                r.random() > 0.5,
                messages,
                r.randint(0, 10 ** r.randint(0, 9)),
                r.randint(-5, 10 ** r.randint(0, 7)),
                r.randint(0, 10),
                r.randint(0, 10**8),
                r.randint(0, 10**3),
                r.choice([0, -1, 7, r.randint(-(10**12), 10**14)]),
                0 if unpriced else r.choice([0, 0, 5, r.randint(0, 10**10)]),
                *sources,
                priced,
            )
        )
    fast = "\n".join(report.commit_table_lines(rows)) + "\n"
    assert fast == general_commit_table([report.commit_row(t) for t in rows])
    assert fast_commit_csv(rows) == general_commit_csv([report.commit_row(t) for t in rows])


def test_column_width_of_numbers() -> None:
    # integers: the extremes; a float among them (a REAL token count summed) is read one by one
    assert report._longest_number([5, -12, 100]) == 3
    assert report._longest_number([5, 7.25, 10]) == 4
    assert report._longest_number([0.5, 123.0], "%.4f") == len("123.0000")
    assert report._longest_number([-0.00001, 3.0], "%.4f") == len("-0.0000")
    assert report._longest_number([]) == 0
