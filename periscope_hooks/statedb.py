"""The state database's SQL for ingest, linking and reports: every statement in one place.

state.py opens the database (and migrations.py shapes it); the outbox keeps its own
statements in outbox.py.  Everything else that reads or writes messages, sessions,
links, rewrites or meta goes through these functions, so a query plan can be checked
in one place (tests/test_query_plans.py runs EXPLAIN QUERY PLAN on the hot ones).

Meta keys are the constants of `Meta`, never bare strings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from periscope_hooks import events, sqlbulk


class Meta:
    """Keys of the `meta` table."""

    COMPAT_LEVEL = "compat_level"
    SPOOL_OFFSET = "spool_offset"
    SPOOL_INO = "spool_ino"
    SPOOL_TAIL = "spool_tail"  # digest of the spool's bytes before spool_offset (spool_reader.tail_digest)
    SKIPPED_LINES = "skipped_lines"
    LAST_SKIPPED = "last_skipped"
    INTEGRITY_CHECKED_MS = "integrity_checked_ms"
    REBUILT_FROM = "rebuilt_from"
    LAST_DELIVERY_ERROR = "last_delivery_error"
    RETRY_AFTER_UNTIL_MS = "retry_after_until_ms"
    DELIVERY_SINK = "delivery_sink"
    # Records a receiver took but dropped (OTLP partial success): never resent, so counted here.
    PARTIAL_REJECTED_TOTAL = "partial_rejected_total"
    PARTIAL_REJECTED_LAST = "partial_rejected_last"
    RECONCILE_FINGERPRINT = "reconcile_fingerprint"  # refs + linked commits at the last reconciliation
    RECONCILE_SEEN = "reconcile_seen"  # what reconciliation compared already (reconcile.Seen, from the spool)
    RECONCILE_MAIN_LINE = "reconcile_main_line"  # what reconcile_status's `shipped` was measured against
    # The newest link id and rewrite id reconcile_status was brought up to (reconcile_changes):
    # links newer than the first, and the commits rewrites newer than the second moved, are the
    # only linked commits a later run may not have a row for.
    RECONCILE_MARKS = "reconcile_marks"
    AGENTS_RECOVERY_MARK = "agents_recovery_link_id"  # the highest agent link recovery looked at
    AGENTS_FOLLOWED = "agents_recovered_sessions"  # sessions recovery captured, followed while they go on
    # The report rollups (report_cells, report_links) hold every message up to this rowid and,
    # per link, every message linked to a link up to this id (roll_up_reports).
    REPORTS_MESSAGE_MARK = "reports_message_mark"
    REPORTS_LINK_MARK = "reports_link_mark"
    REPORTS_ROWS_ADDED = "reports_rows_added"  # rollup rows appended since the last compaction
    REPORTS_ROWS_KEPT = "reports_rows_kept"  # rollup rows the last compaction left
    # Set once the messages stored before list prices (migration m010) were priced (ingest/old_prices.py).
    OLD_MESSAGES_PRICED = "old_messages_priced"
    # The local stores (events.db) this state.db's events went into: {path: its `generation`}; a
    # store made anew at a known path (a damaged one moved aside, deleted) gets them all again
    # (local_store_refill.py).
    LOCAL_STORE_GENERATION = "local_store_generation"


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def raise_compat_level(conn: sqlite3.Connection, level: int) -> None:
    """Record that state.db now needs at least `level` to be read (never lowered: an older
    version's migrate after a newer one's keeps the newer level)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value ="
        " max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        (Meta.COMPAT_LEVEL, str(level)),
    )


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    value = get_meta(conn, key)
    return int(value) if value and value.lstrip("-").isdigit() else 0


# --- spool bookkeeping ---------------------------------------------------------------------------
def count_skipped_line(conn: sqlite3.Connection, where: str) -> None:
    set_meta(conn, Meta.SKIPPED_LINES, str(meta_int(conn, Meta.SKIPPED_LINES) + 1))
    set_meta(conn, Meta.LAST_SKIPPED, where)


def defer_record(conn: sqlite3.Connection, spool_offset: int, version: str, line: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO deferred_records (spool_offset, version, line) VALUES (?, ?, ?)",
        (spool_offset, version, line),
    )


def deferred_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM deferred_records").fetchone()[0])


# --- sessions --------------------------------------------------------------------------------------
def upsert_session(
    conn: sqlite3.Connection, sid: str, title: Any, parent_id: Any, agent: Any, time_ms: Any, coding_agent: str
) -> None:
    conn.execute(
        "INSERT INTO sessions (id, title, parent_id, agent, time_ms, coding_agent) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET title = coalesce(excluded.title, title),"
        " parent_id = coalesce(excluded.parent_id, parent_id), agent = coalesce(excluded.agent, agent),"
        " coding_agent = excluded.coding_agent",
        (sid, title, parent_id, agent, time_ms, coding_agent),
    )


def ensure_session(conn: sqlite3.Connection, sid: Any) -> None:
    conn.execute("INSERT OR IGNORE INTO sessions (id) VALUES (?)", (sid,))


def session_row(conn: sqlite3.Connection, sid: Any) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
    return row


def session_parents_and_titles(conn: sqlite3.Connection) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every session's parent id and title, by session id (report --by session's tree)."""
    parents: dict[str, Any] = {}
    titles: dict[str, Any] = {}
    for sid, parent_id, title in conn.execute("SELECT id, parent_id, title FROM sessions"):
        parents[str(sid)] = parent_id
        titles[str(sid)] = title
    return parents, titles


def sessions_by_id(conn: sqlite3.Connection, ids: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sid in set(ids):
        row = conn.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        if row is not None:
            out[sid] = row
    return out


# --- messages --------------------------------------------------------------------------------------
MESSAGE_COLUMNS = (
    "id",
    "session_id",
    "worktree",
    "time_ms",
    "provider",
    "model",
    "agent",
    "input",
    "output",
    "reasoning",
    "cache_read",
    "cache_write",
    "cost",
    "branch",
    "sha",
    "spool_offset",
    "link_id",
    # list price and cost provenance (pricing.py, migration m010_pricing_list_cost)
    "list_cost_micro",
    "cost_source",
    "price_snapshot",
    "cost_reported",
    "coding_agent",
    "cache_write_1h",  # the part of cache_write kept for an hour (m019_messages_cache_write_1h)
    "web_searches",  # server-side web searches (m021_messages_web_searches_speed)
    "speed",  # "fast" for a fast-mode request, NULL standard (m021)
)
_INSERT_MESSAGE_HEAD = f"INSERT OR IGNORE INTO messages ({', '.join(MESSAGE_COLUMNS)})"
_MESSAGE_VALUES = f"({', '.join('?' * len(MESSAGE_COLUMNS))})"
INSERT_MESSAGE_SQL = f"{_INSERT_MESSAGE_HEAD} VALUES {_MESSAGE_VALUES}"


def insert_message(conn: sqlite3.Connection, values: Sequence[Any]) -> bool:
    """Store a message (values in MESSAGE_COLUMNS order); False when its id was stored before."""
    return conn.execute(INSERT_MESSAGE_SQL, values).rowcount > 0


def insert_messages(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Store messages (values in MESSAGE_COLUMNS order) in one statement; how many were new."""
    return sqlbulk.insert_rows(conn, _INSERT_MESSAGE_HEAD, _MESSAGE_VALUES, rows)


def ensure_sessions(conn: sqlite3.Connection, sids: Iterable[Any]) -> None:
    conn.executemany("INSERT OR IGNORE INTO sessions (id) VALUES (?)", [(sid,) for sid in sids])


def message(conn: sqlite3.Connection, mid: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM messages WHERE id = ?", (mid,)).fetchone()
    return row


def message_is_known(conn: sqlite3.Connection, mid: str) -> bool:
    return conn.execute("SELECT 1 FROM messages WHERE id = ?", (mid,)).fetchone() is not None


# The partial index messages_pending holds exactly a worktree's unlinked messages.  Left to
# itself the planner prefers messages_worktree_time and walks every message the worktree ever
# had (22 ms at 100k messages, 200-250 ms at 1M, per commit: ingest became O(messages x commits));
# on the partial index both statements cost 0.2 ms.  INDEXED BY makes that a hard requirement:
# should the index ever go, the statement fails loudly instead of turning into a scan.
PENDING_SUMMARY_SQL = (
    "SELECT count(*), max(time_ms) FROM messages INDEXED BY messages_pending WHERE worktree = ? AND link_id IS NULL"
)
LINK_PENDING_SQL = "UPDATE messages INDEXED BY messages_pending SET link_id = ? WHERE worktree = ? AND link_id IS NULL"
LAST_MESSAGE_TIME_SQL = "SELECT max(time_ms) FROM messages WHERE worktree = ?"


def pending_summary(conn: sqlite3.Connection, worktree: str) -> tuple[int, int | None]:
    """(count, newest time) of the worktree's messages not linked to a commit yet."""
    n, newest = conn.execute(PENDING_SUMMARY_SQL, (worktree,)).fetchone()
    return int(n), newest


def link_pending_messages(conn: sqlite3.Connection, link_id: int, worktree: str) -> int:
    return conn.execute(LINK_PENDING_SQL, (link_id, worktree)).rowcount


def last_message_time(conn: sqlite3.Connection, worktree: str) -> int | None:
    value = conn.execute(LAST_MESSAGE_TIME_SQL, (worktree,)).fetchone()[0]
    return None if value is None else int(value)


def pending_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM messages WHERE link_id IS NULL").fetchone()[0])


def message_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


def messages_with_sessions(
    conn: sqlite3.Connection, since_ms: int | None = None, until_ms: int | None = None
) -> list[sqlite3.Row]:
    """Messages sent in [since_ms, until_ms) (None: open), with their session's title and parent."""
    return conn.execute(
        "SELECT m.*, s.title, s.parent_id FROM messages m LEFT JOIN sessions s ON s.id = m.session_id"
        " WHERE (? IS NULL OR m.time_ms >= ?) AND (? IS NULL OR m.time_ms < ?)"
        " ORDER BY m.time_ms, m.spool_offset",
        (since_ms, since_ms, until_ms, until_ms),
    ).fetchall()


def link_messages(conn: sqlite3.Connection, link_ids: Sequence[int]) -> list[sqlite3.Row]:
    """The messages linked to these links, in spool order."""
    if len(link_ids) == 1:
        return conn.execute("SELECT * FROM messages WHERE link_id = ? ORDER BY spool_offset", (link_ids[0],)).fetchall()
    return conn.execute(
        f"SELECT * FROM messages WHERE link_id IN ({','.join('?' * len(link_ids))}) ORDER BY spool_offset",
        list(link_ids),
    ).fetchall()


# What a commit event reads of each linked message (events.usage_summary), in that order.
EVENT_MESSAGE_COLUMNS = events.EVENT_MESSAGE_FIELDS
LINK_MESSAGES_FOR_EVENT_SQL = (
    f"SELECT {', '.join(EVENT_MESSAGE_COLUMNS)} FROM messages WHERE link_id = ? ORDER BY spool_offset"
)


# Linking a commit's pending messages and reading them for its event in one statement (RETURNING
# came in SQLite 3.35; older ones run the UPDATE, then link_messages_for_event).  The second
# statement walked messages_link and the table again for rows the UPDATE had just visited: ~150 us
# a commit, a sixth of linking one.
LINK_PENDING_RETURNING_SQL = f"{LINK_PENDING_SQL} RETURNING spool_offset, {', '.join(EVENT_MESSAGE_COLUMNS)}"
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


def link_pending_messages_for_event(conn: sqlite3.Connection, link_id: int, worktree: str) -> list[tuple[Any, ...]]:
    """link_pending_messages(), returning what link_messages_for_event() then reads (the link is
    new: its messages are exactly those it takes now), in spool order."""
    if not _HAS_RETURNING:
        link_pending_messages(conn, link_id, worktree)
        return link_messages_for_event(conn, link_id)
    cur = conn.cursor()
    cur.row_factory = None
    rows = cur.execute(LINK_PENDING_RETURNING_SQL, (link_id, worktree)).fetchall()
    rows.sort(key=lambda r: (r[0] is not None, r[0] or 0))  # RETURNING has no order; NULLs first, as ORDER BY
    return [r[1:] for r in rows]


def link_messages_for_event(conn: sqlite3.Connection, link_id: int) -> list[tuple[Any, ...]]:
    """A link's messages in spool order, as tuples of EVENT_MESSAGE_COLUMNS (events.usage_summary)."""
    cur = conn.cursor()
    cur.row_factory = None
    return cur.execute(LINK_MESSAGES_FOR_EVENT_SQL, (link_id,)).fetchall()


# --- links (a commit that took usage) ----------------------------------------------------------------
def held_link_for_message(conn: sqlite3.Connection, mid: str, *tool_use_ids: str) -> sqlite3.Row | None:
    """The agent commit waiting (held) for this in-flight message, or for a tool call in it, if any."""
    keys = [mid, *tool_use_ids]
    row: sqlite3.Row | None = conn.execute(
        f"SELECT * FROM links WHERE agent_message_id IN ({','.join('?' * len(keys))}) AND emitted = 0"
        " ORDER BY id LIMIT 1",
        keys,
    ).fetchone()
    return row


def held_message_ids(conn: sqlite3.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute("SELECT agent_message_id FROM links WHERE emitted = 0 AND agent_message_id IS NOT NULL")
    }


def set_link_agent_message(conn: sqlite3.Connection, link_id: int, mid: str) -> None:
    conn.execute("UPDATE links SET agent_message_id = ? WHERE id = ?", (mid, link_id))


# --- agent tool calls (Claude Code: which message held which tool call) ------------------------------
def record_tool_uses(conn: sqlite3.Connection, mid: str, tool_use_ids: Sequence[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO agent_tool_uses (tool_use_id, message_id) VALUES (?, ?)",
        [(t, mid) for t in tool_use_ids],
    )


def record_tool_uses_of(conn: sqlite3.Connection, pairs: Sequence[tuple[str, str]]) -> None:
    """(tool_use_id, message_id) pairs of many messages in one statement."""
    conn.executemany("INSERT OR IGNORE INTO agent_tool_uses (tool_use_id, message_id) VALUES (?, ?)", pairs)


def message_for_tool_use(conn: sqlite3.Connection, tool_use_id: str) -> str | None:
    row = conn.execute("SELECT message_id FROM agent_tool_uses WHERE tool_use_id = ?", (tool_use_id,)).fetchone()
    return str(row[0]) if row is not None else None


def insert_link(
    conn: sqlite3.Connection,
    *,
    worktree: str,
    sha: str,
    kind: str,
    origin: str,
    branch: Any,
    parents_json: str,
    time_ms: int,
    agent_session_id: Any,
    agent_message_id: Any,
    hold_until_ms: int | None,
    emitted: bool = False,
) -> int | None:
    """A new link, or None when this (sha, kind) was linked before, in any worktree.  `emitted`:
    its event is queued in the same transaction (mark_link_emitted's UPDATE saved).

    Any worktree: the commit event's id is (repository, sha, kind), so the same commit made again in
    a second worktree (the same tree, parents, author and times) made a second event under the
    first one's id, which every receiver drops, and the usage it took was in no event while
    `report` counted it.  It stays pending for that worktree's next commit instead, as for a commit
    made again in the same worktree (docs/git-operations.md).  The table's UNIQUE (sha, kind,
    worktree) index answers the check: a statement of its own, 1-2 us; as `INSERT ... SELECT ...
    WHERE NOT EXISTS` it cost 14 us more a link (SQLite copies a SELECT reading the table it
    inserts into to a temporary table first), 5 % of a first ingest."""
    if conn.execute("SELECT 1 FROM links WHERE sha = ? AND kind = ?", (sha, kind)).fetchone() is not None:
        return None
    cur = conn.execute(
        "INSERT OR IGNORE INTO links (worktree, sha, current_sha, kind, origin, branch, parents, time_ms,"
        " agent_session_id, agent_message_id, hold_until_ms, emitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            worktree,
            sha,
            sha,
            kind,
            origin,
            branch,
            parents_json,
            time_ms,
            agent_session_id,
            agent_message_id,
            hold_until_ms,
            int(emitted),
        ),
    )
    return cur.lastrowid if cur.rowcount else None


def link(conn: sqlite3.Connection, link_id: int) -> sqlite3.Row:
    row: sqlite3.Row = conn.execute("SELECT * FROM links WHERE id = ?", (link_id,)).fetchone()
    return row


def held_link(conn: sqlite3.Connection, sha: str, kind: str, worktree: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM links WHERE sha = ? AND kind = ? AND worktree = ? AND emitted = 0", (sha, kind, worktree)
    ).fetchone()
    return row


def mark_link_emitted(conn: sqlite3.Connection, link_id: int, note: str | None) -> None:
    conn.execute("UPDATE links SET emitted = 1, note = ? WHERE id = ?", (note, link_id))


def expired_holds(conn: sqlite3.Connection, now: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM links WHERE emitted = 0 AND hold_until_ms IS NOT NULL AND hold_until_ms <= ? ORDER BY id",
        (now,),
    ).fetchall()


def held_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM links WHERE emitted = 0").fetchone()[0])


def links_of_commit(conn: sqlite3.Connection, sha: str) -> list[sqlite3.Row]:
    """Every link whose usage now belongs to `sha` (its own and those moved to it by rewrites)."""
    return conn.execute("SELECT * FROM links WHERE current_sha = ? ORDER BY id", (sha,)).fetchall()


def commits_in_link_order(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT current_sha FROM links GROUP BY current_sha ORDER BY min(id)")]


# --- reports: aggregated in SQL ------------------------------------------------------------------------
# Costs are summed exactly as integers of 1e-10 dollars (the precision reports round to), never
# as floats: SUM(REAL) drifts, and loading every message into Python to fsum them took 9-10 s and
# 1.2 GB at 1M messages.
COST_UNITS_PER_DOLLAR = 10**10
USAGE_AGGREGATES = (
    "count(*) AS messages, sum(input) AS input, sum(output) AS output, sum(reasoning) AS reasoning,"
    " sum(cache_read) AS cache_read, sum(cache_write) AS cache_write,"
    " sum(CAST(round(cost * 1e10) AS INTEGER)) AS cost_units,"
    # list prices are integer micro-dollars already (issue 13); messages per cost source
    " sum(coalesce(list_cost_micro, 0)) AS list_cost_micro,"
    " sum(cost_source = 'reported') AS src_reported, sum(cost_source = 'estimated') AS src_estimated,"
    " sum(cost_source = 'subscription') AS src_subscription,"
    " sum(cost_source IS NULL OR cost_source NOT IN ('reported', 'estimated', 'subscription')) AS src_unknown,"
    # the messages with a list price: a row none of whose messages has one shows no list cost, not 0
    " count(list_cost_micro) AS list_priced"
)
# A group's first message in (time, spool order), NULL times first: the order reports list groups in.
_FIRST_TIME = "min(coalesce(time_ms, -9223372036854775807)) AS first_ms"
DAY_BUCKET_MS = 15 * 60_000
GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("provider", "model"),
    "branch": ("branch",),
    "session": ("session_id",),
    "agent": ("coalesce(coding_agent, 'opencode')",),  # the coding agent (issue 14)
    # Quarter hours: every UTC offset in use is a multiple of 15 minutes, so each quarter lies in one
    # local day, which the report then takes from Python's localtime (the day_of the dashboard uses).
    "day": (f"coalesce(time_ms, 0) / {DAY_BUCKET_MS}",),
}
_IN_WINDOW = "(? IS NULL OR time_ms >= ?) AND (? IS NULL OR time_ms < ?)"


def usage_by(
    conn: sqlite3.Connection, by: str, since_ms: int | None = None, until_ms: int | None = None
) -> list[sqlite3.Row]:
    """One row per group of the messages sent in [since_ms, until_ms): k0.. (the key), the usage
    aggregates, first_ms; in no particular order.  Read from the rollup (report_cells), whatever
    it lacks read from the messages themselves: the same sums as grouping every message."""
    keys = _CELL_GROUP_KEYS[by]
    cols = ", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))
    with _snapshot(conn):
        source, params = _cells_in_window(conn, since_ms, until_ms)
        rows: list[sqlite3.Row] = conn.execute(
            f"SELECT {cols}, {_RESUM}, min(first_ms) AS first_ms FROM ({source}) GROUP BY {', '.join(keys)}", params
        ).fetchall()
    return rows


def first_spool_offset(
    conn: sqlite3.Connection,
    by: str,
    key: Sequence[Any],
    first_ms: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> int:
    """Where a group's first message sits in the spool, among its messages of time `first_ms`
    (asked only to order two groups whose first messages share a millisecond)."""
    where = " AND ".join(f"{k} IS ?" for k in GROUP_KEYS[by])
    value = conn.execute(
        f"SELECT min(spool_offset) FROM messages WHERE {where} AND coalesce(time_ms, -9223372036854775807) = ?"
        f" AND {_IN_WINDOW}",
        (*key, first_ms, since_ms, since_ms, until_ms, until_ms),
    ).fetchone()[0]
    return int(value or 0)


def usage_by_commit(
    conn: sqlite3.Connection, since_ms: int | None = None, until_ms: int | None = None
) -> list[tuple[Any, ...]]:
    """One row per commit holding usage now (rewritten commits' usage under their replacements),
    in the order the commits were first linked, whose time (its newest link's) is in
    [since_ms, until_ms): sha, time_ms, branch, kind and origin (of the commit's own link, made when
    it was created, else of its newest link), reachable and shipped (reconciliation's cache; a commit
    it has not seen is reachable and not shipped), and the usage aggregates, summed from
    report_links plus whatever that rollup lacks.  Plain tuples in that order (50,000 commits:
    sqlite3.Row's lookups by name cost more than the rest of the row)."""
    with _snapshot(conn):
        return _usage_by_commit(conn, since_ms, until_ms)


def _usage_by_commit(conn: sqlite3.Connection, since_ms: int | None, until_ms: int | None) -> list[tuple[Any, ...]]:
    # Each link's sums are read in SQL (the rollup, plus what it lacks), in link order; the links
    # are grouped by commit here.  Grouping them in SQL sorted 50,000 wide rows by commit, then by
    # first link: the statement alone took 0.47 s of CPU at 1M messages, where the scan takes 0.15 s
    # and this grouping about 0.1 s (nearly every commit has one link: its group is that row).
    # NOT INDEXED: the links in id order, not walked through links_current with a random table
    # lookup per link.
    message_mark, link_mark = marks = _marks(conn)
    params: tuple[int, ...]
    if _has_rollups(conn) and marks == _newest(conn):
        # The rollup holds every message (what a flush leaves): nothing to add to it.  Joining the
        # empty catch-up and adding its zeros cost 0.06 of the statement's 0.4 s at 50,000 links.
        catch_up, params = "", ()
        sums = ", ".join(f"coalesce(r.{c}, 0)" for c in _SUMS)
        rollup = "report_links"
    else:
        catch_up = (
            f"WITH d AS (SELECT link_id, {_RESUM} FROM ({_LINKS_OF_NEW_MESSAGES} UNION ALL"
            f" {_NEW_LINKS_OF_OLD_MESSAGES}) GROUP BY link_id) "
        )
        params = (message_mark, _NO_END, link_mark, _NO_END, message_mark)
        sums = ", ".join(f"coalesce(r.{c}, 0) + coalesce(d.{c}, 0)" for c in _SUMS)
        rollup = "report_links" if _has_rollups(conn) else _NO_LINK_ROLLUP
    cursor = conn.cursor()
    cursor.row_factory = None
    status = reconcile_status(conn)
    links = cursor.execute(
        f"{catch_up}SELECT l.id, l.current_sha, l.sha, l.time_ms, l.branch, l.kind, l.origin, {sums}"
        f" FROM links l NOT INDEXED LEFT JOIN {rollup} r ON r.link_id = l.id"
        f"{' LEFT JOIN d ON d.link_id = l.id' if catch_up else ''} ORDER BY l.id",
        params,
    )
    # current_sha -> its one link's row, or the list of its links' rows (in id order either way).
    # Read from the cursor, and each group let go of as its row is made: the link rows and the
    # result are never all held at once (`report --by commit` at 1M: peak RSS 74 MB; 84 MB
    # holding both; 61 MB when SQL grouped, at 0.92 s of CPU against 0.73 s now).
    by_sha: dict[str, Any] = {}
    for link in links:
        seen = by_sha.get(link[1])
        if seen is None:
            by_sha[link[1]] = link
        elif type(seen) is list:
            seen.append(link)
        else:
            by_sha[link[1]] = [seen, link]
    rows: list[tuple[Any, ...]] = []
    for sha in list(by_sha):
        group = by_sha.pop(sha)
        if type(group) is tuple:  # one link: its own time, head and sums
            time_ms, head, sums_of = group[3], group, group[7:]
        else:
            times = [g[3] for g in group if g[3] is not None]
            time_ms = max(times) if times else None
            # its own link (made when the commit was), the newest if several; else its newest link
            own = [g for g in group if g[2] == g[1]]
            head = own[-1] if own else group[-1]
            sums_of = tuple(map(sum, zip(*(g[7:] for g in group))))
        if since_ms is not None and (time_ms or 0) < since_ms:
            continue
        if until_ms is not None and (time_ms or 0) >= until_ms:
            continue
        reachable, shipped = status.get(sha, (True, False))  # not seen by reconciliation yet
        rows.append((sha, time_ms, head[4], head[5], head[6], reachable, shipped, *sums_of))
    return rows


# Values one IN (...) list takes: SQLite before 3.32 takes at most 999 parameters in a statement.
IN_LIST_SIZE = 500


def _in_lists(values: Sequence[Any]) -> Iterator[tuple[str, list[Any]]]:
    """`values` a statement's worth at a time, each with the `?,?,...` of its IN (...)."""
    for i in range(0, len(values), IN_LIST_SIZE):
        chunk = list(values[i : i + IN_LIST_SIZE])
        yield ",".join("?" * len(chunk)), chunk


def session_heads(conn: sqlite3.Connection, ids: Sequence[Any]) -> dict[Any, sqlite3.Row]:
    out: dict[Any, sqlite3.Row] = {}
    for marks, chunk in _in_lists(ids):
        for row in conn.execute(f"SELECT id, title, parent_id FROM sessions WHERE id IN ({marks})", chunk):
            out[row["id"]] = row
    return out


def commits_in_link_order_with_time(conn: sqlite3.Connection) -> list[tuple[str, int | None]]:
    """Each commit holding usage, with its time (the latest link's: a rewrite's replacement is newer)."""
    return [
        (str(r[0]), r[1])
        for r in conn.execute("SELECT current_sha, max(time_ms) FROM links GROUP BY current_sha ORDER BY min(id)")
    ]


# --- report rollups (issue 11: every `report --by` at 1M messages in <= 1 s) --------------------
# Grouping 1M messages in SQL still took 1-2 s (a sort of every message for each report), so the
# reports read small rollups instead: report_cells sums the messages per quarter hour and
# (provider, model, branch, session, coding agent); report_links sums them per link.  Both are
# derived data, appended to by roll_up_reports (after each ingest batch, and before a report) and
# exact: integer sums, and a stored message's grouped and summed columns never change (the only
# updates to messages set a NULL link_id to a link made at that moment, or move a pending
# message's worktree).  Reads add whatever a rollup lacks (messages past its mark, and old
# messages linked to newer links), so a stale rollup (a read-only state folder) only costs time.
_SUMS = (
    "messages",
    "input",
    "output",
    "reasoning",
    "cache_read",
    "cache_write",
    "cost_units",
    "list_cost_micro",
    "src_reported",
    "src_estimated",
    "src_subscription",
    "src_unknown",
    "list_priced",
)
_RESUM = ", ".join(f"sum({c}) AS {c}" for c in _SUMS)
_CELL_KEYS = ("bucket", "provider", "model", "branch", "session_id", "coding_agent")
_CELL_COLUMNS = ", ".join((*_CELL_KEYS, *_SUMS, "first_ms"))
# The rollup's bucket of a message: a quarter hour (GROUP_KEYS["day"]), NULL when it has no time.
_BUCKET = f"CASE WHEN time_ms IS NULL THEN NULL ELSE time_ms / {DAY_BUCKET_MS} END"
_CELL_GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("provider", "model"),
    "branch": ("branch",),
    "session": ("session_id",),
    "agent": ("coalesce(coding_agent, 'opencode')",),
    "day": ("coalesce(bucket, 0)",),
}


def _cells_of_messages(where: str, index: str = "") -> str:
    """Rollup cells (columns _CELL_COLUMNS) of the messages matching `where`."""
    return (
        f"SELECT {_BUCKET} AS bucket, provider, model, branch, session_id, coding_agent, {USAGE_AGGREGATES},"
        f" {_FIRST_TIME} FROM messages{index} WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6"
    )


_LINKS_OF_NEW_MESSAGES = (
    f"SELECT link_id, {USAGE_AGGREGATES} FROM messages WHERE rowid > ? AND rowid <= ? AND link_id IS NOT NULL"
    " GROUP BY link_id"
)
_NEW_LINKS_OF_OLD_MESSAGES = (
    f"SELECT link_id, {USAGE_AGGREGATES} FROM messages INDEXED BY messages_link"
    " WHERE link_id > ? AND link_id <= ? AND rowid <= ? GROUP BY link_id"
)
_NO_END = 2**63 - 1
# Distinct worktrees of the messages, one index seek each (messages_worktree_time), for windows
# whose edges cut a quarter hour: those messages are read by (worktree, time), never by a scan.
_WORKTREES = (
    "WITH RECURSIVE wt(v) AS (SELECT (SELECT min(worktree) FROM messages INDEXED BY messages_worktree_time)"
    " UNION ALL SELECT (SELECT min(worktree) FROM messages INDEXED BY messages_worktree_time WHERE worktree > wt.v)"
    " FROM wt WHERE wt.v IS NOT NULL) SELECT v FROM wt WHERE v IS NOT NULL"
)


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """A nested transaction: kept when the block ends, rolled back (and the error raised) when it
    raises, the enclosing transaction going on either way."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read snapshot for the marks and the statement that trusts them: between two separate
    statements a flusher could commit a roll-up, and its rows would be counted twice (in the
    rollup and as rows past the old mark).  A savepoint nests inside a caller's transaction."""
    with savepoint(conn, "report_read"):
        yield


def _marks(conn: sqlite3.Connection) -> tuple[int, int]:
    """The rollups' marks; (0, 0) when there are no rollups (a state.db made before them, opened
    read-only, cannot be migrated): everything is then read from the messages."""
    if not _has_rollups(conn):
        return 0, 0
    return meta_int(conn, Meta.REPORTS_MESSAGE_MARK), meta_int(conn, Meta.REPORTS_LINK_MARK)


def _has_rollups(conn: sqlite3.Connection) -> bool:
    """The rollups as this code writes them (m018's list_priced too: a state.db opened read-only
    cannot be migrated, and its older rollups are then left unread)."""
    return (
        conn.execute("SELECT 1 FROM pragma_table_info('report_links') WHERE name = 'list_priced'").fetchone()
        is not None
    )


# Stands in for a missing report_links (same columns, no rows).
_NO_LINK_ROLLUP = f"(SELECT NULL AS link_id, {', '.join(f'NULL AS {c}' for c in _SUMS)} WHERE 0)"


def _cells_in_window(conn: sqlite3.Connection, since_ms: int | None, until_ms: int | None) -> tuple[str, list[Any]]:
    """A UNION ALL of rollup cells that, summed, are exactly the messages sent in [since, until)
    (every message when both are None): the rollup's quarter hours wholly inside the window, the
    messages past the rollup's mark, and the rollup's messages in a quarter hour a window edge cuts."""
    mark = _marks(conn)[0]
    parts = [_cells_of_messages(f"rowid > ? AND {_IN_WINDOW}")]
    params: list[Any] = [mark, since_ms, since_ms, until_ms, until_ms]
    if not mark:  # nothing rolled up (yet): the messages are all there is
        return parts[0], params
    if since_ms is None and until_ms is None:
        parts.insert(0, f"SELECT {_CELL_COLUMNS} FROM report_cells")
        return " UNION ALL ".join(parts), params
    # Quarter hours from 1 on start at b * DAY_BUCKET_MS exactly (time_ms / DAY_BUCKET_MS floors
    # there); messages before them, or with no time, are never in a bounded window's cells.
    first = max(1, -(-since_ms // DAY_BUCKET_MS)) if since_ms is not None else 1
    end = until_ms // DAY_BUCKET_MS if until_ms is not None else _NO_END
    edges: list[tuple[int | None, int | None]] = []
    if end > first:
        parts.insert(0, f"SELECT {_CELL_COLUMNS} FROM report_cells WHERE bucket >= ? AND bucket < ?")
        params[:0] = [first, end]
        edges.append((since_ms, first * DAY_BUCKET_MS))
        if until_ms is not None:
            edges.append((end * DAY_BUCKET_MS, until_ms))
    else:
        edges.append((since_ms, until_ms))
    worktrees = [r[0] for r in conn.execute(_WORKTREES)]
    marks = ",".join("?" * len(worktrees))
    for lo, hi in edges:
        if lo is not None and hi is not None and lo >= hi:
            continue
        # Plain bounds (no `? IS NULL OR`): only those make a range of the index's time column.
        bounds = [b for b in (("time_ms >= ?", lo), ("time_ms < ?", hi)) if b[1] is not None]
        window = " AND ".join(b[0] for b in bounds)
        values = [b[1] for b in bounds]
        if worktrees:
            parts.append(
                _cells_of_messages(
                    f"worktree IN ({marks}) AND {window} AND rowid <= ?", " INDEXED BY messages_worktree_time"
                )
            )
            params += [*worktrees, *values, mark]
        parts.append(
            _cells_of_messages(f"worktree IS NULL AND {window} AND rowid <= ?", " INDEXED BY messages_worktree_time")
        )
        params += [*values, mark]
    return " UNION ALL ".join(parts), params


# report_cells is appended to (a cell's key may hold NULLs, which a UNIQUE key cannot match), and
# re-summed once the rows appended since the last compaction outnumber the rows it left (and at
# least this many): appends stay cheap, the table stays small.  report_links has one row per link.
ROLLUP_COMPACT_MIN_ROWS = 4096


def reports_behind(conn: sqlite3.Connection) -> bool:
    """Whether a message or link was stored since the last roll_up_reports (two index lookups)."""
    return _marks(conn) != _newest(conn)


def _newest(conn: sqlite3.Connection) -> tuple[int, int]:
    return (
        int(conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0]),
        int(conn.execute("SELECT coalesce(max(id), 0) FROM links").fetchone()[0]),
    )


def roll_up_reports(conn: sqlite3.Connection) -> None:
    """Bring report_cells and report_links up to the newest message and link; inside the
    caller's write transaction (ingest's batch, or report's own)."""
    m, links = _marks(conn)
    new_m, new_links = _newest(conn)
    if (new_m, new_links) == (m, links):
        return
    added = conn.execute(
        f"INSERT INTO report_cells ({_CELL_COLUMNS}) {_cells_of_messages('rowid > ? AND rowid <= ?')}", (m, new_m)
    ).rowcount
    into_links = (
        f"INSERT INTO report_links (link_id, {', '.join(_SUMS)}) {{}} ON CONFLICT (link_id) DO UPDATE SET "
        + ", ".join(f"{c} = coalesce({c}, 0) + coalesce(excluded.{c}, 0)" for c in _SUMS)  # sum() of NULLs is NULL
    )
    conn.execute(into_links.format(_LINKS_OF_NEW_MESSAGES), (m, new_m))
    conn.execute(into_links.format(_NEW_LINKS_OF_OLD_MESSAGES), (links, new_links, m))
    set_meta(conn, Meta.REPORTS_MESSAGE_MARK, str(new_m))
    set_meta(conn, Meta.REPORTS_LINK_MARK, str(new_links))
    added += meta_int(conn, Meta.REPORTS_ROWS_ADDED)
    if added < max(ROLLUP_COMPACT_MIN_ROWS, meta_int(conn, Meta.REPORTS_ROWS_KEPT)):
        set_meta(conn, Meta.REPORTS_ROWS_ADDED, str(added))
        return
    kept = _compact(conn)
    set_meta(conn, Meta.REPORTS_ROWS_ADDED, "0")
    set_meta(conn, Meta.REPORTS_ROWS_KEPT, str(kept))


def empty_report_rollups(conn: sqlite3.Connection) -> None:
    """Forget the rollups (the next roll_up_reports sums every message again): for a change to
    stored messages' summed columns, which the rollups never expect."""
    conn.execute("DELETE FROM report_cells")
    conn.execute("DELETE FROM report_links")
    for key in (Meta.REPORTS_MESSAGE_MARK, Meta.REPORTS_LINK_MARK, Meta.REPORTS_ROWS_ADDED, Meta.REPORTS_ROWS_KEPT):
        set_meta(conn, key, None)


def unpriced_messages(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """(rowid, provider, model, the five token counts, time_ms, cost, cost_reported, cache_write_1h)
    of every message without a cost source: stored before list prices (m010).  A scan, run once."""
    return conn.execute(
        "SELECT rowid, provider, model, input, output, reasoning, cache_read, cache_write, time_ms, cost,"
        " cost_reported, cache_write_1h FROM messages WHERE cost_source IS NULL"
    ).fetchall()


def set_message_prices(conn: sqlite3.Connection, prices: Sequence[tuple[Any, ...]]) -> None:
    """(list_cost_micro, cost_source, price_snapshot, rowid) for each message to price."""
    conn.executemany(
        "UPDATE messages SET list_cost_micro = ?, cost_source = ?, price_snapshot = ? WHERE rowid = ?", prices
    )


def _compact(conn: sqlite3.Connection) -> int:
    """Re-sum report_cells to one row per cell; the rows left."""
    keys = ", ".join(_CELL_KEYS)
    conn.execute(
        f"CREATE TEMP TABLE rollup_compact AS SELECT {keys}, {_RESUM}, min(first_ms) FROM report_cells GROUP BY {keys}"
    )
    try:
        conn.execute("DELETE FROM report_cells")
        return int(
            conn.execute(f"INSERT INTO report_cells ({_CELL_COLUMNS}) SELECT * FROM temp.rollup_compact").rowcount
        )
    finally:
        conn.execute("DROP TABLE temp.rollup_compact")


# --- worktree facts (a squash merge waiting for its commit) -----------------------------------------
def squash_state(conn: sqlite3.Connection, worktree: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT squash_pending, squash_reflog FROM worktree_state WHERE worktree = ?", (worktree,)
    ).fetchone()
    return row


def set_squash_pending(conn: sqlite3.Connection, worktree: str, reflog_json: str) -> None:
    conn.execute(
        "INSERT INTO worktree_state (worktree, squash_pending, squash_reflog) VALUES (?, 1, ?)"
        " ON CONFLICT(worktree) DO UPDATE SET squash_pending = 1, squash_reflog = excluded.squash_reflog",
        (worktree, reflog_json),
    )


def clear_squash_pending(conn: sqlite3.Connection, worktree: str) -> None:
    conn.execute("UPDATE worktree_state SET squash_pending = 0 WHERE worktree = ?", (worktree,))


# --- worktree identities (a moved worktree keeps its pending usage) -----------------------------------
def remember_worktree(conn: sqlite3.Connection, path: str, identity: str) -> None:
    conn.execute(
        "INSERT INTO worktree_ids (path, identity) VALUES (?, ?) ON CONFLICT(path) DO UPDATE SET identity = excluded.identity",
        (path, identity),
    )


def worktree_identity(conn: sqlite3.Connection, path: str) -> str | None:
    row = conn.execute("SELECT identity FROM worktree_ids WHERE path = ?", (path,)).fetchone()
    return None if row is None else str(row[0])


def pending_worktrees(conn: sqlite3.Connection) -> list[str]:
    """The worktree paths that hold messages not linked yet (read from the partial index only)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT worktree FROM messages INDEXED BY messages_pending WHERE link_id IS NULL"
        )
    ]


def move_pending_messages(conn: sqlite3.Connection, old: str, new: str) -> int:
    return conn.execute(
        "UPDATE messages INDEXED BY messages_pending SET worktree = ? WHERE worktree = ? AND link_id IS NULL",
        (new, old),
    ).rowcount


# --- rewrites ----------------------------------------------------------------------------------------
def record_rewrites(conn: sqlite3.Connection, command: str, pairs: Sequence[Sequence[str]], time_ms: int) -> None:
    conn.executemany(
        "INSERT INTO rewrites (command, old_sha, new_sha, time_ms) VALUES (?, ?, ?, ?)",
        [(command, o, n, time_ms) for o, n in pairs],
    )


def add_rebase_facts(conn: sqlite3.Connection, worktree: str, kind: str, pairs: Sequence[Sequence[str]]) -> None:
    """Facts about a rebase under way in `worktree` (m022_rebase_facts): `amend` old -> new,
    `parent` old of new, or `stop` (an `edit` stop at old left new at HEAD)."""
    conn.executemany(
        "INSERT INTO rebase_facts (worktree, kind, old_sha, new_sha) VALUES (?, ?, ?, ?)",
        [(worktree, kind, o, n) for o, n in pairs],
    )


def rebase_facts(conn: sqlite3.Connection, worktree: str) -> list[tuple[str, str, str]]:
    """(kind, old, new) of the worktree's rebase facts, in the order they were recorded."""
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT kind, old_sha, new_sha FROM rebase_facts WHERE worktree = ? ORDER BY id", (worktree,)
        )
    ]


def clear_rebase_facts(conn: sqlite3.Connection, worktree: str) -> None:
    conn.execute("DELETE FROM rebase_facts WHERE worktree = ?", (worktree,))


def move_links(conn: sqlite3.Connection, mapping: dict[str, str]) -> None:
    """Point links at their rewritten commits, in one pass (a chain inside one rewrite never
    moves a link twice).  The caller records the pairs (record_rewrites) in the same transaction:
    reconciliation reads `rewrites` as the record of moved links (reconcile_changes)."""
    marks = ",".join("?" * len(mapping))
    rows = conn.execute(f"SELECT id, current_sha FROM links WHERE current_sha IN ({marks})", list(mapping)).fetchall()
    conn.executemany(
        "UPDATE links SET current_sha = ? WHERE id = ?", [(mapping[r["current_sha"]], r["id"]) for r in rows]
    )


def commits_with_links(conn: sqlite3.Connection, shas: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for marks, chunk in _in_lists(shas):
        found.update(
            r[0] for r in conn.execute(f"SELECT DISTINCT current_sha FROM links WHERE current_sha IN ({marks})", chunk)
        )
    return found


# --- dashboard (issue 15) ----------------------------------------------------------------------


def cost_by_bucket_and_model(
    conn: sqlite3.Connection, since_ms: int | None = None, until_ms: int | None = None
) -> list[sqlite3.Row]:
    """(bucket, provider, model, messages, cost_units, list_cost_micro) of the messages sent in
    [since_ms, until_ms) (None: open), per quarter hour (GROUP_KEYS["day"]) and model: read from the
    reports' rollup, like usage_by (the dashboard's stacked chart; every message loaded into Python
    took seconds and hundreds of MB at 1M)."""
    with _snapshot(conn):
        source, params = _cells_in_window(conn, since_ms, until_ms)
        rows: list[sqlite3.Row] = conn.execute(
            "SELECT coalesce(bucket, 0) AS bucket, provider, model, sum(messages) AS messages,"
            f" sum(cost_units) AS cost_units, sum(list_cost_micro) AS list_cost_micro FROM ({source}) GROUP BY 1, 2, 3",
            params,
        ).fetchall()
    return rows


def pending_costs(
    conn: sqlite3.Connection, since_ms: int | None = None, until_ms: int | None = None
) -> tuple[list[float], int]:
    """The cost of each message sent in [since_ms, until_ms) and not linked to a commit yet, and
    the sum of their list prices (micro-dollars)."""
    costs: list[float] = []
    list_micro = 0
    for cost, list_cost in conn.execute(
        "SELECT cost, list_cost_micro FROM messages WHERE link_id IS NULL"
        " AND (?1 IS NULL OR time_ms >= ?1) AND (?2 IS NULL OR time_ms < ?2)",
        (since_ms, until_ms),
    ):
        costs.append(float(cost or 0))
        list_micro += int(list_cost or 0)
    return costs, list_micro


# --- reconciliation (periscope_hooks/reconcile.py) ---------------------------------------------------
def linked_commits(conn: sqlite3.Connection) -> list[str]:
    """Every commit that carries linked usage now (after rewrites and reconciled moves)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT current_sha FROM links ORDER BY current_sha")]


# links_cherry_pick (m017) is on (kind, sha): on (sha) alone the planner took a covering scan of
# the links' UNIQUE index instead.  No INDEXED BY here or below: a read-only state.db made before
# m017 cannot gain the indexes, and `report` still reconciles (and scans) there.
CHERRY_PICKS_SQL = "SELECT sha, current_sha FROM links WHERE kind = 'cherry-pick'"


def remember_cherry_pick(conn: sqlite3.Connection, sha: str) -> None:
    """A commit the hooks recorded as a cherry-pick (linked or not: m020_cherry_picks)."""
    conn.execute("INSERT OR IGNORE INTO cherry_picks (sha) VALUES (?)", (sha,))


def made_before(conn: sqlite3.Connection, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (old, new) pairs whose new commit came before the old one, as far as state.db knows:
    the hooks recorded it first (its first link is the older), or the old commit was rewritten
    from it (amended, rebased or moved, directly or through others).  Links through their UNIQUE
    (sha, kind, worktree); rewrites by a scan per step back (no index on new_sha: run only for
    reconciliation's matches, a few commits)."""
    shas = sorted({c for pair in pairs for c in pair})
    first: dict[str, int] = {}
    for marks, chunk in _in_lists(shas):
        first.update(conn.execute(f"SELECT sha, min(id) FROM links WHERE sha IN ({marks}) GROUP BY sha", chunk))
    rewritten_from: dict[str, set[str]] = {}  # new -> the commits rewritten to it
    frontier = {old for old, _ in pairs}
    known = set(frontier)
    while frontier:
        for marks, chunk in _in_lists(sorted(frontier)):
            for old, new in conn.execute(f"SELECT old_sha, new_sha FROM rewrites WHERE new_sha IN ({marks})", chunk):
                rewritten_from.setdefault(new, set()).add(old)
        frontier = {o for n in frontier for o in rewritten_from.get(n, ())} - known
        known |= frontier

    def before(sha: str) -> set[str]:
        found: set[str] = set()
        todo = [sha]
        while todo:
            for o in rewritten_from.get(todo.pop(), ()):
                if o not in found:
                    found.add(o)
                    todo.append(o)
        return found

    return {
        (old, new)
        for old, new in pairs
        if (new in first and old in first and first[new] < first[old]) or new in before(old)
    }


def amended_from(conn: sqlite3.Connection, shas: Sequence[str]) -> dict[str, str]:
    """Of `shas`, those a recorded `git commit --amend` made, each with the commit it amended (the
    newest such record).  A scan of rewrites (no index on new_sha), as made_before's: run only
    for reconciliation's lines-tier matches, a few commits."""
    found: dict[str, str] = {}
    for marks, chunk in _in_lists(sorted(set(shas))):
        for old, new in conn.execute(
            f"SELECT old_sha, new_sha FROM rewrites WHERE command = 'amend' AND new_sha IN ({marks}) ORDER BY id",
            chunk,
        ):
            found[new] = old
    return found


def cherry_pick_commits(conn: sqlite3.Connection) -> list[str]:
    """Commits the hooks recorded as cherry-picks (with usage or not), and every commit each was
    rewritten to since (amends, rebases, one after another): copies, never replacements.  Known
    by the SHA they were recorded under alone, a copy amended afterwards took its original's
    usage.  The links' through the partial index links_cherry_pick (a scan of every link took 3 ms
    at 50,000); the rewrites are followed only from these, a few at a time."""
    copies = {sha for row in conn.execute(CHERRY_PICKS_SQL) for sha in row if sha}
    copies.update(r[0] for r in conn.execute("SELECT sha FROM cherry_picks"))
    frontier = sorted(copies)
    while frontier:
        found: set[str] = set()
        for marks, chunk in _in_lists(frontier):
            found.update(r[0] for r in conn.execute(f"SELECT new_sha FROM rewrites WHERE old_sha IN ({marks})", chunk))
        frontier = sorted(found - copies)
        copies.update(frontier)
    return sorted(copies)


def move_reconciled(
    conn: sqlite3.Connection, command: str, pairs: Sequence[Sequence[str]], time_ms: int
) -> list[list[str]]:
    """Apply a reconcile record's pairs; returns those that moved something.  A pair whose old
    commit carries no usage any more (moved before) moves nothing and is left out."""
    effective: list[list[str]] = []
    for old, new in pairs:
        if conn.execute("UPDATE links SET current_sha = ? WHERE current_sha = ?", (new, old)).rowcount:
            effective.append([old, new])
    record_rewrites(conn, command, effective, time_ms)
    return effective


def store_reconcile_status(
    conn: sqlite3.Connection,
    rows: dict[str, tuple[int, int]],
    fingerprint: str,
    main_line: str | None,
    *,
    complete: bool = True,
    marks: tuple[int, int] | None = None,
    gone: Iterable[str] | None = None,
) -> None:
    """Cache the (reachable, shipped) of the linked commits in `rows` (inside a transaction).
    `complete`: `rows` has every linked commit, so the cache is replaced; otherwise the commits
    left out were shipped and still are, and only the rows that came in are written, plus the
    rows of commits no longer linked dropped (rewriting all 50,000 at 1M messages cost 0.9 s of
    the flush after every commit): those of `gone` when the run built on the cache
    (reconcile_changes says which), else found by a scan of every row.  `marks`: the link_marks
    read before the linked commits were (None: unknown, the next run reads every linked commit
    again)."""
    if complete:
        conn.execute("DELETE FROM reconcile_status")
    elif gone is None:
        conn.execute("DELETE FROM reconcile_status WHERE sha NOT IN (SELECT current_sha FROM links)")
    else:
        conn.executemany("DELETE FROM reconcile_status WHERE sha = ?", [(sha,) for sha in gone])
    conn.executemany(
        "INSERT OR REPLACE INTO reconcile_status (sha, reachable, shipped) VALUES (?, ?, ?)",
        [(sha, r, s) for sha, (r, s) in rows.items()],
    )
    set_meta(conn, Meta.RECONCILE_FINGERPRINT, fingerprint)
    set_meta(conn, Meta.RECONCILE_MAIN_LINE, main_line)
    set_meta(conn, Meta.RECONCILE_MARKS, f"{marks[0]} {marks[1]}" if marks else None)


# The partial index links_agent (m017) holds only agent links: without it, a repository with no
# agent commit kept the recovery mark at 0 and every flush scanned all links (5 ms at 50,000).
AGENT_LINKS_AFTER_SQL = "SELECT id, agent_session_id FROM links WHERE id > ? AND origin = 'agent' ORDER BY id"


def agent_links_after(conn: sqlite3.Connection, link_id: int) -> list[tuple[int, str | None]]:
    """(link id, agent session id) of the agent commits linked after `link_id`, oldest first."""
    return [(r[0], r[1]) for r in conn.execute(AGENT_LINKS_AFTER_SQL, (link_id,))]


def shipped_commits(conn: sqlite3.Connection) -> list[str]:
    """The commits shipped as of the last reconciliation (reconcile.place builds on them)."""
    return [r[0] for r in conn.execute("SELECT sha FROM reconcile_status WHERE shipped = 1")]


# --- reconciliation, incrementally: what changed since the cache was written ----------------------
# links.id and rewrites.id only grow (AUTOINCREMENT), and every statement that moves links records
# its pairs in `rewrites` (move_links' caller, move_reconciled), so the two newest ids are a
# generation number of the linked commits that any version of this tool keeps, with no write of
# its own.  The flush after a commit read every linked commit (its list, the fingerprint over it,
# the shipped ones: about 0.1 s at 50,000 linked commits) to learn about one new link.
LINK_MARKS_SQL = "SELECT (SELECT coalesce(max(id), 0) FROM links), (SELECT coalesce(max(id), 0) FROM rewrites)"
LINKED_BETWEEN_SQL = "SELECT DISTINCT current_sha FROM links WHERE id > ? AND id <= ?"
MOVED_BETWEEN_SQL = "SELECT old_sha, new_sha FROM rewrites WHERE id > ? AND id <= ?"
# The partial index reconcile_status_unshipped (m017) holds the rows a run asks git about again.
UNSHIPPED_SQL = "SELECT sha FROM reconcile_status WHERE shipped = 0"


def link_marks(conn: sqlite3.Connection) -> tuple[int, int]:
    """(newest link id, newest rewrite id): they change whenever a link is added or moved."""
    links, rewrites = conn.execute(LINK_MARKS_SQL).fetchone()
    return int(links), int(rewrites)


def reconcile_marks(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The link_marks reconcile_status was last brought up to; None when unknown (no run yet, or
    a run by a version that did not keep them)."""
    parts = (get_meta(conn, Meta.RECONCILE_MARKS) or "").split()
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 and all(p.isdigit() for p in parts) else None


def reconcile_changes(
    conn: sqlite3.Connection, since: tuple[int, int], until: tuple[int, int]
) -> tuple[set[str], set[str]]:
    """(linked, gone) for a run building on the cache written at link_marks `since`: `linked`, the
    linked commits that may have no row or a row that may change (the rows not shipped, commits
    linked or moved to after `since`); `gone`, the commits among those and the ones moved away
    from that carry no usage any more (their rows go).  Index and rowid ranges only."""
    touched = {r[0] for r in conn.execute(UNSHIPPED_SQL)}
    touched.update(r[0] for r in conn.execute(LINKED_BETWEEN_SQL, (since[0], until[0])))
    for old, new in conn.execute(MOVED_BETWEEN_SQL, (since[1], until[1])):
        touched.add(old)
        touched.add(new)
    linked = commits_with_links(conn, sorted(touched))
    return linked, touched - linked


def reconcile_status(conn: sqlite3.Connection) -> dict[str, tuple[bool, bool]]:
    return {
        sha: (bool(r), bool(s)) for sha, r, s in conn.execute("SELECT sha, reachable, shipped FROM reconcile_status")
    }


def reconcile_counts(conn: sqlite3.Connection, commands: Sequence[str]) -> tuple[int, int]:
    """(commits moved by reconciliation, linked commits not on the main line as last seen)."""
    moved = conn.execute(
        f"SELECT count(DISTINCT old_sha) FROM rewrites WHERE command IN ({','.join('?' * len(commands))})",
        list(commands),
    ).fetchone()[0]
    off_line = conn.execute(
        "SELECT count(*) FROM reconcile_status s WHERE s.shipped = 0"
        " AND EXISTS (SELECT 1 FROM links WHERE current_sha = s.sha)"
    ).fetchone()[0]
    return int(moved), int(off_line)


def worktrees_of_commits(conn: sqlite3.Connection, shas: Sequence[str]) -> list[tuple[str, str]]:
    """(worktree, commit) for the links now on the given commits."""
    if not shas:
        return []
    return [
        (r[0], r[1])
        for r in conn.execute(
            f"SELECT DISTINCT worktree, current_sha FROM links WHERE current_sha IN ({','.join('?' * len(shas))})",
            list(shas),
        )
    ]


# --- price cache (periscope_hooks.pricing) ------------------------------------------------------


def recorded_models(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """(provider, model, messages) of every recorded model, in that order (`periscope prices`)."""
    rows = conn.execute(
        "SELECT provider, model, count(*) FROM messages WHERE model IS NOT NULL GROUP BY provider, model"
        " ORDER BY provider, model"
    )
    return [(str(p), str(m), int(n)) for p, m, n in rows]


def priced_with_another_table(conn: sqlite3.Connection, identity: str) -> int:
    """Messages priced with a price table other than `identity` (they keep that price)."""
    row = conn.execute(
        "SELECT count(*) FROM messages WHERE price_snapshot IS NOT NULL AND price_snapshot != ?", (identity,)
    ).fetchone()
    return int(row[0])


def cached_price_periods(conn: sqlite3.Connection, snapshot: str, provider: str, model: str, lookup: int) -> str | None:
    """`lookup`: pricing.lookup_code (stored in the maker_only column, which held 0/1 before)."""
    row = conn.execute(
        "SELECT periods FROM price_cache WHERE snapshot = ? AND provider = ? AND model = ? AND maker_only = ?",
        (snapshot, provider, model, lookup),
    ).fetchone()
    return None if row is None else str(row[0])


def cache_price_periods(
    conn: sqlite3.Connection, snapshot: str, provider: str, model: str, lookup: int, periods: str
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO price_cache (snapshot, provider, model, maker_only, periods) VALUES (?, ?, ?, ?, ?)",
        (snapshot, provider, model, lookup, periods),
    )
