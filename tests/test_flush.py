from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time

from testing.delivery import point_config_at
from testing.util import append_spool, commit, message_record, periscope, state_dir


def test_background_flush_returns_at_once_and_delivers(repo):
    append_spool(repo.path, message_record(repo.path, id="bg1"))
    start = time.monotonic()
    # capture_output: the detached child must not hold our pipes open.
    proc = subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "flush", "--background"],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and time.monotonic() - start < 10
    from periscope_hooks.sinks.local import iter_events

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(e.get("message_id") == "bg1" for e in iter_events("message")):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the background flush did not deliver")


def test_one_flusher_per_repository(repo):
    append_spool(repo.path, message_record(repo.path, id="locked1"))
    sd = state_dir(repo.path)
    sd.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(sd / "flush.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        # A background flusher finds the lock taken and leaves at once, delivering nothing.
        periscope("_background-flush", str(sd))
        from periscope_hooks.sinks.local import iter_events

        assert not any(e.get("message_id") == "locked1" for e in iter_events())
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    periscope("flush", cwd=repo.path)
    assert any(e.get("message_id") == "locked1" for e in repo.events("message"))


def test_broken_config_keeps_events_in_the_outbox(repo):
    path = os.path.join(os.environ["XDG_CONFIG_HOME"], "opencode", "analytics.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{broken")
    append_spool(repo.path, message_record(repo.path, id="kept"))
    commit(repo.path, "c")
    proc = periscope("flush", cwd=repo.path, check=False)
    assert proc.returncode == 1 and "analytics.json" in proc.stderr
    assert "outbox" in periscope("status", cwd=repo.path, check=False).stdout
    os.remove(path)
    assert any(e.get("message_id") == "kept" for e in repo.events("message"))


def test_a_foreground_flush_says_when_it_waits_to_retry(repo):
    """Against an endpoint that refuses, a foreground flush retries for its budget (60 s by
    default): it says so when it starts waiting, not only at the end."""
    import socket

    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_config_at(f"http://127.0.0.1:{port}/v1/events")
    append_spool(repo.path, message_record(repo.path, id="waits"))
    env = {"PERISCOPE_FLUSH_BUDGET": "3", "PERISCOPE_BACKOFF_BASE": "0.2", "PERISCOPE_BACKGROUND": "0"}
    proc = periscope("flush", cwd=repo.path, check=False, env=env)
    first, last = proc.stderr.splitlines()  # one line when it starts waiting, one at the end
    assert re.fullmatch(
        r"delivery failed: .*ConnectError.*; retrying for up to [1-3] s \(PERISCOPE_FLUSH_BUDGET\)\."
        r" Ctrl-C stops; the events stay in the outbox",
        first,
    ), first
    assert proc.returncode == 1 and last.startswith("error: delivery incomplete: ") and "remain in the outbox" in last


def test_a_broken_sink_setting_with_nothing_waiting_says_just_that(repo):
    """It said "delivery incomplete: ... (0 event(s) remain in the outbox)" (a docs sweep): the
    setting is the news, and nothing waits because of it yet."""
    repo.flush()
    proc = periscope("flush", cwd=repo.path, check=False, env={"PERISCOPE_SINK": "bogus"})
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "error: unknown sink 'bogus' in $PERISCOPE_SINK hint: nothing waits in the outbox now"
    )
    append_spool(repo.path, message_record(repo.path, id="waits"))
    proc = periscope("flush", cwd=repo.path, check=False, env={"PERISCOPE_SINK": "bogus"})
    assert proc.returncode == 1 and "(1 event(s) remain in the outbox)" in proc.stderr, proc.stderr


def test_a_late_background_flusher_never_recreates_a_moved_repository(tmp_path):
    """The hook's detached flusher can start seconds late; if the repository moved meanwhile, it
    must not create the old path again (a present path hides the move from worktree tracking)."""
    from periscope_hooks.flush import background_child

    gone = tmp_path / "moved away" / ".git" / "periscope"
    assert background_child(str(gone)) == 0
    assert not (tmp_path / "moved away").exists()


def test_events_a_report_queued_reach_the_local_store_before_newer_ones(repo, monkeypatch):
    """`report` and `status` ingest without delivering: their events wait in the outbox, and the
    next flush stored the events its own ingest made straight into the local store, before them.
    The store then held a commit's rewrite before the commit (a receiver applying rewrites in order
    left the usage on the amended-away commit), an order no rebuild of state.db makes."""
    import json

    from testing.util import git

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    append_spool(repo.path, message_record(repo.path, id="m1"))
    b = commit(repo.path, "B")
    periscope("report", cwd=repo.path)  # ingests: B's commit event waits in the outbox
    append_spool(repo.path, message_record(repo.path, id="m2"))
    git(repo.path, "commit", "-q", "--amend", "-m", "B, amended")
    periscope("flush", cwd=repo.path)
    stored = [json.loads(line) for line in periscope("export", cwd=repo.path).stdout.splitlines()]
    order = [(e["type"], e.get("commit", {}).get("sha") or [m["old"] for m in e.get("mappings", [])]) for e in stored]
    order = [o for o in order if o[0] != "message"]
    assert [kind for kind, _ in order] == ["commit", "commit", "rewrite"], order
    assert order[0] == ("commit", b) and order[2] == ("rewrite", [b])


def test_a_state_folder_that_cannot_be_written_is_said_in_one_line(repo):
    """A read-only state folder (a read-only mount, say) failed as `flush failed: OSError: ...
    flush.lock` with a hint to read the log; it says which file and what to do.  Root writes
    through modes, so a folder in the lock's place stands in for the refusal here."""
    append_spool(repo.path, message_record(repo.path, id="ro1"))
    sd = state_dir(repo.path)
    (sd / "flush.lock").mkdir(parents=True)
    proc = periscope("flush", cwd=repo.path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: cannot write {sd / 'flush.lock'} (Is a directory) hint: ")
    assert "must be writable" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_records_that_come_while_a_foreground_flush_holds_the_lock_are_flushed(repo):
    """A commit made while a foreground flush retried delivery: its flusher found the lock taken and
    left, and the foreground flush ended without looking at the spool again, so the commit waited
    for the next commit or message (a chaos sweep).  Now a flusher in the background takes it."""
    import socket

    from periscope_hooks import paths
    from periscope_hooks.state import open_state_db

    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = point_config_at(f"http://127.0.0.1:{port}/v1/events")
    append_spool(repo.path, message_record(repo.path, id="before"))
    env = {**os.environ, "PERISCOPE_FLUSH_BUDGET": "3", "PERISCOPE_BACKOFF_BASE": "0.2"}
    foreground = subprocess.Popen(
        [sys.executable, "-m", "periscope_hooks", "flush"], cwd=repo.path, env=env, stderr=subprocess.PIPE, text=True
    )
    assert foreground.stderr is not None
    assert foreground.stderr.readline().startswith("delivery failed")  # it holds the lock, retrying
    append_spool(repo.path, message_record(repo.path, id="meanwhile"))
    sd = state_dir(repo.path)
    periscope("_background-flush", str(sd))  # what the commit's hook starts: the lock is taken, it leaves
    config.unlink()  # the local store from now on
    foreground.communicate(timeout=60)

    def stored() -> bool:
        conn = open_state_db(sd)
        try:
            return conn.execute("SELECT 1 FROM messages WHERE id = 'meanwhile'").fetchone() is not None
        finally:
            conn.close()

    deadline = time.monotonic() + 30
    while not stored() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored(), (sd / paths.HOOK_LOG_NAME).read_text() if (sd / paths.HOOK_LOG_NAME).exists() else "no log"
    from periscope_hooks.sinks.local import iter_events  # read, not flushed first (repo.events flushes)

    def delivered() -> bool:
        return any(e.get("message_id") == "meanwhile" for e in iter_events("message"))

    while not delivered() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert delivered()


def test_a_torn_last_line_does_not_keep_a_background_flusher_running(repo):
    """A writer that died mid-append leaves a torn last line, which ingest leaves for the writer to
    finish.  A background flusher looks again for records appended while it ran, and counted the
    torn bytes as such: it flushed again and again for as long as the line stayed torn (a chaos
    sweep: still running after 60 s, holding flush.lock)."""
    append_spool(repo.path, message_record(repo.path, id="whole"))
    with open(state_dir(repo.path) / "spool.jsonl", "ab") as f:
        f.write(b'{"v":1,"kind":"message","id":"torn","session_id":"s1","ti')
    proc = subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "_background-flush", str(state_dir(repo.path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    from periscope_hooks.sinks.local import iter_events

    assert [e["message_id"] for e in iter_events("message")] == ["whole"]


def test_a_long_first_ingest_is_announced_by_a_foreground_flush(tmp_path):
    """`periscope flush` over a long history says what it is doing first, as `report` does (a
    minute or more of silence otherwise); a short one, and a background flush, say nothing."""
    from testing import history

    repo = tmp_path / "r"
    shas = history.make_commits(repo, 2_400)
    history.write_history(state_dir(repo) / "spool.jsonl", 24_000, 20, str(repo.resolve()), shas)
    megabytes = round((state_dir(repo) / "spool.jsonl").stat().st_size / 1e6)
    first = periscope("flush", cwd=repo)
    assert (
        first.stderr
        == f"ingesting {megabytes:,} MB of new records first (a long history takes a while the first time)\n"
    )
    assert first.stdout == ""
    append_spool(repo, message_record(repo))
    again = periscope("flush", cwd=repo)
    assert again.stderr == "" and again.stdout == ""
    from periscope_hooks.sinks.local import iter_events

    assert sum(1 for _ in iter_events("message")) == 24_001
