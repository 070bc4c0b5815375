"""The git hooks, end to end through real repositories and the installed shims."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testing.util import (
    append_spool,
    commit,
    git,
    hook_records,
    message_record,
    periscope,
    session_record,
    spool_path,
    state_dir,
)


def add_messages(repo, n=1, cwd=None, **kw):
    recs = [message_record(repo.path, cwd=cwd, **kw) for _ in range(n)]
    append_spool(repo.path, *recs)
    return recs


def totals(recs):
    keys = ("input", "output", "reasoning", "cache_read", "cache_write")
    return {k: sum(r["tokens"][k] for r in recs) for k in keys}


def by_sha(events):
    return {e["commit"]["sha"]: e for e in events}


def test_commit_takes_pending_usage_once(repo):
    recs = add_messages(repo, 2, tokens=(100, 20, 5, 40, 3), cost=0.25)
    sha = commit(repo.path, "first")
    recs2 = add_messages(repo, 1, tokens=(7, 1, 0, 0, 0), cost=0.01)
    sha2 = commit(repo.path, "second")
    events = by_sha(repo.commit_events())
    usage = events[sha]["usage"]
    assert {k: usage[k] for k in ("messages", "tokens", "cost")} == {"messages": 2, "tokens": totals(recs), "cost": 0.5}
    # claude-sonnet-4 at $3/$15/$0.30/$3.75 per Mtok: 698.25 micro-dollars a message, rounded to 698.
    assert usage["list_cost"] == 0.001396 and usage["cost_sources"]["reported"] == 2
    assert events[sha]["commit"]["kind"] == "commit"
    assert events[sha]["commit"]["parents"] == []  # the initial commit
    assert events[sha]["origin"] == "human"
    assert events[sha]["repo"] == {"url": "https://example.com/acme/widgets.git", "branch": "main"}
    assert events[sha2]["usage"]["tokens"] == totals(recs2)
    assert events[sha2]["commit"]["parents"] == [sha]
    assert events[sha]["by_model"][0]["model"] == "claude-sonnet-4"
    rows = {r["sha"]: r for r in repo.report()}
    assert rows[sha]["messages"] == 2 and rows[sha2]["messages"] == 1


def test_hook_prints_nothing_and_commit_is_fast_path(repo):
    add_messages(repo)
    (repo.path / "f").write_text("x")
    repo.git("add", "f")
    proc = subprocess.run(["git", "commit", "-q", "-m", "quiet"], cwd=repo.path, capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout == "" and proc.stderr == ""
    recs = [json.loads(line) for line in spool_path(repo.path).read_text().splitlines()]
    assert recs[-1]["kind"] == "commit" and recs[-1]["hook"] == "post-commit"


def test_no_verify_still_links(repo):
    add_messages(repo)
    sha = commit(repo.path, "nv", "--no-verify")
    assert sha in by_sha(repo.commit_events())


def test_detached_head(repo):
    commit(repo.path, "base")
    repo.git("checkout", "-q", "--detach")
    add_messages(repo)
    sha = commit(repo.path, "detached")
    ev = by_sha(repo.commit_events())[sha]
    assert ev["repo"]["branch"] is None
    assert ev["usage"]["messages"] == 1


def test_true_merge_and_fast_forward(repo):
    base = commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "feature")
    commit(repo.path, "feature work", filename="feature.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "main work", filename="main.txt")
    add_messages(repo, tokens=(11, 2, 0, 0, 0))
    repo.git("merge", "-q", "--no-edit", "feature")
    merge_sha = repo.git("rev-parse", "HEAD")
    ev = by_sha(repo.commit_events())[merge_sha]
    assert ev["commit"]["kind"] == "merge" and len(ev["commit"]["parents"]) == 2
    assert ev["usage"]["tokens"]["input"] == 11
    # A fast-forward makes no commit: no event, and pending usage waits for the next commit.
    repo.git("checkout", "-q", "-b", "ff", base)
    repo.git("checkout", "-q", "main")
    repo.git("checkout", "-q", "-b", "later")
    commit(repo.path, "later", filename="later.txt")
    repo.git("checkout", "-q", "main")
    add_messages(repo, tokens=(5, 0, 0, 0, 0))
    repo.git("merge", "-q", "--ff-only", "later")
    later_sha = repo.git("rev-parse", "HEAD")
    assert (
        later_sha not in by_sha(repo.commit_events())
        or by_sha(repo.commit_events())[later_sha]["usage"]["tokens"]["input"] != 5
    )
    nxt = commit(repo.path, "after ff")
    assert by_sha(repo.commit_events())[nxt]["usage"]["tokens"]["input"] == 5


def test_conflicted_merge_committed_by_hand_is_a_merge(repo):
    commit(repo.path, "base", filename="c.txt")
    repo.git("checkout", "-q", "-b", "other")
    commit(repo.path, "other side", filename="c.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "main side", filename="c.txt")
    git(repo.path, "merge", "other", check=False)
    (repo.path / "c.txt").write_text("resolved\n")
    repo.git("add", "c.txt")
    add_messages(repo)
    repo.git("commit", "-q", "--no-edit")
    sha = repo.git("rev-parse", "HEAD")
    assert by_sha(repo.commit_events())[sha]["commit"]["kind"] == "merge"


def test_squash_merge(repo):
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "topic")
    commit(repo.path, "t1", filename="t.txt")
    repo.git("checkout", "-q", "main")
    add_messages(repo, tokens=(3, 3, 3, 3, 3))
    repo.git("merge", "-q", "--squash", "topic")
    repo.git("commit", "-q", "-m", "squashed")
    sha = repo.git("rev-parse", "HEAD")
    ev = by_sha(repo.commit_events())[sha]
    assert ev["commit"]["kind"] == "squash"
    assert ev["usage"]["tokens"] == {"input": 3, "output": 3, "reasoning": 3, "cache_read": 3, "cache_write": 3}
    nxt = commit(repo.path, "plain after squash")
    add_messages(repo)
    nxt = commit(repo.path, "plain after squash 2")
    assert by_sha(repo.commit_events())[nxt]["commit"]["kind"] == "commit"


@pytest.mark.parametrize("abandon", [["reset", "-q", "--hard"], ["checkout", "-q", "-f", "topic"]])
def test_an_abandoned_squash_does_not_label_the_next_commit(repo, abandon):
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "topic")
    commit(repo.path, "t1", filename="t.txt")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--squash", "topic")
    repo.git(*abandon)  # the squash is given up
    add_messages(repo)
    sha = commit(repo.path, "an ordinary commit", filename="other.txt")
    assert by_sha(repo.commit_events())[sha]["commit"]["kind"] == "commit"


def test_amend_moves_usage_and_emits_rewrite(repo):
    add_messages(repo, tokens=(10, 0, 0, 0, 0))
    old = commit(repo.path, "to amend")
    add_messages(repo, tokens=(1, 0, 0, 0, 0))
    repo.git("commit", "-q", "--amend", "-m", "amended")
    new = repo.git("rev-parse", "HEAD")
    events = repo.events()
    commits = by_sha([e for e in events if e["type"] == "commit"])
    assert commits[new]["commit"]["kind"] == "amend"
    assert commits[new]["usage"]["tokens"]["input"] == 1  # only what was new: no double count
    rewrites = [e for e in events if e["type"] == "rewrite"]
    assert rewrites[-1]["command"] == "amend" and rewrites[-1]["mappings"] == [{"old": old, "new": new}]
    rows = {r["sha"]: r for r in repo.report()}
    assert old not in rows
    assert rows[new]["tokens"]["input"] == 11 and rows[new]["messages"] == 2


def test_rebase_does_not_swallow_pending_usage(repo):
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "topic")
    add_messages(repo, tokens=(20, 0, 0, 0, 0))
    t1 = commit(repo.path, "t1", filename="t1.txt")
    add_messages(repo, tokens=(30, 0, 0, 0, 0))
    t2 = commit(repo.path, "t2", filename="t2.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "upstream", filename="up.txt")
    repo.git("checkout", "-q", "topic")
    add_messages(repo, tokens=(7, 0, 0, 0, 0))  # pending while the rebase runs
    repo.git("rebase", "-q", "main")
    n1, n2 = repo.git("rev-parse", "HEAD~1"), repo.git("rev-parse", "HEAD")
    events = repo.events()
    rw = [e for e in events if e["type"] == "rewrite"][-1]
    assert rw["command"] == "rebase"
    assert rw["mappings"] == [{"old": t1, "new": n1}, {"old": t2, "new": n2}]
    rows = {r["sha"]: r for r in repo.report()}
    assert rows[n1]["tokens"]["input"] == 20 and rows[n2]["tokens"]["input"] == 30
    after = commit(repo.path, "after rebase", filename="x.txt")
    rows = {r["sha"]: r for r in repo.report()}
    assert rows[after]["tokens"]["input"] == 7


def test_a_rebase_replay_through_the_python_hook_writes_nothing(repo, monkeypatch):
    """The Python hook (pre-commit's path, PERISCOPE_SH_HOOK=0) recognises a replay as the shim
    does: no post-commit record per replayed commit; post-rewrite still moves the usage."""
    monkeypatch.setenv("PERISCOPE_SH_HOOK", "0")
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "topic")
    for i in range(5):
        add_messages(repo, tokens=(10 + i, 0, 0, 0, 0))
        commit(repo.path, f"t{i}", filename=f"t{i}.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "upstream", filename="up.txt")
    repo.git("checkout", "-q", "topic")
    before = spool_path(repo.path).read_text()
    repo.git("rebase", "-q", "main")
    added = hook_records(spool_path(repo.path).read_text()[len(before) :])
    assert [r["hook"] for r in added] == ["post-rewrite"] and len(added[0]["pairs"]) == 5
    rows = {r["sha"]: r for r in repo.report()}
    news = repo.git("rev-list", "--reverse", "main..topic").split()
    assert [rows[n]["tokens"]["input"] for n in news] == [10, 11, 12, 13, 14]
    # A commit made at a rebase's stop is the user's own (`git commit`, not `git rebase`): recorded.
    before = spool_path(repo.path).read_text()
    repo.git("rebase", "-q", "--exec", "git commit -q --allow-empty -m at-a-stop", "HEAD~1")
    added = hook_records(spool_path(repo.path).read_text()[len(before) :])
    stop = repo.git("rev-parse", "HEAD")
    assert [(r["hook"], r["sha"], r["rebasing"]) for r in added if r["hook"] == "post-commit"] == [
        ("post-commit", stop, True)
    ]


def test_cherry_pick_and_revert(repo):
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "side")
    picked = commit(repo.path, "side change", filename="side.txt")
    repo.git("checkout", "-q", "main")
    add_messages(repo)
    repo.git("cherry-pick", picked)
    cp = repo.git("rev-parse", "HEAD")
    add_messages(repo)
    repo.git("revert", "--no-edit", cp)
    rv = repo.git("rev-parse", "HEAD")
    events = by_sha(repo.commit_events())
    assert events[cp]["commit"]["kind"] == "cherry-pick"
    assert events[rv]["commit"]["kind"] == "revert"


def test_linked_worktrees_keep_usage_apart(repo, tmp_path):
    commit(repo.path, "base")
    wt = tmp_path / "second tree"
    repo.git("worktree", "add", "-q", "-b", "wt", str(wt))
    add_messages(repo, tokens=(100, 0, 0, 0, 0))  # main worktree
    add_messages(repo, tokens=(1, 0, 0, 0, 0), cwd=str(wt))  # linked worktree
    sha_wt = commit(wt, "in linked tree", filename="w.txt")
    sha_main = commit(repo.path, "in main tree", filename="m.txt")
    events = by_sha(repo.commit_events())
    assert events[sha_wt]["usage"]["tokens"]["input"] == 1
    assert events[sha_wt]["repo"]["branch"] == "wt"
    assert events[sha_main]["usage"]["tokens"]["input"] == 100


def test_commit_without_usage_emits_only_within_idle_window(repo):
    lonely = commit(repo.path, "no AI anywhere")
    assert lonely not in by_sha(repo.commit_events())
    # The message is a minute old: a commit record's time is git's, in whole seconds, so a message
    # sent in the commit's own second would count as inside even a zero-minute window.
    add_messages(repo, time=int(time.time() * 1000) - 60_000)
    commit(repo.path, "with AI")
    follow = commit(repo.path, "right after an AI session")
    ev = by_sha(repo.commit_events())[follow]
    assert ev["usage"]["messages"] == 0
    (repo.path / ".periscope.toml").write_text("idle_window_minutes = 0\n")
    quiet = commit(repo.path, "window closed")
    assert quiet not in by_sha(repo.commit_events())


def test_agent_commit_waits_for_its_in_flight_message(repo):
    add_messages(repo, tokens=(5, 0, 0, 0, 0))
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_inflight"}
    sha = commit(repo.path, "agent commit", env=env)
    assert sha not in by_sha(repo.commit_events())  # held until the message is recorded
    append_spool(repo.path, message_record(repo.path, id="msg_inflight", tokens=(40, 4, 0, 0, 0)))
    ev = by_sha(repo.commit_events())[sha]
    assert ev["origin"] == "agent"
    assert ev["usage"]["tokens"]["input"] == 45 and ev["usage"]["messages"] == 2
    assert ev["agent"]["message_included"] is True
    rows = {r["sha"]: r for r in repo.report()}
    assert rows[sha]["origin"] == "agent"


def test_agent_commit_whose_message_an_earlier_commit_took_says_so(repo):
    """Claude Code records the message that runs a tool before the tool runs: a human commit made
    while the agent's command runs takes it as pending usage, and keeps it.  The agent's commit
    then says its message is not included (it said `true` with none of its usage)."""
    append_spool(repo.path, message_record(repo.path, id="msg_running", tokens=(40, 4, 0, 0, 0)))
    human = commit(repo.path, "a human commit while the agent's command runs")
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_running"}
    agent = commit(repo.path, "the agent's commit", env=env, filename="agent.txt")
    events = by_sha(repo.commit_events())
    assert events[human]["usage"]["tokens"]["input"] == 40
    ev = events[agent]
    assert ev["origin"] == "agent" and ev["usage"]["messages"] == 0
    assert ev["agent"]["message_included"] is False
    assert "msg_running went to an earlier commit" in ev["note"]


def test_two_commits_whose_hooks_both_read_the_second_are_said_in_the_log(repo):
    """Two agents committing in one worktree within milliseconds: both post-commit hooks read HEAD
    after the second commit landed, and the first is never recorded.  Which hook was whose cannot
    be told; the log says a commit may be missing."""
    add_messages(repo, tokens=(5, 0, 0, 0, 0))
    no_hooks = ["-c", "core.hooksPath=/dev/null"]
    (repo.path / "x.txt").write_text("x\n")
    repo.git("add", "x.txt")
    repo.git(*no_hooks, "commit", "-q", "-m", "first agent's")
    first = repo.git("rev-parse", "HEAD")
    (repo.path / "y.txt").write_text("y\n")
    repo.git("add", "y.txt")
    repo.git(*no_hooks, "commit", "-q", "-m", "second agent's")
    second = repo.git("rev-parse", "HEAD")
    for session in ("ses_a", "ses_b"):  # both hooks run now, as in the race
        periscope("hook", "post-commit", cwd=repo.path, env={"PERISCOPE_SESSION_ID": session})
    events = by_sha(repo.commit_events())
    assert events[second]["usage"]["tokens"]["input"] == 5 and first not in events
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert f"a second record names {second[:12]}" in log and f"{first[:12]} may not have been recorded" in log


def test_agent_commit_emitted_without_message_after_timeout(repo):
    (repo.path / ".periscope.toml").write_text("agent_hold_minutes = 0.001\n")
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_never"}
    sha = commit(repo.path, "agent commit", env=env)
    time.sleep(0.2)
    ev = by_sha(repo.commit_events())[sha]
    assert ev["agent"]["message_included"] is False
    assert "not recorded in time" in ev["note"]
    # Arriving late, the message waits for the next commit rather than vanish.
    append_spool(repo.path, message_record(repo.path, id="msg_never", tokens=(9, 0, 0, 0, 0)))
    nxt = commit(repo.path, "next")
    assert by_sha(repo.commit_events())[nxt]["usage"]["tokens"]["input"] == 9


def test_missing_python_falls_back_and_commit_succeeds(repo):
    hook = repo.path / ".git" / "hooks" / "post-commit"
    text = hook.read_text()
    hook.write_text(
        text.replace(f"INSTALL_PYTHON={sys.executable}", "INSTALL_PYTHON=/nonexistent/python").replace(
            f"INSTALL_PYTHON='{sys.executable}'", "INSTALL_PYTHON=/nonexistent/python"
        )
    )
    env = {"PATH": "/usr/bin:/bin"}  # no `periscope` on PATH either
    commit(repo.path, "still commits", env=env)
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert "not found" in log


def _silent_git(repo: Path, *args: str, env: dict | None = None) -> None:
    """`git args` exits 0 and prints nothing (our hooks ran)."""
    proc = subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_a_hook_log_that_cannot_be_opened_keeps_the_fallback_silent(repo):
    """The install gone, no `periscope` on PATH, and hook.log not writable (another user's 0700
    state folder; here a folder in its place): the shim's note is dropped, never printed."""
    commit(repo.path, "makes the state folder")
    for name in ("post-commit", "post-rewrite"):
        hook = repo.path / ".git" / "hooks" / name
        text = hook.read_text()
        hook.write_text(
            text.replace(f"INSTALL_PYTHON={sys.executable}", "INSTALL_PYTHON=/nonexistent/python").replace(
                f"INSTALL_PYTHON='{sys.executable}'", "INSTALL_PYTHON=/nonexistent/python"
            )
        )
    log = state_dir(repo.path) / "hook.log"
    log.unlink(missing_ok=True)
    log.mkdir()
    _silent_git(repo.path, "commit", "-q", "--allow-empty", "-m", "silent", env={"PATH": "/usr/bin:/bin"})
    _silent_git(repo.path, "commit", "-q", "--amend", "--allow-empty", "-m", "amended", env={"PATH": "/usr/bin:/bin"})


def test_an_amend_with_no_coreutils_on_path_is_silent(repo):
    """git run with a PATH that has no `cat` (a service's minimal PATH): the post-rewrite shim
    reads git's pairs with it, and says nothing when it is missing."""
    commit(repo.path, "first")
    git_bin = shutil.which("git")
    assert git_bin is not None
    proc = subprocess.run(
        [git_bin, "commit", "-q", "--amend", "--allow-empty", "-m", "amended"],
        cwd=repo.path,
        env={**os.environ, "PATH": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_rebase_without_proc_is_silent(repo):
    """No /proc (macOS, the BSDs, a container hiding it): the shim cannot tell a rebase's replays
    from commits, and its failed reads of /proc stay off the terminal (one line a replay before)."""
    commit(repo.path, "base", filename="base.txt")
    git(repo.path, "checkout", "-q", "-b", "topic")
    commit(repo.path, "a", filename="a.txt")
    commit(repo.path, "b", filename="b.txt")
    git(repo.path, "checkout", "-q", "main")
    commit(repo.path, "m", filename="m.txt")
    git(repo.path, "checkout", "-q", "topic")
    # A private mount namespace with an empty /proc (root maps to root; others get a user namespace).
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    script = "mount -t tmpfs none /proc && exec git rebase -q main"
    proc = subprocess.run([*unshare, "sh", "-c", script], cwd=repo.path, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    records = hook_records(spool_path(repo.path).read_text())
    assert records[-1]["hook"] == "post-rewrite" and records[-1]["command"] == "rebase"


def test_corrupt_state_db_is_rebuilt_from_the_spool(repo):
    add_messages(repo, tokens=(13, 0, 0, 0, 0))
    # No background flusher: one still holding state.db open when the bytes below replace it
    # could checkpoint its WAL over them and leave a valid database (the race of processes that
    # meet the same damage has its own test in test_state.py).
    sha = commit(repo.path, "c1", env={"PERISCOPE_BACKGROUND": "0"})
    repo.flush()
    db = state_dir(repo.path) / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    rows = {r["sha"]: r for r in repo.report()}
    assert rows[sha]["tokens"]["input"] == 13
    assert "rebuilt" in periscope("status", cwd=repo.path).stdout
    assert len([e for e in repo.commit_events() if e["commit"]["sha"] == sha]) == 1


def test_locked_database_does_not_block_the_commit(repo):
    add_messages(repo, tokens=(2, 0, 0, 0, 0))
    db = (
        sqlite3.connect(str(state_dir(repo.path) / "state.db"))
        if (state_dir(repo.path) / "state.db").exists()
        else None
    )
    repo.flush()
    db = sqlite3.connect(str(state_dir(repo.path) / "state.db"), isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        sha = commit(repo.path, "while locked")
        assert time.monotonic() - start < 5
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert by_sha(repo.commit_events())[sha]["usage"]["tokens"]["input"] == 2


def test_read_only_state_dir_and_broken_config(repo):
    sd = state_dir(repo.path)
    sd.mkdir(parents=True, exist_ok=True)
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("{ not json")
    commit(repo.path, "broken config")  # succeeds; the flusher logs and keeps events
    # A state dir that cannot be written (a file in its place stops even root).
    cfg.unlink()
    os.rename(sd, str(sd) + ".aside")
    sd.write_text("not a directory")
    try:
        proc = subprocess.run(
            ["git", "commit", "-q", "--allow-empty", "-m", "unwritable state"],
            cwd=repo.path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and proc.stderr == ""
        fallback = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "hook.log"
        assert "the commit is unaffected" in fallback.read_text()
    finally:
        sd.unlink()
        os.rename(str(sd) + ".aside", sd)


def test_outside_a_repository_the_hook_exits_zero(tmp_path):
    proc = periscope("hook", "post-commit", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""


def test_sessions_and_subagents_in_commit_event(repo):
    append_spool(
        repo.path, session_record("ses_main", "Fix login"), session_record("ses_sub", "Explore", parent_id="ses_main")
    )
    add_messages(repo, session_id="ses_main")
    add_messages(repo, session_id="ses_sub", agent="explore")
    sha = commit(repo.path, "with sub-agent")
    ev = by_sha(repo.commit_events())[sha]
    sessions = {s["id"]: s for s in ev["sessions"]}
    assert sessions["ses_sub"]["is_subagent"] is True and sessions["ses_sub"]["parent_id"] == "ses_main"
    assert sessions["ses_main"]["title"] == "Fix login" and sessions["ses_main"]["is_subagent"] is False
    msgs = {e["session"]["id"]: e for e in repo.events("message")}
    assert msgs["ses_sub"]["session"]["is_subagent"] is True


def test_capture_switched_off_by_repo_settings(repo):
    (repo.path / ".periscope.toml").write_text("capture = false\n")
    add_messages(repo, id="off1")
    commit(repo.path, "not recorded")
    assert repo.events() == []
    assert repo.report() == []


def test_commit_messages_are_never_recorded(repo):
    """The reflog subject carries the commit message: only git's action is kept, and the kinds
    still come out right for every operation."""
    secret = "CommitMsgSentinel"
    commit(repo.path, f"base {secret}")
    add_messages(repo)
    commit(repo.path, f"work {secret}: with a colon")
    repo.git("commit", "--amend", "-q", "-m", f"amended {secret}")
    amended = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "side")
    picked = commit(repo.path, f"side {secret}", filename="side.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, f"main {secret}", filename="main.txt")
    add_messages(repo)
    repo.git("cherry-pick", picked)
    cp = repo.git("rev-parse", "HEAD")
    repo.git("merge", "-q", "--no-ff", "-m", f"merge {secret}", "side")
    merge = repo.git("rev-parse", "HEAD")
    events = by_sha(repo.commit_events())
    assert events[amended]["commit"]["kind"] == "amend"
    assert events[cp]["commit"]["kind"] == "cherry-pick"
    assert events[merge]["commit"]["kind"] == "merge"
    for path in state_dir(repo.path).iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path.name
    assert secret not in periscope("export", cwd=repo.path).stdout


def spool_commits(path):
    recs = [json.loads(line) for line in spool_path(path).read_text().splitlines()]
    return [r for r in recs if r["kind"] == "commit"]


@pytest.mark.parametrize("how", ["amend", "cherry-pick"])
def test_reflog_line_longer_than_the_read_window_still_classifies(repo, how):
    """An agent's one-line message over 8 KiB makes the newest reflog line longer than the hook's
    first read from the end: the window grows rather than reading the entry before it."""
    long_subject = "agent: " + "x" * 20_000
    base = commit(repo.path, "base")
    if how == "cherry-pick":
        repo.git("checkout", "-q", "-b", "side")
        picked = commit(repo.path, long_subject, filename="side.txt")
        repo.git("checkout", "-q", "main")
    else:
        commit(repo.path, long_subject)
    add_messages(repo)
    if how == "cherry-pick":
        repo.git("cherry-pick", picked)
    else:
        repo.git("commit", "-q", "--amend", "-m", long_subject + " amended")
    sha = repo.git("rev-parse", "HEAD")
    rec = [r for r in spool_commits(repo.path) if r["hook"] == "post-commit"][-1]
    assert rec["sha"] == sha and rec["reflog"]["new"] == sha
    assert rec["reflog"]["subject"] == ("commit (amend)" if how == "amend" else "cherry-pick")
    assert rec["reflog_prev"]["new"] == (base if how == "cherry-pick" else rec["reflog"]["old"])
    assert by_sha(repo.commit_events())[sha]["commit"]["kind"] == how


def test_commit_record_carries_the_reflog_entry_before_it(repo):
    """The facts ingest needs to call a commit a squash are recorded when it is made: the squash
    flag on post-merge and, on every commit record, the reflog entry before the commit's own."""
    base = commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "topic")
    commit(repo.path, "topic work", filename="topic.txt")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--squash", "topic")
    repo.git("commit", "-q", "-m", "squashed")
    merge_rec, commit_rec = spool_commits(repo.path)[-2:]
    assert merge_rec["hook"] == "post-merge" and merge_rec["squash"] is True
    assert commit_rec["hook"] == "post-commit"
    # Nothing happened between the squash merge and its commit: the entry before the commit's
    # own is the one the squash's record saw last.
    assert commit_rec["reflog_prev"] == merge_rec["reflog"]
    assert commit_rec["reflog_prev"]["subject"] == "checkout" and commit_rec["reflog_prev"]["new"] == base
    first = spool_commits(repo.path)[0]
    assert first["reflog_prev"] is None  # the first commit has no entry before it


@pytest.mark.parametrize("sh", [True, False], ids=["sh hook", "python hook"])
def test_the_background_flusher_keeps_no_descriptor_of_the_caller_open(repo, sh, monkeypatch):
    """A caller that gave git one more descriptor (`git commit 3>&1 | cat`, an IDE's pipe) and waits
    for its end waited for the whole background flush: the flusher had inherited it.  Here the
    flusher is held in its delivery (an endpoint that accepts and never answers) while the test
    checks that the pipe it was given is at its end."""
    import select
    import socket
    import threading

    from testing.delivery import point_config_at

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    point_config_at(f"http://127.0.0.1:{server.getsockname()[1]}/v1/events")
    monkeypatch.setenv("PERISCOPE_HTTP_TIMEOUT", "60")
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "1")  # once released, it gives up soon
    if not sh:
        monkeypatch.setenv("PERISCOPE_SH_HOOK", "0")
    append_spool(repo.path, message_record(repo.path, id="held"))
    (repo.path / "f.txt").write_text("x\n")
    git(repo.path, "add", "f.txt")
    read_end, write_end = os.pipe()
    try:
        subprocess.run(["git", "commit", "-q", "-m", "c"], cwd=repo.path, pass_fds=(write_end,), check=True)
        os.close(write_end)
        deadline = time.monotonic() + 60
        while not accepted and time.monotonic() < deadline:  # the flusher is in its delivery now
            time.sleep(0.05)
        assert accepted, "the background flusher never connected"
        readable, _, _ = select.select([read_end], [], [], 10)
        assert readable and os.read(read_end, 1) == b"", "the flusher still holds the caller's pipe"
    finally:
        os.close(read_end)
        for conn in accepted:
            conn.close()
        server.close()


def test_no_python_file_of_the_repository_is_imported_by_our_processes(repo):
    """`python -c` and `-m` put the current folder first on sys.path, and our hooks, the detached
    flusher and the agents' hooks run in the work tree: a `json.py` or a `periscope_hooks/` there
    was imported in our place, and run (a sweep found a project's `datetime.py` run by every Claude
    Code hook)."""
    marker = repo.path / ".git" / "repository-code-ran"
    planted = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in ("json.py", "sqlite3.py", "datetime.py", "fcntl.py", "periscope_hooks/__init__.py"):
        (repo.path / name).parent.mkdir(exist_ok=True)
        (repo.path / name).write_text(planted)
    (repo.path / ".git" / "info" / "exclude").write_text("*.py\nperiscope_hooks/\n")
    append_spool(repo.path, message_record(repo.path, id="m1", tokens=(3, 0, 0, 0, 0)))
    sha = commit(repo.path, "sh hook")
    commit(repo.path, "python hook", env={"PERISCOPE_SH_HOOK": "0"})
    git(repo.path, "commit", "-q", "--amend", "-m", "post-rewrite")
    hook = subprocess.run(
        ["sh", "-c", periscope_hooks_claude_code_command()],
        cwd=repo.path,
        input=json.dumps({"hook_event_name": "Stop", "session_id": "s", "cwd": str(repo.path)}),
        capture_output=True,
        text=True,
    )
    assert hook.returncode == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (state_dir(repo.path) / "state.db").exists():
        time.sleep(0.1)  # the background flusher ran
    repo.flush()
    assert not marker.exists(), marker.read_text()
    assert {r["sha"]: r["tokens"]["input"] for r in repo.report()}.get(sha) == 3


def periscope_hooks_claude_code_command() -> str:
    from periscope_hooks.commands.claude_code import hook_command

    return hook_command()


def test_a_fifo_in_the_spools_place_does_not_hold_the_commit(repo):
    """Opening a FIFO with no reader for writing waits for one: the commit was held until the
    hook's alarm (10 s).  Opened non-blocking, it fails at once and the hook logs it."""
    import os
    import time

    from testing.util import commit, periscope, state_dir

    periscope("install-hooks", cwd=repo.path)
    quiet = {"PERISCOPE_BACKGROUND": "0"}  # no flusher: nobody opens the FIFO to read it
    commit(repo.path, "first", env=quiet)  # the spool exists
    spool = state_dir(repo.path) / "spool.jsonl"
    spool.unlink()
    os.mkfifo(spool)
    started = time.monotonic()
    commit(repo.path, "with a fifo for a spool", env=quiet)
    assert time.monotonic() - started < 5  # a hang check (the alarm is 10 s), not a speed figure
    assert "failed; the commit is unaffected" in (state_dir(repo.path) / "hook.log").read_text()
    # And the flusher does not wait on it either (it held flush.lock until a writer came).
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "periscope_hooks", "flush"], cwd=repo.path, check=True, timeout=30)
    assert "spool is not a regular file" in (state_dir(repo.path) / "hook.log").read_text()


def test_a_branch_named_with_bytes_that_are_not_utf8_still_links_its_commits(repo):
    # HEAD was read as UTF-8 with replacement: the ref file it named did not exist under that
    # name, the hook recorded no SHA, and the commit (and its usage) was skipped ("no HEAD commit
    # recorded").  The branch shows with U+FFFD where its bytes are not UTF-8.
    branch = os.fsdecode(b"fe\xffx-br\xc3\xa4")
    repo.git("checkout", "-q", "-b", branch)
    add_messages(repo, 2)
    sha = commit(repo.path, "on an odd branch")
    (row,) = [r for r in repo.report() if r["sha"] == sha]
    assert row["messages"] == 2 and row["branch"] == "fe\ufffdx-brä"


def test_our_folders_are_private_whatever_the_umask(repo, tmp_path):
    # Under umask 000 .git/periscope, ~/.local/state/periscope and the local store's folder came
    # out 0777 (anyone could replace state.db or the spool), and the list of repositories 0666.
    import stat

    from periscope_hooks import paths, repo_registry

    def under_umask_000(*cmd):
        subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", *cmd], cwd=repo.path, check=True, capture_output=True)

    (repo.path / "f.txt").write_text("x\n")
    repo.git("add", "f.txt")
    under_umask_000("git", "commit", "-q", "-m", "first")  # the hook makes .git/periscope
    add_messages(repo, 1)
    under_umask_000(sys.executable, "-m", "periscope_hooks", "flush")
    under_umask_000(sys.executable, "-m", "periscope_hooks", "hook", "pre-push")  # logs, to the user's log
    for folder in (state_dir(repo.path), paths.local_store_path().parent, paths.user_log_path().parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(repo_registry.registry_path().stat().st_mode) == 0o600
