"""The floor under first ingest: the same spool through the least work that stores it, beside
the real `process_spool`, in one process, alternating.

Issue 11 asks for 50,000 records/s (20 us a record).  This bench measures what no ingest logic can
go under in CPython with this schema: the floor reads the spool's lines with orjson, makes each
message's row (statedb.MESSAGE_COLUMNS, values taken from the line as they are, no checks, no
pricing), its event id (events.event_id) and an event body of the same length as the real one
(one f-string), links each commit's messages by setting their link id in the rows, and stores
the rows as ingest does: the messages through statedb.insert_messages into a state.db made by the
real migrations (with its indexes), one INSERT per commit into links, the events through the local
store's own statement (LocalStoreSink), a transaction per 4 MiB of spool.  What it leaves out is
everything that decides (records, sessions, prices, the commit rules, commit events' sums, the
rollups, the books).  Each phase of the floor is timed alone too, so the printout says where the
floor's time goes.

    .venv/bin/python bench/ingest_floor.py [--messages 100000] [--commit-every 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import history  # noqa: E402
import orjson  # noqa: E402

from periscope_hooks import events, statedb  # noqa: E402
from periscope_hooks.ingest import process_spool  # noqa: E402
from periscope_hooks.ingest.spool_reader import BATCH_BYTES  # noqa: E402
from periscope_hooks.sinks.local import LocalStoreSink  # noqa: E402
from periscope_hooks.state import open_state_db, transaction  # noqa: E402

PHASES = ("parse", "rows and event text", "state.db inserts", "local store inserts")


def _batches(spool: Path) -> list[list[bytes]]:
    data = spool.read_bytes()
    out: list[list[bytes]] = []
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + BATCH_BYTES) + 1 or len(data)
        out.append(data[start:end].splitlines())
        start = end
    return out


def floor(spool: Path, work: Path) -> dict[str, float]:
    """CPU seconds per phase of the least work that stores the spool's messages, links and events."""
    conn = open_state_db(work)
    sink = LocalStoreSink(work / "events.db")
    spent = dict.fromkeys(PHASES, 0.0)
    gc.disable()  # as ingest does while it applies a batch (ingest/run.py)
    clock = time.process_time
    link_id = 0
    for lines in _batches(spool):
        t0 = clock()
        recs = [orjson.loads(line) for line in lines]
        t1 = clock()
        rows: list[tuple[Any, ...]] = []
        texts: list[tuple[str, str, str | None, str]] = []
        commits: list[tuple[Any, ...]] = []
        pending: list[int] = []
        for rec in recs:
            if rec["kind"] == "message":
                tokens = rec["tokens"]
                eid = events.event_id("message", rec["id"])
                when = events._rfc3339_cached(rec["time"])
                row = [rec["id"], rec["session_id"], rec["cwd"], rec["time"], rec["provider"], rec["model"]]
                row += [rec["agent"], tokens["input"], tokens["output"], tokens["reasoning"], tokens["cache_read"]]
                row += [tokens["cache_write"], rec["cost"], rec["git"]["branch"], rec["git"]["sha"], 0, None]
                row += [None, "reported", None, 1, "opencode", 0, 0, None]
                pending.append(len(rows))
                rows.append(row)  # type: ignore[arg-type]
                body = (
                    f'{{"client":{{"name":"periscope-hooks","version":"0.0.0"}},"cost":{rec["cost"]},'
                    f'"cost_source":"reported","event_id":"{eid}","list_cost":null,"message_id":"{rec["id"]}",'
                    f'"model":"{rec["model"]}","price_snapshot":null,"provider":"{rec["provider"]}",'
                    f'"repo":{{"branch":"{rec["git"]["branch"]}","sha":null,"url":null}},"schema":1,'
                    f'"session":{{"agent":"{rec["agent"]}","coding_agent":"opencode","id":"{rec["session_id"]}",'
                    f'"is_subagent":false,"parent_id":null,"title":null}},"time":"{when}","tokens":{{"cache_read":'
                    f'{tokens["cache_read"]},"cache_write":{tokens["cache_write"]},"input":{tokens["input"]},'
                    f'"output":{tokens["output"]},"reasoning":{tokens["reasoning"]}}},"type":"message"}}'
                )
                texts.append((eid, "message", when, body))
            else:
                link_id += 1
                for i in pending:
                    rows[i][16] = link_id  # type: ignore[index]
                pending = []
                commits.append((rec["worktree"], rec["sha"], rec["sha"], "commit", "human", "main", "[]", rec["time"]))
        t2 = clock()
        with transaction(conn):
            conn.executemany(
                "INSERT INTO links (worktree, sha, current_sha, kind, origin, branch, parents, time_ms, emitted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                commits,
            )
            statedb.insert_messages(conn, rows)
            t3 = clock()
            sink.store_now(texts)
            t4 = clock()
        t5 = clock()
        spent["parse"] += t1 - t0
        spent["rows and event text"] += t2 - t1
        spent["state.db inserts"] += (t3 - t2) + (t5 - t4)  # the commit's WAL writes included
        spent["local store inserts"] += t4 - t3
        del recs, rows, texts
        gc.collect(1)
    gc.enable()
    sink.close()
    conn.close()
    return spent


def real(spool_dir: Path, work: Path) -> float:
    import shutil

    sd = work / "periscope"
    sd.mkdir()
    shutil.copy(spool_dir / "spool.jsonl", sd / "spool.jsonl")
    sink = LocalStoreSink(work / "events.db")
    t = time.process_time()
    process_spool(sd, store_now=sink.store_now)
    sink.close()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--commit-every", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="periscope-floor-") as tmp:
        history.isolated_env(tmp)
        repo = Path(tmp) / "r"
        shas = history.make_commits(repo, args.messages // args.commit_every)
        spool_dir = repo / ".git" / "periscope"
        records = history.write_history(
            spool_dir / "spool.jsonl", args.messages, args.commit_every, str(repo.resolve()), shas
        )

        # Work folders beside the spool's, in the repository's .git, as the flusher's state folder is.
        def work() -> Path:
            return Path(tempfile.mkdtemp(dir=spool_dir.parent))

        real(spool_dir, work())  # warm-up: imports, the price table
        floors: list[dict[str, float]] = []
        reals: list[float] = []
        for _ in range(args.runs):  # alternating, so machine noise hits both alike
            floors.append(floor(spool_dir / "spool.jsonl", work()))
            reals.append(real(spool_dir, work()))
    us = 1e6 / records
    floor_total = statistics.median(sum(f.values()) for f in floors)
    real_total = statistics.median(reals)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}), {records:,} records"
        f" ({args.messages:,} messages, a commit every {args.commit_every}), medians of {args.runs} runs, CPU"
    )
    for phase in PHASES:
        print(f"  floor: {phase:<22} {statistics.median(f[phase] for f in floors) * us:6.1f} us a record")
    print(f"  floor, in all            {floor_total * us:6.1f} us a record: {records / floor_total:>9,.0f} records/s")
    print(f"  process_spool            {real_total * us:6.1f} us a record: {records / real_total:>9,.0f} records/s")
    print(f"  process_spool / floor    x{real_total / floor_total:.2f}")
    print(json.dumps({"floor_s": floors, "real_s": reals}))


if __name__ == "__main__":
    main()
