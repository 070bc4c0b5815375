"""Many rows into one table, several rows to a statement (issue 11: first-ingest speed).

`executemany` steps one statement per row; every step starts the statement's program again.  A
statement that inserts 64 rows at once cost 3.1-3.4 us a row against 4.4-4.7 us for one row a
step, for both the messages of state.db and the events of the local store (100,000 rows of each,
5,000 to a transaction; flattening the rows into one parameter tuple included).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

# SQLite before 3.32 takes at most 999 parameters in a statement.
MAX_PARAMETERS = 999
ROWS_PER_STATEMENT = 64


def insert_rows(conn: sqlite3.Connection, head: str, row_sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run `head` VALUES `row_sql`, `row_sql`, ... over `rows` (each row's parameters in the order
    of row_sql's `?`s); how many rows it changed, as executemany's rowcount says it."""
    width = row_sql.count("?")
    per = max(1, min(ROWS_PER_STATEMENT, MAX_PARAMETERS // max(1, width)))
    full = len(rows) - len(rows) % per
    chain = itertools.chain.from_iterable
    changed = 0
    if full:
        sql = f"{head} VALUES {', '.join([row_sql] * per)}"
        changed += conn.executemany(sql, [tuple(chain(rows[i : i + per])) for i in range(0, full, per)]).rowcount
    if full < len(rows):
        changed += conn.executemany(f"{head} VALUES {row_sql}", rows[full:]).rowcount
    return changed
