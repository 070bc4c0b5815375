"""`periscope report`: AI usage per commit, model, branch, session or day.

Computed from the repository's state.db after ingesting the spool, so it works
whatever the sink is and follows rewrites (usage linked to a rewritten commit is
shown under its replacement, once).
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from periscope_hooks import output, reconcile, statedb
from periscope_hooks.errors import UserError
from periscope_hooks.events import COST_SOURCES, TOKEN_FIELDS, round_cost
from periscope_hooks.jsonout import dumps_rows, json_float, json_string
from periscope_hooks.repo import resolve_state_dir
from periscope_hooks.state_reader import read_state

# (since_ms, until_ms), None for open: since inclusive, until exclusive (typing names: a runtime alias on 3.9)
Window = tuple[Optional[int], Optional[int]]


def _usage(row: Any) -> dict[str, Any]:
    """The usage block of a report row from an aggregate row (statedb.USAGE_AGGREGATES): sums done
    in SQL, costs exact (integers of 1e-10 dollars, list prices of micro-dollars)."""
    return {
        "messages": int(row["messages"]),
        "tokens": {f: int(row[f] or 0) for f in TOKEN_FIELDS},
        "cost": int(row["cost_units"] or 0) / statedb.COST_UNITS_PER_DOLLAR,
        "list_cost": int(row["list_cost_micro"] or 0) / 1_000_000 if row["list_priced"] else None,
        "cost_sources": {k: int(row[f"src_{k}"] or 0) for k in COST_SOURCES},
    }


def by_commit(conn: sqlite3.Connection, window: Window = (None, None)) -> list[dict[str, Any]]:
    """One row per commit that holds usage now (rewritten commits' usage under their replacements),
    in the order the commits were first linked; each link's usage summed in SQL and the links
    grouped by commit (statedb.usage_by_commit), with reachable and shipped from reconciliation's
    cache (refreshed only when the refs changed, never a walk of the whole history per call)."""
    return [commit_row(t) for t in statedb.usage_by_commit(conn, *window)]


def commit_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A by_commit row from a statedb.usage_by_commit tuple (unpacked, not looked up by name: at
    50,000 commits each lookup by name shows)."""
    (sha, time_ms, branch, kind, origin, reachable, shipped, messages, inp, out, reasoning, c_read, c_write,
     cost_units, list_micro, reported, estimated, subscription, unknown, list_priced) = row  # fmt: skip
    return {
        "sha": sha,
        "date": _date(time_ms),
        "branch": branch,
        "kind": kind,
        "origin": origin,
        "messages": messages,
        "tokens": {
            "input": inp,
            "output": out,
            "reasoning": reasoning,
            "cache_read": c_read,
            "cache_write": c_write,
        },
        "cost": cost_units / statedb.COST_UNITS_PER_DOLLAR,
        "list_cost": list_micro / 1_000_000 if list_priced else None,
        "cost_sources": {
            "reported": reported,
            "estimated": estimated,
            "subscription": subscription,
            "unknown": unknown,
        },
        "reachable": bool(reachable),
        "shipped": bool(shipped),
    }


def day_of(time_ms: int | None) -> str:
    """The local calendar day of a message (what a user calls "today", not UTC's)."""
    return time.strftime("%Y-%m-%d", time.localtime((time_ms or 0) / 1000))


def _fold_days(buckets: list[sqlite3.Row]) -> list[dict[str, Any]]:
    """Quarter-hour sums (statedb.GROUP_KEYS["day"]) into local days: counts and sums add up,
    the first message is the earliest."""
    days: dict[str, dict[str, Any]] = {}
    for b in buckets:
        day = day_of(int(b["k0"]) * statedb.DAY_BUCKET_MS)
        d = days.get(day)
        if d is None:
            days[day] = {**dict(zip(b.keys(), b)), "k0": day}
            continue
        for k in b.keys():  # noqa: SIM118 (sqlite3.Row: `in` tests values)
            if k == "first_ms":
                d[k] = min(d[k], b[k])
            elif k != "k0":
                d[k] = (d[k] or 0) + (b[k] or 0)
    return list(days.values())


def _group(conn: sqlite3.Connection, key: str, window: Window = (None, None)) -> list[dict[str, Any]]:
    """One row per model, branch, session or (local) day, aggregated in SQL (memory does not grow
    with the messages), in the order of each group's first message (time, then spool order)."""
    groups: list[Any] = statedb.usage_by(conn, key, *window)
    if key == "day":
        groups = _fold_days(groups)
    firsts: dict[int, int] = {}
    for g in groups:
        firsts[g["first_ms"]] = firsts.get(g["first_ms"], 0) + 1

    def order(g: Any) -> tuple[int, int]:
        if firsts[g["first_ms"]] == 1:
            return g["first_ms"], 0
        # Two groups start in the same millisecond: the spool decides.
        keys = [g[f"k{i}"] for i in range(len(statedb.GROUP_KEYS[key]))]
        return g["first_ms"], statedb.first_spool_offset(conn, key, keys, g["first_ms"], *window)

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
    if key == "session":
        return roll_up_sessions(conn, rows)
    return rows


def report_rows(conn: sqlite3.Connection, by: str, window: Window = (None, None)) -> list[dict[str, Any]]:
    return by_commit(conn, window) if by == "commit" else _group(conn, by, window)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    # list_cost as the row has it: None when no message of it has a list price (a blank, not 0).
    flat = {k: v for k, v in row.items() if k not in ("tokens", "cost_sources", "subagents", "subagent_share")}
    for f in TOKEN_FIELDS:
        flat[f] = row["tokens"][f]
    flat["sources"] = format_sources(row["cost_sources"])
    if "subagent_share" in row:
        flat["subagents_cost"] = row["subagent_share"]["cost"]
        flat["subagents_list_cost"] = row["subagent_share"]["list_cost"]
    return flat


# A spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(...), a DDE
# call).  Titles (the agent's, from the conversation) and branches (a pull request's author names
# the branch `gh pr checkout` makes) are written so with a leading ' (OWASP's advice), which
# spreadsheets show as text.  Model and provider ids are written exactly as recorded: they come
# from the user's own configuration, and a real one starts with @ (`@cf/meta/llama-3.1-8b-instruct`).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_KEPT_EXACT = frozenset(("model", "provider"))


def spreadsheet_text(value: Any) -> Any:
    """A CSV cell's value that no spreadsheet reads as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value


def _as_spreadsheet_text(flat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v if k in _KEPT_EXACT else spreadsheet_text(v) for k, v in r.items()} for r in flat]


def _table(flat: list[dict[str, Any]], by: str) -> None:
    cols = list(dict.fromkeys(c for r in flat for c in r))
    money = ("cost", "list_cost", "subagents_cost", "subagents_list_cost")
    # A cell is one line: a session title with a line break (a plugin's, unchecked) split its row.
    table = [[str(c) for c in cols]] + [
        ["" if r.get(c) is None else (f"{r[c]:.4f}" if c in money else output.one_line(str(r[c]))) for c in cols]
        for r in flat
    ]
    widths = [max(output.width(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        output.out("  ".join(output.pad(cell, w) for cell, w in zip(row, widths)).rstrip())


def _rows_and_pending(
    conn: sqlite3.Connection, state_dir: Path, by: str, window: Window, *, commit_tuples: bool = False
) -> tuple[list[Any], int]:
    reconcile.refresh_unless_read_only(conn, state_dir)  # shipped / reachable as of the refs now (cached)
    if commit_tuples:
        return statedb.usage_by_commit(conn, *window), statedb.pending_count(conn)
    return report_rows(conn, by, window), statedb.pending_count(conn)


def _commit_json(row: tuple[Any, ...]) -> str:
    """One by_commit row, as jsonout.dumps_rows writes it, straight from statedb.usage_by_commit's
    tuple: at 50,000 commits the dicts and their generic encoding cost ~1 s of the report's CPU
    and most of its memory.  tests/test_report_rollup.py checks it against dumps_rows(by_commit())."""
    (sha, time_ms, branch, kind, origin, reachable, shipped, messages, inp, out, reasoning, c_read, c_write,
     cost_units, list_micro, reported, estimated, subscription, unknown, list_priced) = row  # fmt: skip
    date = _date(time_ms)
    return (
        f'  {{\n    "sha": {_json_str(sha)},\n    "date": {_json_str(date)},\n    "branch": {_json_str(branch)},'
        f'\n    "kind": {_json_str(kind)},\n    "origin": {_json_str(origin)},\n    "messages": {int(messages)},'
        f'\n    "tokens": {{\n      "input": {int(inp)},\n      "output": {int(out)},\n      "reasoning": {int(reasoning)},'
        f'\n      "cache_read": {int(c_read)},\n      "cache_write": {int(c_write)}\n    }},'
        f'\n    "cost": {json_float(cost_units / statedb.COST_UNITS_PER_DOLLAR)},'
        f'\n    "list_cost": {json_float(list_micro / 1_000_000) if list_priced else "null"},'
        f'\n    "cost_sources": {{\n      "reported": {int(reported)},\n      "estimated": {int(estimated)},'
        f'\n      "subscription": {int(subscription)},\n      "unknown": {int(unknown)}\n    }},'
        f'\n    "reachable": {"true" if reachable else "false"},\n    "shipped": {"true" if shipped else "false"}\n  }}'
    )


def commit_table_lines(rows: list[tuple[Any, ...]]) -> Iterator[str]:
    """The commit report's table (what _flat and _table make of by_commit's rows and the totals
    row), straight from statedb.usage_by_commit's tuples.  Column widths come first, from whole
    columns (a number's text grows with its magnitude, so the extremes give the width; the distinct
    texts otherwise); then each line is one %-format of its row.  Building every cell of 50,000
    rows and padding each took 1.0 s of CPU and 45 MB at 1M messages.  tests/test_report_rollup.py
    checks it against the general path."""
    units = statedb.COST_UNITS_PER_DOLLAR
    columns: list[tuple[Any, ...]] = list(zip(*rows)) if rows else [()] * 20
    (shas, times, branches, kinds, origins, reachables, shippeds, messages, inputs, outputs, reasonings, c_reads,
     c_writes, cost_units, list_micros, reported, estimated, subscription, unknown, list_priced) = columns  # fmt: skip
    costs = [c / units for c in cost_units]
    list_costs = [m / 1_000_000 for m in list_micros]
    totals, total_cost, total_list = _commit_totals(columns, costs, list_costs)
    share = reconcile.shipped_share(
        costs, [c if priced else None for c, priced in zip(list_costs, list_priced)], [bool(s) for s in shippeds]
    )
    source_texts = _source_texts(reported, estimated, subscription, unknown)
    header = ["sha", "date", "branch", "kind", "origin", "messages", "cost", "list_cost", "shipped", *TOKEN_FIELDS]
    total = [
        "total",
        "",
        "",
        "",
        "",
        str(totals[0]),
        f"{total_cost:.4f}",
        f"{total_list:.4f}" if any(list_priced) else "",
        share,
        *(str(t) for t in totals[1:6]),
        format_sources(dict(zip(COST_SOURCES, totals[6:]))),
    ]
    known_times = [t for t in times if t is not None]
    # A branch printed as it reads: a record not written by git may hold a terminal escape.
    shown_branches = {b: output.one_line("" if b is None else str(b)) for b in set(branches)}
    widths = [
        _longest(sha[:12] + ("" if reachable else " (unreachable)") for sha, reachable in zip(shas, reachables)),
        _longest(_date(t) or "" for t in ((min(known_times), max(known_times)) if known_times else ())),
        max((output.width(b) for b in shown_branches.values()), default=0),
        _longest({str(k) for k in kinds}),
        _longest({str(o) for o in origins}),
        _longest_number(messages),
        _longest_number(costs, "%.4f"),
        _longest_number(list_costs, "%.4f"),  # a blank cell's 0.0000 is shorter than the header
        3 if any(shippeds) else 2,
        *(_longest_number(col) for col in (inputs, outputs, reasonings, c_reads, c_writes)),
        _longest(source_texts.values()),
    ]
    widths = [max(w, len(h), len(t)) for w, h, t in zip(widths, [*header, "sources"], total)]
    branch_width = widths[2]
    widths[2] = 0  # the branch is padded to its terminal width (output.pad), not by % to its length
    line = "  ".join(f"%-{w}s" for w in widths)
    header[2], total[2] = output.pad(header[2], branch_width), output.pad(total[2], branch_width)
    yield (line % (*header, "sources")).rstrip()
    for (sha, time_ms, branch, kind, origin, reachable, shipped, n, inp, out, reasoning, c_read, c_write,
         cost_units_, list_micro, rep, est, sub, unk, priced) in rows:  # fmt: skip
        list_cost = list_micro / 1_000_000
        yield (
            line
            % (
                sha[:12] + ("" if reachable else " (unreachable)"),
                "" if time_ms is None else _date(time_ms),
                output.pad(shown_branches[branch], branch_width),
                kind,
                origin,
                n,
                f"{cost_units_ / units:.4f}",
                f"{list_cost:.4f}" if priced else "",
                "yes" if shipped else "no",
                inp,
                out,
                reasoning,
                c_read,
                c_write,
                source_texts[(rep, est, sub, unk)],
            )
        ).rstrip()
    yield (line % tuple(total)).rstrip()


def _commit_totals(
    columns: Sequence[Sequence[Any]], costs: Sequence[float], list_costs: Sequence[float]
) -> tuple[list[int], float, float]:
    """total_row()'s figures for usage_by_commit's columns: (messages, the five token counts, the
    four cost sources), the cost and the list cost."""
    totals = [sum(map(int, col)) for col in (*columns[7:13], *columns[15:19])]
    return totals, round_cost(costs), sum(round(c * 1_000_000) for c in list_costs) / 1_000_000


def _source_texts(*sources: Sequence[int]) -> dict[tuple[Any, ...], str]:
    """format_sources() of each distinct (reported, estimated, subscription, unknown)."""
    texts: dict[tuple[Any, ...], str] = {}
    for key in zip(*sources):
        if key not in texts:
            texts[key] = format_sources(dict(zip(COST_SOURCES, key)))
    return texts


def commit_csv_rows(rows: list[tuple[Any, ...]]) -> Iterator[list[Any]]:
    """The commit report's CSV rows, header and totals included (what csv.DictWriter writes of _flat
    of by_commit's rows and the totals row), straight from statedb.usage_by_commit's tuples: the
    same values in the same columns, so csv.writer quotes and spells them the same.  The dicts cost
    139 MB and 1.4 s of CPU at 50,000 commits (issue 11: every report in 100 MB).
    tests/test_report_rollup.py checks it against the general path."""
    units = statedb.COST_UNITS_PER_DOLLAR
    columns: list[tuple[Any, ...]] = list(zip(*rows)) if rows else [()] * 20
    yield [
        "sha", "date", "branch", "kind", "origin", "messages", "cost", "list_cost", "reachable", "shipped",
        *TOKEN_FIELDS, "sources",
    ]  # fmt: skip
    source_texts = _source_texts(*columns[15:19])
    for (sha, time_ms, branch, kind, origin, reachable, shipped, n, inp, out, reasoning, c_read, c_write,
         cost_units, list_micro, rep, est, sub, unk, priced) in rows:  # fmt: skip
        list_cost = list_micro / 1_000_000
        yield [
            sha,
            _date(time_ms),
            spreadsheet_text(branch),
            kind,
            origin,
            n,
            cost_units / units,
            list_cost if priced else None,
            bool(reachable),
            bool(shipped),
            inp,
            out,
            reasoning,
            c_read,
            c_write,
            source_texts[(rep, est, sub, unk)],
        ]
    totals, total_cost, total_list = _commit_totals(
        columns, [c / units for c in columns[13]], [m / 1_000_000 for m in columns[14]]
    )
    yield [
        "total",
        None,
        None,
        None,
        None,
        totals[0],
        total_cost,
        total_list if any(columns[19]) else None,
        None,
        None,
        *totals[1:6],
        format_sources(dict(zip(COST_SOURCES, totals[6:]))),
    ]


class _CsvRows:
    """csv.writer with lines ending in "\n", and a cell holding a carriage return quoted too: csv
    quotes only the delimiter, the quote and the line terminator's characters, and a bare "\r" in
    a branch or title ended the row there for every CSV reader.  Such a row is written with every
    cell quoted (rare; the others as before).  `text_cells`: the indexes a "\r" can be in."""

    def __init__(self, buf: io.StringIO, text_cells: Sequence[int] | None = None) -> None:
        self._minimal = csv.writer(buf, lineterminator="\n")
        self._quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._text_cells = text_cells

    def write(self, row: Sequence[Any]) -> None:
        cells = row if self._text_cells is None else [row[i] for i in self._text_cells]
        returns = any(type(v) is str and "\r" in v for v in cells)
        (self._quoted if returns else self._minimal).writerow(row)


def write_commit_csv(rows: list[tuple[Any, ...]]) -> None:
    """commit_csv_rows through csv.writer, a thousand rows at a time."""
    buf = io.StringIO()
    writer = _CsvRows(buf, text_cells=(2,))  # the branch: the SHA, kind and origin are ours
    for i, row in enumerate(commit_csv_rows(rows), start=1):
        writer.write(row)
        if i % 1000 == 0:
            output.write(buf.getvalue())
            buf.seek(0)
            buf.truncate()
    output.write(buf.getvalue())


def _longest(texts: Iterable[str]) -> int:
    return max(map(len, texts), default=0)


def _longest_number(values: Sequence[Any], fmt: str = "%s") -> int:
    """The longest of `values` as text: with integers (their sum is an int only when all are) or a
    fixed-point format, the text grows with the magnitude, so the two extremes are the longest."""
    if not values:
        return 0
    if fmt != "%s" or type(sum(values)) is int:
        return max(len(fmt % min(values)), len(fmt % max(values)))
    return _longest(map(str, values))


def _json_str(value: str | None) -> str:
    return "null" if value is None else json_string(value)


def write_commit_json(rows: list[tuple[Any, ...]]) -> None:
    """The commit report as JSON (json.dumps(by_commit rows, indent=2) byte for byte), written a
    thousand rows at a time: the whole text is never held at once."""
    if not rows:
        output.out("[]")
        return
    output.write("[\n")
    for start in range(0, len(rows), 1000):
        piece = ",\n".join([_commit_json(r) for r in rows[start : start + 1000]])
        output.write(piece + (",\n" if start + 1000 < len(rows) else "\n]\n"))


def report(repo: str | None, by: str, fmt: str, since: str | None = None, until: str | None = None) -> int:
    window = parse_window(since, until)
    state_dir = resolve_state_dir(repo)
    fast = by == "commit"  # 50,000 commits: straight from the SQL rows
    (rows, pending), note = read_state(
        state_dir, lambda conn: _rows_and_pending(conn, state_dir, by, window, commit_tuples=fast), output.ingesting
    )
    if note:
        output.info(f"note: {note}")
    if fast and fmt == "json":
        write_commit_json(rows)
        return 0
    if fast and fmt == "csv" and rows:
        write_commit_csv(rows)
        return 0
    if fast and rows:
        piece: list[str] = []
        for line in commit_table_lines(rows):
            piece.append(line)
            if len(piece) == 1000:
                output.write("\n".join(piece) + "\n")
                piece = []
        output.write("".join(line + "\n" for line in piece))
        if pending:
            output.out(f"({pending} message(s) not linked to a commit yet)")
        return 0
    if fast:
        rows = []
    if fmt == "json":
        output.out(dumps_rows(rows))  # json.dumps(rows, indent=2), ~6x faster (jsonout.py)
        return 0
    flat = [_flat(r) for r in rows]
    if flat:
        flat.append(_flat(total_row(rows, by)))
    if fmt == "csv":
        buf = io.StringIO()
        fields = (
            list(dict.fromkeys(c for r in flat for c in r))
            if flat
            else [by if by != "commit" else "sha", "messages", *TOKEN_FIELDS, "cost", "list_cost", "sources"]
        )
        writer = _CsvRows(buf)
        writer.write(fields)
        for row in _as_spreadsheet_text(flat):
            writer.write([row.get(f, "") for f in fields])  # what csv.DictWriter writes
        output.write(buf.getvalue())
        return 0
    if not flat:
        output.out("no AI usage recorded yet" + (" in that time window" if window != (None, None) else ""))
    else:
        if by == "commit":
            for r in flat[:-1]:
                r["sha"] = r["sha"][:12] + ("" if r.get("reachable", True) else " (unreachable)")
                r.pop("reachable", None)
                r["shipped"] = "yes" if r.get("shipped") else "no"
        if by == "session":
            flat = _indent_subagents(rows, flat)
        if by == "commit":  # the totals row says how much of the AI cost shipped
            flat[-1]["shipped"] = reconcile.shipped_share(
                [float(r["cost"]) for r in rows], [r["list_cost"] for r in rows], [bool(r.get("shipped")) for r in rows]
            )
        _table(flat, by)
    if pending and by == "commit":
        output.out(f"({pending} message(s) not linked to a commit yet)")
    return 0


# --- list prices, cost sources, time windows, totals, sub-agent roll-up (issue 13) -----------------


def format_sources(sources: dict[str, int]) -> str:
    """`reported 12, subscription 3`: the mix of where the costs came from."""
    return ", ".join(f"{k} {n}" for k, n in sources.items() if n)


def parse_window(since: str | None, until: str | None) -> Window:
    """--since / --until: a local date (YYYY-MM-DD; --until includes that whole day) or a local time
    (YYYY-MM-DDTHH:MM[:SS]); a trailing Z means UTC.  Local, like the report's days and the dashboard."""
    window = (_parse_time(since, "--since", end_of_day=False), _parse_time(until, "--until", end_of_day=True))
    if window[0] is not None and window[1] is not None and window[1] <= window[0]:
        raise UserError(f"--until {until!r} is not after --since {since!r}", "swap them, or widen the window")
    return window


def _parse_time(text: str | None, option: str, end_of_day: bool) -> int | None:
    import calendar

    if text is None:
        return None
    value = text.strip()
    utc = value.endswith("Z")
    value = value.rstrip("Z")
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = time.strptime(value, fmt)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and end_of_day:  # the start of the next day, exclusive
            # tm_isdst -1, as strptime leaves it: mktime then decides whether DST is in effect.
            parsed = time.struct_time((*time.gmtime(calendar.timegm(parsed) + 86400)[:8], -1))
        try:
            seconds = calendar.timegm(parsed) if utc else int(time.mktime(parsed))
        except (OverflowError, ValueError):
            break
        return seconds * 1000
    raise UserError(f"{option} {text!r} is not a date", "use YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time; Z for UTC)")


def _date(time_ms: int | None) -> str | None:
    """A commit's local date and time (like the report's days)."""
    return None if time_ms is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(int(time_ms) / 1000))


def _add_usage(into: dict[str, Any], row: dict[str, Any]) -> None:
    into["messages"] += row["messages"]
    for f in TOKEN_FIELDS:
        into["tokens"][f] += row["tokens"][f]
    into["_cost"].append(row["cost"])
    if row["list_cost"] is not None:
        into["_list_micro"] += round(row["list_cost"] * 1_000_000)
        into["_list_known"] = True
    for k, n in row["cost_sources"].items():
        into["cost_sources"][k] += n


def _empty_usage() -> dict[str, Any]:
    return {
        "messages": 0,
        "tokens": dict.fromkeys(TOKEN_FIELDS, 0),
        "_cost": [],
        "_list_micro": 0,
        "_list_known": False,
        "cost_sources": dict.fromkeys(COST_SOURCES, 0),
    }


def _finish(usage: dict[str, Any]) -> dict[str, Any]:
    costs, micro, known = usage.pop("_cost"), usage.pop("_list_micro"), usage.pop("_list_known")
    return {
        "messages": usage["messages"],
        "tokens": usage["tokens"],
        "cost": round_cost(costs),
        "list_cost": micro / 1_000_000 if known else None,
        "cost_sources": usage["cost_sources"],
    }


def total_row(rows: list[dict[str, Any]], by: str) -> dict[str, Any]:
    """The totals row (table and CSV): every row counted once (sub-agents are inside their parents)."""
    usage = _empty_usage()
    for r in rows:
        _add_usage(usage, r)
    head = {"sha": "total"} if by == "commit" else {"model": "total"} if by == "model" else {by: "total"}
    return {**head, **_finish(usage)}


def _root_of(session_id: str, parents: dict[str, str | None]) -> str:
    """The top-level session above `session_id`.  Recorded parents can close a cycle (a -> b,
    b -> a): its root is then its smallest id, the same from wherever the walk starts.  It stopped
    where the cycle closed, so a's root was b and b's was a, each rolled into the other, and
    `--by session` counted both twice (a consistency sweep)."""
    path = [session_id]
    at = {session_id: 0}
    while parents.get(session_id):
        parent = str(parents[session_id])
        if parent in at:
            return min(path[at[parent] :])
        at[parent] = len(path)
        path.append(parent)
        session_id = parent
    return session_id


def roll_up_sessions(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per top-level session, its totals including every sub-agent session below it (OpenCode's
    own totals do not), the children's share in `subagent_share` and their own rows in `subagents`."""
    parents, titles = statedb.session_parents_and_titles(conn)
    by_id = {r["session"]: r for r in rows}
    order: list[Any] = []
    children: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        sid = r["session"]
        root = _root_of(str(sid), parents) if sid is not None else sid
        if root not in children:
            children[root] = []
            order.append(root)
        if root != sid:
            children[root].append(r)
    out = []
    for root in order:
        own = by_id.get(root)
        total, share = _empty_usage(), _empty_usage()
        if own is not None:
            _add_usage(total, own)
        for child in children[root]:
            _add_usage(total, child)
            _add_usage(share, child)
        row = {
            "session": root,
            "title": own["title"] if own is not None else titles.get(str(root)),
            "is_subagent": False,
            **_finish(total),
        }
        if children[root]:
            row["subagent_share"] = {**_finish(share), "sessions": len(children[root])}
            row["subagents"] = [{**c, "is_subagent": True} for c in children[root]]
        out.append(row)
    return out


def _indent_subagents(rows: list[dict[str, Any]], flat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table lists each parent's sub-agent sessions under it (indented; not added to the total)."""
    out = []
    for row, f in zip(rows, flat):
        out.append(f)
        for child in row.get("subagents", []):
            c = _flat(child)
            c["session"] = "  > " + str(c["session"])
            out.append(c)
    out.append(flat[-1])
    return out
