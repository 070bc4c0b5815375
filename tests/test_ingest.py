from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from periscope_hooks import schemas, spool
from periscope_hooks.ingest import classify_commit, process_spool
from periscope_hooks.state import open_state_db
from testing.util import append_spool, commit, message_record, periscope, session_record, spool_path, state_dir


def test_messages_are_deduplicated_and_sessions_updated(tmp_path):
    sd = tmp_path / "periscope"
    rec = message_record(None, id="m1", cwd="")
    append_spool(None, session_record("ses_01", "placeholder"), rec, rec, path=sd / "spool.jsonl")
    append_spool(None, session_record("ses_01", "Real title"), path=sd / "spool.jsonl")
    result = process_spool(sd)
    assert result.messages == 1 and result.duplicates == 1
    conn = open_state_db(sd)
    assert conn.execute("SELECT title FROM sessions WHERE id = 'ses_01'").fetchone()[0] == "Real title"
    assert conn.execute("SELECT count(*) FROM outbox WHERE type = 'message'").fetchone()[0] == 1
    # Re-reading the whole spool (offset lost) changes nothing.
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'spool_offset'")
    conn.close()
    assert process_spool(sd).messages == 0


def test_garbage_is_counted_unknown_versions_kept_torn_line_waits(tmp_path):
    sd = tmp_path / "periscope"
    sd.mkdir()
    p = sd / "spool.jsonl"
    good = json.dumps(message_record(None, id="m1", cwd="")).encode()
    future = json.dumps({"v": 2, "kind": "message", "id": "m9"}).encode()
    p.write_bytes(b"garbage line\n" + future + b"\n" + good + b"\n" + good[:20])
    result = process_spool(sd)
    assert (result.skipped, result.deferred, result.messages) == (1, 1, 1)
    conn = open_state_db(sd)
    assert conn.execute("SELECT line FROM deferred_records").fetchone()[0] == future.decode()
    assert conn.execute("SELECT value FROM meta WHERE key='skipped_lines'").fetchone()[0] == "1"
    offset = int(conn.execute("SELECT value FROM meta WHERE key='spool_offset'").fetchone()[0])
    assert offset == p.stat().st_size - 20  # the torn line is not consumed
    with open(p, "ab") as f:
        f.write(b"\n")  # the writer died: its fragment becomes one malformed line
        f.write(json.dumps(message_record(None, id="m2", cwd="")).encode() + b"\n")
    result = process_spool(sd)
    assert result.messages == 1 and result.skipped == 1


def test_records_glued_by_a_lost_newline_are_each_ingested(tmp_path):
    """A writer that stopped after its record's last byte (the disk full) left no newline: the next
    record was glued to it, and the line kept only the last record (the first was skipped as
    garbage, its usage lost).  A torn fragment before a record is still skipped, once."""
    sd = tmp_path / "periscope"
    sd.mkdir()
    rec = [json.dumps(message_record(None, id=f"g{i}", cwd="")).encode() for i in range(4)]
    fragment = rec[3][:-40]
    (sd / "spool.jsonl").write_bytes(rec[0] + rec[1] + rec[2] + b"\n" + fragment + rec[3] + b"\n")
    result = process_spool(sd)
    assert (result.messages, result.skipped) == (4, 1)
    conn = open_state_db(sd)
    assert [r[0] for r in conn.execute("SELECT id FROM messages ORDER BY spool_offset")] == ["g0", "g1", "g2", "g3"]
    offsets = [r[0] for r in conn.execute("SELECT spool_offset FROM messages ORDER BY spool_offset")]
    assert offsets[:3] == [0, len(rec[0]), len(rec[0]) + len(rec[1])]  # each record's own byte


def test_invalid_record_fields_are_skipped_not_fatal(tmp_path):
    sd = tmp_path / "periscope"
    bad = message_record(None, id="bad", cwd="")
    bad["tokens"] = {"input": "lots"}
    unstorable = message_record(None, id=["a", "list"], cwd="")  # an id must be text
    huge = message_record(None, id="huge", cwd="", tokens=(2**70, 0, 0, 0, 0))
    ok = message_record(None, id="ok", cwd="")
    # json writes these as NaN and Infinity, which json reads back (orjson refuses them)
    nan_cost, infinite_cost = (
        message_record(None, id=i, cwd="", cost=c) for i, c in (("nan", math.nan), ("inf", math.inf))
    )
    append_spool(
        None, bad, {"v": 1, "kind": "message"}, unstorable, huge, nan_cost, infinite_cost, ok, path=sd / "spool.jsonl"
    )
    with open(sd / "spool.jsonl", "ab") as f:
        f.write(
            json.dumps(message_record(None, id="overflow", cwd="", cost=7.5)).replace("7.5", "1e999").encode() + b"\n"
        )
    result = process_spool(sd)
    assert result.skipped == 7 and result.messages == 1
    log = (sd / "hook.log").read_text()
    assert "skipped an invalid message record" in log and "Traceback" not in log
    assert log.count("ValueError: cost is not a finite number") == 3


def test_figures_no_message_can_have_are_skipped_and_the_repository_keeps_working(repo):
    """Two messages costing $1e9 and $5e8 (a plugin writing the wrong unit) overflowed the reports'
    exact sums (int64 units of 1e-10 dollars): every flush, report and status failed with
    "integer overflow", for good.  A cost outside [0, $10,000] or a token count over 10^12 now
    skips its message with the reason; the rest is reported as before."""
    good = message_record(repo.path, id="good", cost=0.25)
    append_spool(
        repo.path,
        message_record(repo.path, id="unit-mistake-1", cost=1e9),
        message_record(repo.path, id="unit-mistake-2", cost=5e8),
        message_record(repo.path, id="negative", cost=-0.5),
        message_record(repo.path, id="tokens", tokens=(10**13, 0, 0, 0, 0)),
        message_record(repo.path, id="tokens-2", tokens=(2**62, 0, 0, 0, 0)),
        good,
    )
    sha = commit(repo.path, "c1")
    rows = json.loads(periscope("report", "--format", "json", cwd=repo.path).stdout)
    assert [(r["sha"], r["messages"], r["cost"]) for r in rows] == [(sha, 1, 0.25)]
    for by in ("model", "day", "session"):
        assert periscope("report", "--by", by, cwd=repo.path).returncode == 0
    assert periscope("status", cwd=repo.path).returncode == 0
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("is not a plausible dollar figure for one message") == 3
    assert log.count("is not a real message's") == 2


def test_a_message_without_its_own_time_is_skipped_and_a_rebuild_makes_the_same_events(repo):
    # Without a time the event was dated by the clock at ingest: a rebuild made the same event id
    # with another time, which the local store (keyed by time and id) kept twice, and the list price
    # was the one in force in 1970.
    no_time = message_record(repo.path, id="no-time")
    del no_time["time"]
    text_time = message_record(repo.path, id="text-time", time="yesterday")
    float_time = message_record(repo.path, id="float-time", time=1764000000123.0)
    append_spool(repo.path, no_time, text_time, float_time)
    commit(repo.path, "c1")
    events = {e["message_id"]: e for e in repo.events("message")}
    assert set(events) == {"float-time"} and events["float-time"]["time"] == "2025-11-24T16:00:00.123Z"
    assert (state_dir(repo.path) / "hook.log").read_text().count("the message has no time") == 2
    for f in state_dir(repo.path).glob("state.db*"):  # a rebuild from the spool
        f.unlink(missing_ok=True)
    assert [e["message_id"] for e in repo.events("message")] == ["float-time"]


def test_a_time_past_the_year_9999_skips_its_record_and_every_command_keeps_working(repo):
    """An OpenCode time of 1e21 ms (found by fuzzing the plugin) reached `time.gmtime`, whose
    OSError no record's try caught: every flush, report and status failed for good.  A message or
    commit record dated before 1970 or after the year 9999 is now a logged skip."""
    late = [message_record(repo.path, id=f"late-{i}", time=t) for i, t in enumerate((1e21, 2**62, -5, 2**63 - 1))]
    append_spool(repo.path, *late, message_record(repo.path, id="ok", cost=0.25))
    sha = commit(repo.path, "c1")
    rows = json.loads(periscope("report", "--format", "json", cwd=repo.path).stdout)
    assert [(r["sha"], r["messages"]) for r in rows] == [(sha, 1)]
    assert periscope("status", cwd=repo.path).returncode == 0
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("is not between 1970 and the year 10000") == len(late) and "Traceback" not in log


def _rebuilt_export(repo) -> tuple[str, str]:
    """`report --by commit` and `export` after state.db and the local store are made again from
    the spool (the user's store: XDG_DATA_HOME)."""
    import os

    for f in state_dir(repo.path).glob("state.db*"):
        f.unlink(missing_ok=True)
    for f in Path(os.environ["XDG_DATA_HOME"]).glob("periscope/events.db*"):
        f.unlink(missing_ok=True)
    return _report_and_export(repo)


def _report_and_export(repo) -> tuple[str, str]:
    assert periscope("flush", cwd=repo.path).returncode == 0
    report = periscope("report", "--format", "json", cwd=repo.path).stdout
    return report, periscope("export", cwd=repo.path).stdout


def test_commit_records_that_name_no_commit_or_no_time_are_skipped_and_the_rest_ingested(repo, tmp_path):
    """Found by fuzzing the spool (stop 33).  A commit record's `sha` that was not a string reached
    `git log` as an argument outside the record's own try: every later flush, report and export
    failed, for good; a reflog subject that was not a string did the same; a `sha` starting with
    "-" was read by git as an option (`--output=FILE` wrote a file).  A commit or rewrite record
    without a time was dated by the clock, so a rebuild made its event with another time.  Each is
    now a logged skip, and the records after it are applied."""
    append_spool(repo.path, message_record(repo.path, id="before", cost=0.5))
    a = commit(repo.path, "A")
    pwned = tmp_path / "PWNED.txt"
    zeros = "0" * 37 + "abc"

    def bad_commit(**fields: object) -> dict[str, object]:
        rec = {"v": 1, "kind": "commit", "hook": "post-commit", "time": 1700000000000, "worktree": str(repo.path)}
        rec.update(sha=zeros, branch="main", reflog={"old": a, "new": zeros, "subject": "commit"}, rebasing=False)
        rec.update(reflog_prev=None, **fields)
        return rec

    no_time = bad_commit()
    del no_time["time"]
    bad = [
        bad_commit(sha=1),
        bad_commit(sha=["a", "list"]),
        bad_commit(sha=f"--output={pwned}"),
        bad_commit(reflog={"old": a, "new": zeros, "subject": 5}),
        bad_commit(parents=["-3"]),
        bad_commit(hook="pre-push"),
        bad_commit(worktree="."),
        bad_commit(time=""),
        no_time,
        {"v": 1, "kind": "commit", "hook": "post-rewrite", "worktree": str(repo.path), "command": "amend",
         "pairs": [[a, zeros]]},
        {"v": 1, "kind": "commit", "hook": "post-rewrite", "time": 1700000000000, "worktree": str(repo.path),
         "command": "rebase", "pairs": [[a, "--output=x"]]},
    ]  # fmt: skip
    append_spool(repo.path, *bad)
    append_spool(repo.path, message_record(repo.path, id="after", cost=0.25))
    c = commit(repo.path, "C", filename="c.txt")
    report, export = _report_and_export(repo)
    assert [(r["sha"], r["messages"]) for r in json.loads(report)] == [(a, 1), (c, 1)]
    assert not pwned.exists()
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("skipped an invalid commit record") == len(bad) and "Traceback" not in log
    assert _rebuilt_export(repo) == (report, export)


def test_a_message_in_a_relative_folder_belongs_to_no_worktree_wherever_the_flush_runs(repo, tmp_path):
    """A message whose `cwd` was relative (".") went to the worktree holding the flush's own
    folder: the repository's when flushed there, another (or none) when a rebuild ran elsewhere.
    It now belongs to no worktree, in every flush."""
    append_spool(repo.path, message_record(repo.path, id="relative", cwd="."))
    append_spool(repo.path, message_record(repo.path, id="absolute", cost=0.25))
    c = commit(repo.path, "C")
    first = _report_and_export(repo)
    assert [(r["sha"], r["messages"]) for r in json.loads(first[0])] == [(c, 1)]
    for f in state_dir(repo.path).glob("state.db*"):
        f.unlink(missing_ok=True)
    assert periscope("flush", "--repo", str(repo.path), cwd=tmp_path).returncode == 0
    report = periscope("report", "--format", "json", cwd=repo.path).stdout
    assert report == first[0]


def test_a_name_of_the_wrong_type_is_recorded_empty_and_the_message_kept(repo):
    """A number or an object where a plugin should have written a model, provider, agent, session,
    branch or title: the message's usage still counts (it was skipped whole before), the name is
    empty (an integer keeps its digits), a lone UTF-16 half becomes U+FFFD, a title is cut to 200
    characters.  Every event still matches the schema."""
    wrong = [
        message_record(repo.path, id="m_num", model=123, session_id=7),
        message_record(repo.path, id="m_obj", provider={"p": 1}, agent=True, git={"branch": ["x"], "sha": 5.5}),
        message_record(repo.path, id="m_half", model="claude-\ud800x", session_id="ses_t"),
    ]
    append_spool(
        repo.path,
        session_record("ses_t", "T" * 300, parent_id={"id": 1}, agent=["a"]),
        session_record("ses_obj", title={"t": 1}),
        session_record({"not": "an id"}, "skipped"),
        *wrong,
    )
    commit(repo.path, "c1")
    events = repo.events()
    messages = {e["message_id"]: e for e in events if e["type"] == "message"}
    assert sorted(messages) == ["m_half", "m_num", "m_obj"]
    assert messages["m_num"]["model"] == "123" and messages["m_num"]["session"]["id"] == "7"
    assert messages["m_obj"]["provider"] is None and messages["m_obj"]["session"]["agent"] is None
    assert messages["m_obj"]["repo"]["branch"] is None and messages["m_obj"]["repo"]["sha"] is None
    assert messages["m_half"]["model"] == "claude-\ufffdx"
    assert messages["m_half"]["session"]["title"] == "T" * 200
    assert messages["m_half"]["session"]["parent_id"] is None
    [linked] = [e for e in events if e["type"] == "commit"]
    assert linked["usage"]["messages"] == 3
    event_schema = schemas.load("events")
    for e in events:
        jsonschema.validate(e, event_schema)
    assert "skipped an invalid session record" in (state_dir(repo.path) / "hook.log").read_text()


def test_web_searches_and_speed_that_are_not_what_they_say_price_the_tokens_alone(repo):
    """A search count that is not a positive integer, or a speed other than "fast": the message is
    kept and priced as a standard request without searches (its tokens are worth more than the
    slip), and its event says neither."""
    odd = [("m_str", "3", "Fast"), ("m_neg", -2, 1), ("m_bool", True, None), ("m_float", 2.0, "standard")]
    append_spool(
        repo.path,
        message_record(repo.path, id="m_ok", web_searches=2, speed="fast"),
        *(message_record(repo.path, id=mid, web_searches=n, speed=speed) for mid, n, speed in odd),
    )
    commit(repo.path, "c1")
    messages = {e["message_id"]: e for e in repo.events("message")}
    assert (messages["m_ok"]["web_searches"], messages["m_ok"]["speed"]) == (2, "fast")
    for mid, _, _ in odd:
        assert "web_searches" not in messages[mid] and "speed" not in messages[mid]
        assert messages[mid]["list_cost"] == messages["m_str"]["list_cost"]
    if messages["m_ok"]["list_cost"] is not None:  # a price table (Python 3.11+): the searches are priced
        assert messages["m_ok"]["list_cost"] == pytest.approx(messages["m_str"]["list_cost"] + 0.02, abs=1e-9)
    [linked] = repo.commit_events()
    assert linked["usage"]["messages"] == 5


def test_classify_commit():
    assert classify_commit("commit (initial): x") == "commit"
    assert classify_commit("commit (amend): x") == "amend"
    assert classify_commit("commit (merge): x") == "merge"
    assert classify_commit("cherry-pick: x") == "cherry-pick"
    assert classify_commit("commit (cherry-pick): x") == "cherry-pick"  # finished after a conflict
    assert classify_commit('revert: Revert "x"') == "revert"
    assert classify_commit("rebase (pick): x") is None
    assert classify_commit("rebase -i (squash): x") is None
    assert classify_commit("pull --rebase (pick): x") is None


def test_records_and_events_match_the_json_schemas(repo):
    append_spool(repo.path, session_record("ses_01", "T"), message_record(repo.path))
    old = commit(repo.path, "c1")
    repo.git("commit", "-q", "--amend", "-m", "c1'")
    spool_schema = schemas.load("spool-record")
    for rec in spool.iter_records(str(spool_path(repo.path))):
        jsonschema.validate(rec, spool_schema)
    events = repo.events()
    assert {e["type"] for e in events} == {"message", "commit", "rewrite"}
    new = repo.git("rev-parse", "HEAD")
    assert [e["mappings"] for e in events if e["type"] == "rewrite"] == [[{"old": old, "new": new}]]
    event_schema = schemas.load("events")
    for e in events:
        jsonschema.validate(e, event_schema)


def test_deep_or_long_garbage_in_the_spool_is_skipped_and_the_rest_read(repo):
    """One line nested deeper than the interpreter's recursion limit made flush, report, status and
    export fail for good (the spool is never shortened); a 4 MB line of `{"v"` took minutes."""
    append_spool(repo.path, message_record(repo.path, id="before", tokens=(3, 0, 0, 0, 0)))
    with open(spool_path(repo.path), "ab") as f:
        f.write(b"[" * 100_000 + b"\n" + b"x" + b'{"v"' * 1_000_000 + b"\n")
    append_spool(repo.path, message_record(repo.path, id="after", tokens=(4, 0, 0, 0, 0)))
    sha = commit(repo.path, "c1")
    repo.flush()
    assert {r["sha"]: r["tokens"]["input"] for r in repo.report()} == {sha: 7}
    assert "2 malformed spool line(s) skipped" in periscope("status", cwd=repo.path).stdout
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("spool: skipped a malformed line") == 2 and "Traceback" not in log


WRITER = textwrap.dedent("""
    import json, sys, time
    from periscope_hooks import spool
    path, prefix, n, cwd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    for i in range(n):
        spool.append(path, {"v": 1, "kind": "message", "id": f"{prefix}-{i}", "session_id": prefix,
            "time": int(time.time() * 1000), "provider": "p", "model": "m", "agent": "build",
            "tokens": {"input": 1, "output": 2, "reasoning": 0, "cache_read": 0, "cache_write": 0},
            "cost": 0.001, "cwd": cwd, "git": {"branch": "main", "sha": None}})
""")


def test_parallel_writers_hooks_and_flushers_lose_and_double_count_nothing(repo):
    sp = spool_path(repo.path)
    sp.parent.mkdir(parents=True, exist_ok=True)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(sp), f"w{k}", "300", str(repo.path)]) for k in range(3)
    ]
    flushers = [subprocess.Popen([sys.executable, "-m", "periscope_hooks", "flush"], cwd=repo.path) for _ in range(2)]
    shas = [commit(repo.path, f"c{i}", filename=f"f{i}.txt") for i in range(6)]
    for p in writers + flushers:
        assert p.wait(timeout=120) == 0
    shas.append(commit(repo.path, "final", filename="final.txt"))
    events = repo.events()
    message_ids = [e["message_id"] for e in events if e["type"] == "message"]
    assert len(message_ids) == 900 and len(set(message_ids)) == 900
    commits = [e for e in events if e["type"] == "commit"]
    assert len({e["event_id"] for e in commits}) == len(commits)
    linked = sum(e["usage"]["messages"] for e in commits)
    conn = sqlite3.connect(str(state_dir(repo.path) / "state.db"))
    pending = conn.execute("SELECT count(*) FROM messages WHERE link_id IS NULL").fetchone()[0]
    assert linked + pending == 900
    assert pending == 0  # the final commit came after every writer finished
    report = repo.report()
    assert sum(r["messages"] for r in report) == 900
    assert sum(r["tokens"]["output"] for r in report) == 1800


def test_commit_event_ids_survive_a_new_remote_and_a_rebuilt_state_db(repo):
    repo.git("remote", "remove", "origin")
    append_spool(repo.path, message_record(repo.path, id="r1"))
    sha = commit(repo.path, "before any remote")
    before = {e["event_id"] for e in repo.commit_events()}
    assert len(before) == 1
    # A remote is added later, then state.db is lost and rebuilt from the spool.
    repo.git("remote", "add", "origin", "https://example.com/acme/widgets.git")
    db = state_dir(repo.path) / "state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    events = repo.commit_events()  # the local store deduplicates by event_id
    assert {e["event_id"] for e in events} == before
    assert [e["commit"]["sha"] for e in events] == [sha]
    assert (state_dir(repo.path) / "repo-id").read_text().startswith("local:")


def test_bulk_messages_queue_the_same_events_as_one_by_one(tmp_path):
    """A run of messages is stored in bulk; a run holding a message stored before falls back to one
    by one.  Both give the same events, in spool order, as the per-message path."""
    from periscope_hooks import events

    sd = tmp_path / "periscope"
    recs = [
        message_record(None, id=f"b{i}", cwd="", session_id=f"ses_{i % 2}", time=1764000000000 + i) for i in range(6)
    ]
    append_spool(None, session_record("ses_0", "Title"), *recs[:3], recs[1], *recs[3:], path=sd / "spool.jsonl")
    result = process_spool(sd)
    assert (result.messages, result.duplicates) == (6, 1)
    conn = open_state_db(sd)
    bodies = [r[0] for r in conn.execute("SELECT body FROM outbox ORDER BY seq")]
    want = []
    for rec in recs:
        row = conn.execute("SELECT * FROM messages WHERE id = ?", (rec["id"],)).fetchone()
        session = conn.execute("SELECT * FROM sessions WHERE id = ?", (rec["session_id"],)).fetchone()
        want.append(json.dumps(events.message_event(row, session, None), separators=(",", ":"), sort_keys=True))
    assert bodies == want
    assert conn.execute("SELECT created FROM event_counts WHERE type = 'message'").fetchone()[0] == 6


def test_events_go_to_the_outbox_when_the_store_cannot_take_them(tmp_path):
    sd = tmp_path / "periscope"
    append_spool(None, *[message_record(None, id=f"s{i}", cwd="") for i in range(3)], path=sd / "spool.jsonl")
    offered = []

    def busy(rows):
        offered.append(len(rows))
        return False

    process_spool(sd, store_now=busy)
    conn = open_state_db(sd)
    assert offered == [3]
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 3
    assert conn.execute("SELECT created, delivered FROM event_counts WHERE type = 'message'").fetchone()[:] == (3, 0)


def _mixed_spool(root: Path, seed: int) -> list[dict]:
    """Messages in two worktrees and no worktree, sessions, plain, replayed, squash, duplicate and
    agent commits (held for a message recorded after them, and not), duplicate messages and a
    message whose time is not an integer: every case a bulk run takes or leaves to the one-by-one path."""
    rng = random.Random(seed)
    trees = [str(root / "wt-a"), str(root / "wt-b"), ""]
    t = 1764000000000
    recs: list[dict] = []
    shas = iter(f"{i:040x}" for i in range(1, 10_000))
    last_sha: dict[str, str] = {}
    held_for: list[str] = []
    for i in range(400):
        t += rng.randint(1, 400_000)  # sometimes past the idle window
        tree = rng.choice(trees)
        roll = rng.random()
        if roll < 0.6 or not tree:
            mid = held_for.pop() if held_for and rng.random() < 0.5 else f"m{seed}_{i}"
            if recs and rng.random() < 0.05:
                mid = rng.choice([r["id"] for r in recs if r["kind"] == "message"] or [mid])
            extra = {"time": t if rng.random() > 0.03 else t + 0.5}  # a float time: not a bulk run's
            if rng.random() < 0.02:  # values the one-by-one path skips: the run must fall back
                extra.update(rng.choice([{"session_id": ["s"]}, {"model": {"m": 1}}, {"tokens": {"input": "x"}}]))
            fields = {"session_id": f"s{i % 3}", "tokens": (i, 1, 0, 2, 0), **extra}
            if isinstance(fields["tokens"], dict):
                bad_tokens = fields.pop("tokens")
                recs.append({**message_record(None, id=mid, cwd=tree, **fields), "tokens": bad_tokens})
            else:
                recs.append(message_record(None, id=mid, cwd=tree, **fields))
            continue
        if roll < 0.65:
            recs.append(session_record(f"s{i % 3}", f"title {i}"))
            continue
        sha = next(shas)
        commit = {
            "v": 1,
            "kind": "commit",
            "hook": "post-commit",
            "time": t,
            "worktree": tree,
            "sha": sha,
            "branch": "main",
            "parents": [last_sha[tree]] if tree in last_sha else [],
            "reflog": {"old": last_sha.get(tree), "new": sha, "subject": "commit: x"},
            "reflog_prev": None,
            "rebasing": False,
        }
        if roll < 0.7:
            commit["reflog"]["subject"] = "rebase (pick): x"
        elif roll < 0.74:
            commit.update(hook="post-merge", squash=True, reflog={"old": sha, "new": sha, "subject": "merge topic"})
        elif roll < 0.8:
            held_for.append(f"held{seed}_{i}")
            commit["agent"] = {"session_id": "s1", "message_id": held_for[-1]}
        last_sha[tree] = sha
        recs.append(commit)
        if rng.random() < 0.05:
            recs.append(dict(commit))  # the same record twice: linked once
    return recs


@pytest.mark.parametrize("seed", range(6))
def test_bulk_runs_decide_and_emit_exactly_as_record_by_record(tmp_path, seed):
    """ingest/bulk.py applies runs of messages and plain commits together; the same spool applied in
    batches of at most two records (a commit's messages all stored before its run) must give the
    same messages, links and events, byte for byte and in the same order."""
    for tree in ("wt-a", "wt-b"):
        (tmp_path / tree).mkdir()
    recs = _mixed_spool(tmp_path.resolve(), seed)
    longest = max(len(json.dumps(r)) for r in recs)  # as append_spool writes them
    results = []
    for name, batch_bytes in (("bulk", 4 << 20), ("small-batches", longest + 1)):
        sd = tmp_path / name
        append_spool(None, *recs, path=sd / "spool.jsonl")
        result = process_spool(sd, batch_bytes=batch_bytes)
        conn = open_state_db(sd)
        messages = conn.execute(
            "SELECT m.id, m.link_id IS NULL, l.sha, l.kind, m.spool_offset FROM messages m"
            " LEFT JOIN links l ON l.id = m.link_id ORDER BY m.spool_offset"
        ).fetchall()
        links = conn.execute(
            "SELECT sha, kind, origin, emitted, hold_until_ms FROM links ORDER BY sha, kind"
        ).fetchall()
        bodies = [r[0] for r in conn.execute("SELECT body FROM outbox ORDER BY seq")]
        conn.close()
        results.append((vars(result), messages, links, bodies))
    assert results[0] == results[1]
    assert results[0][0]["commits"] > 5 and results[0][0]["messages"] > 50
    assert sum(r[0]["skipped"] for r in results) == 2 * results[0][0]["skipped"]


def test_ingest_gives_the_cyclic_collector_back_as_it_found_it(tmp_path):
    """Ingest pauses Python's cyclic GC while it applies batches (run.py); the caller's setting
    is restored, even when ingest fails."""
    import gc

    sd = tmp_path / "periscope"
    append_spool(None, message_record(None, cwd=""), path=sd / "spool.jsonl")
    assert gc.isenabled()
    process_spool(sd)
    assert gc.isenabled()
    gc.disable()
    try:
        append_spool(None, message_record(None, cwd=""), path=sd / "spool.jsonl")
        assert process_spool(sd).messages == 1
        assert not gc.isenabled()
    finally:
        gc.enable()
    conn = open_state_db(sd)
    conn.execute("DROP TABLE messages")  # a damaged state.db: the batch fails
    conn.close()
    append_spool(None, message_record(None, cwd=""), path=sd / "spool.jsonl")
    with pytest.raises(sqlite3.Error):
        process_spool(sd)
    assert gc.isenabled()


def test_a_commits_parents_come_from_its_record_when_git_cannot_tell(repo, monkeypatch):
    """The sh hook records no parents; ingest asked git, and a commit gone since (collected) or a
    git that failed once gave none: the commit event was sent with "parents": [], and with the real
    ones after a rebuild, one id with two bodies (a chaos sweep).  A plain commit's own reflog entry
    names its one parent (HEAD before it), and a first commit has none: recorded, never asked."""
    from periscope_hooks.sinks.local import iter_events

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # the only flusher is the one below
    first = commit(repo.path, "first", filename="a.txt")
    append_spool(repo.path, message_record(repo.path, id="p1"))
    second = commit(repo.path, "second", filename="b.txt")
    env = {**os.environ, "PATH": "/nonexistent"}  # no git for the flusher: it cannot be asked
    subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "_background-flush", str(state_dir(repo.path))],
        env=env,
        check=True,
        timeout=60,
    )
    (event,) = [e for e in iter_events("commit") if e["commit"]["sha"] == second]
    assert event["commit"]["parents"] == [first]


def test_a_bad_reconcile_seen_record_is_a_logged_skip_and_a_good_one_is_kept(repo):
    """What reconciliation compared comes back from the spool (`reconcile-seen`): a record with a
    value of the wrong shape is skipped with its reason, and the others change what state.db
    remembers in spool order (a reset forgets all, a change adds and forgets)."""
    from periscope_hooks import reconcile, statedb

    sha = lambda c: c * 40  # noqa: E731
    base = {"v": 1, "kind": "reconcile-seen", "time": 1700000000000}
    bad = [
        {**base, "examined": {sha("a"): "gone"}},
        {**base, "examined": {"--output=x": "lost"}},
        {**base, "tips_added": [5]},
        {**base, "upstream": ["a", "list"]},
        {**base, "examined": ["not", "a", "map"]},
        {k: v for k, v in base.items() if k != "time"},
    ]
    good = [
        {**base, "tips_added": [sha("1"), sha("2")], "upstream": sha("1"), "examined": {sha("a"): "live"}},
        {**base, "reset": True},
        {**base, "tips_added": [sha("1"), sha("2")], "upstream": sha("1"), "examined": {sha("a"): "live", sha("b"): "lost"}},
        {**base, "tips_added": [sha("3")], "tips_dropped": [sha("2")], "upstream": sha("1"), "examined": {sha("a"): "lost"}, "forgotten": [sha("b")]},
    ]  # fmt: skip
    append_spool(repo.path, *bad[:3], *good, *bad[3:])
    conn = open_state_db(state_dir(repo.path))
    try:
        process_spool(state_dir(repo.path), conn)
        seen = reconcile.Seen.load(statedb.get_meta(conn, statedb.Meta.RECONCILE_SEEN))
    finally:
        conn.close()
    assert seen == reconcile.Seen([sha("1"), sha("3")], sha("1"), {sha("a"): "lost"})
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("skipped an invalid reconcile-seen record") == len(bad) and "Traceback" not in log


def test_a_change_of_what_reconciliation_remembers_applies_to_the_same_memory() -> None:
    """Seen.changes_from and Seen.changed are inverse: the record a run writes, applied to what
    it started from, gives what it compared (the tips, the upstream tip, the commits and classes)."""
    from periscope_hooks import reconcile
    from periscope_hooks.ingest import records

    rng = random.Random(35)
    shas = [f"{i:040x}" for i in range(12)]
    for _ in range(300):
        before, after = (
            reconcile.Seen(
                sorted(rng.sample(shas, rng.randint(0, 4))),
                rng.choice([None, shas[0]]),
                {c: rng.choice(["lost", "live"]) for c in rng.sample(shas, rng.randint(0, 5))},
            ).kept()
            for _ in range(2)
        )
        changes = after.changes_from(before)
        if changes is None:
            assert after == before
            continue
        rec = records.parse(json.loads(json.dumps(reconcile.seen_record(changes, 1700000000000))))
        assert isinstance(rec, records.ReconcileSeen)
        assert before.changed(rec) == after


def test_the_spool_schema_states_the_bounds_ingest_keeps():
    """A cost past MAX_MESSAGE_COST or a token count past MAX_TOKENS is a unit mistake ingest
    skips the message for; the schema said no maximum, so a writer checking its lines against it
    (the OpenCode plugin's fuzzing did) found them valid and lost the message.  Kept in step."""
    from periscope_hooks.ingest import records

    schema = json.loads((Path(schemas.__file__).parent / "schema" / "spool-record.schema.json").read_text())
    message = schema["$defs"]["message"]["properties"]
    assert message["cost"]["maximum"] == records.MAX_MESSAGE_COST
    assert {v["maximum"] for v in message["tokens"]["properties"].values()} == {records.MAX_TOKENS}
