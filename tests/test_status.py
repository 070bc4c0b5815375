"""`periscope status` (commands/status.py): real repositories, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from periscope_hooks import logfile, paths
from periscope_hooks.state import open_state_db, transaction
from periscope_hooks.statedb import set_meta
from testing.util import append_spool, commit, init_repo, message_record, periscope, spool_path, state_dir


@pytest.fixture(autouse=True)
def no_background_flush(monkeypatch):
    # The hooks must not start a detached flusher that races the status being asserted.
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")


def parse(stdout: str) -> list[tuple[str, str]]:
    """`label  text` lines; labels may hold single spaces, the columns are two or more apart."""
    rows = []
    for line in stdout.splitlines():
        m = re.match(r"^(\S(?:.*?\S)?)\s{2,}(\S.*)$", line)
        assert m, f"not a status line: {line!r}"
        rows.append((m.group(1), m.group(2)))
    return rows


def status(cwd: Path, *args: str) -> dict[str, str]:
    proc = periscope("status", *args, cwd=cwd)
    assert proc.stderr == ""
    rows = parse(proc.stdout)
    labels = [label for label, _ in rows]
    assert len(labels) == len(set(labels)), f"a label twice: {labels}"
    return dict(rows)


def analytics_json() -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- hooks ---------------------------------------------------------------------------------


def test_fresh_repository_without_hooks(tmp_path):
    repo = init_repo(tmp_path / "fresh")
    proc = periscope("status", cwd=repo)
    assert proc.returncode == 0 and proc.stderr == ""
    # One aligned column: every text starts where the widest label ends, plus two spaces.
    rows = parse(proc.stdout)
    width = max(len(label) for label, _ in rows)
    assert all(line[width : width + 2] == "  " and line[width + 2] != " " for line in proc.stdout.splitlines())
    s = dict(rows)
    assert s["repository"] == os.path.realpath(repo)
    assert (
        s["git hooks"]
        == "not installed: post-commit, post-merge, post-rewrite, post-checkout (run periscope install-hooks)"
    )
    assert s["messages"] == "0 recorded, 0 not linked to a commit yet"
    assert s["outbox"] == "0 event(s) waiting for delivery"
    assert s["spool"] == "0 byte(s) not yet ingested"
    assert s["last problem"] == "none"
    assert "skipped lines" not in s and "state.db" not in s and "deferred" not in s and "held commits" not in s
    assert s["OpenCode (repo)"] == "plugin not installed (run periscope install-opencode)"


def test_after_install_hooks_says_installed(tmp_path):
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    assert status(repo)["git hooks"] == "installed"
    # One shim gone: status names exactly that one.
    (repo / ".git" / "hooks" / "post-merge").unlink()
    assert status(repo)["git hooks"] == "not installed: post-merge (run periscope install-hooks)"
    # Someone else's hook in place of ours is not ours.
    other = repo / ".git" / "hooks" / "post-merge"
    other.write_text("#!/bin/sh\nexit 0\n")
    other.chmod(0o755)
    assert status(repo)["git hooks"] == "not installed: post-merge (run periscope install-hooks)"
    periscope("install-hooks", cwd=repo)
    assert status(repo)["git hooks"] == "installed"
    # A shim an older version wrote still runs, but without this version's hook work: said.
    shim = repo / ".git" / "hooks" / "post-rewrite"
    shim.write_text(shim.read_text().replace("periscope_sh_post_rewrite", "older_post_rewrite"))
    assert status(repo)["git hooks"] == (
        "installed, post-rewrite from an older periscope-hooks (run periscope install-hooks to update)"
    )
    # And from a version before post-checkout existed: both are said (it said only the missing one,
    # while the older shims lacked the security fix only reinstalling brings).
    (repo / ".git" / "hooks" / "post-checkout").unlink()
    assert status(repo)["git hooks"] == (
        "not installed: post-checkout (run periscope install-hooks); post-rewrite from an older periscope-hooks"
    )
    periscope("install-hooks", cwd=repo)
    assert status(repo)["git hooks"] == "installed"


def test_status_with_repo_argument_from_elsewhere(repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    s = status(elsewhere, "--repo", str(repo.path))
    assert s["repository"] == os.path.realpath(repo.path) and s["git hooks"] == "installed"


# --- spool, messages ------------------------------------------------------------------------


def test_garbage_line_and_torn_last_line_after_a_flush(repo):
    append_spool(repo.path, message_record(repo.path, id="g1"))
    garbage = b"\x00this is not json{{\n"
    garbage_at = spool_path(repo.path).stat().st_size
    with open(spool_path(repo.path), "ab") as f:
        f.write(garbage)
    append_spool(repo.path, message_record(repo.path, id="g2"))
    torn = (json.dumps(message_record(repo.path, id="g3")) + "\n").encode()
    with open(spool_path(repo.path), "ab") as f:
        f.write(torn[:25])  # a writer mid-append
    repo.flush()
    s = status(repo.path)
    assert (
        s["skipped lines"] == f"1 malformed spool line(s) skipped (last: byte {garbage_at} ({len(garbage) - 1} bytes))"
    )
    assert s["spool"] == "25 byte(s) not yet ingested"  # the torn line waits; it is not garbage
    assert s["messages"] == "2 recorded, 2 not linked to a commit yet"
    assert "spool: skipped a malformed line" in s["last problem"]
    # The writer finishes the line: it is ingested, and the skipped count does not move.
    with open(spool_path(repo.path), "ab") as f:
        f.write(torn[25:])
    s = status(repo.path)
    assert s["spool"] == "0 byte(s) not yet ingested"
    assert s["messages"] == "3 recorded, 3 not linked to a commit yet"
    assert s["skipped lines"].startswith("1 malformed spool line(s) skipped")


def test_pending_and_linked_message_counts(repo):
    append_spool(repo.path, message_record(repo.path, id="p1"), message_record(repo.path, id="p2"))
    s = status(repo.path)
    assert s["messages"] == "2 recorded, 2 not linked to a commit yet"
    commit(repo.path, "links p1 and p2")
    append_spool(repo.path, message_record(repo.path, id="p3"))
    s = status(repo.path)
    assert s["messages"] == "3 recorded, 1 not linked to a commit yet"
    assert s["outbox"] == "4 event(s) waiting for delivery"  # three message events and one commit event
    # The same message recorded twice is counted once.
    append_spool(repo.path, message_record(repo.path, id="p3"))
    assert status(repo.path)["messages"] == "3 recorded, 1 not linked to a commit yet"
    repo.flush()
    s = status(repo.path)
    assert s["outbox"] == "0 event(s) waiting for delivery"
    assert s["messages"] == "3 recorded, 1 not linked to a commit yet"
    commit(repo.path, "links p3")
    assert status(repo.path)["messages"] == "3 recorded, 0 not linked to a commit yet"


def test_held_agent_commit_and_deferred_record(repo):
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_inflight"}
    commit(repo.path, "agent commit", env=env)
    append_spool(repo.path, {**message_record(repo.path, id="future"), "v": 2})
    s = status(repo.path)
    assert s["held commits"] == "1 agent commit(s) waiting for their in-flight message"
    assert s["deferred"] == "1 record(s) of a newer format kept for a newer periscope-hooks"
    append_spool(repo.path, message_record(repo.path, id="msg_inflight"))
    s = status(repo.path)
    assert "held commits" not in s
    assert s["messages"] == "1 recorded, 0 not linked to a commit yet"


# --- user config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, fix",
    [
        ("{broken", "fix or remove {path}"),
        ('{"endpoint": "https://ingest.example.com/v1/events", "tokn": "x"}', "remove them; known keys:"),
        ('{"endpoint": "http://ingest.example.com/v1/events"}', "use https:// in {path}"),
    ],
    ids=["malformed-json", "unknown-key", "http-non-loopback"],
)
def test_broken_user_config_is_one_line_with_file_and_fix(repo, content, fix):
    path = analytics_json()
    path.write_text(content)
    proc = periscope("status", cwd=repo.path, check=False)
    assert proc.returncode == 0, proc.stderr  # status still reports everything else
    assert proc.stderr == "" and "Traceback" not in proc.stdout
    problem = [line for line in proc.stdout.splitlines() if str(path) in line]
    assert len(problem) == 1, proc.stdout
    s = dict(parse(proc.stdout))
    assert s["config"].startswith("error: ") and str(path) in s["config"].split(" hint: ")[0]
    assert " hint: " + fix.format(path=path) in s["config"]
    assert "sink" not in s
    assert s["git hooks"] == "installed" and s["outbox"].endswith("waiting for delivery")
    # Fixed: the sink is back.
    path.unlink()
    assert status(repo.path)["sink"].startswith("local store ")


# --- outside a repository ---------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    d = tmp_path / "not a repo"
    d.mkdir()
    return d


def test_outside_a_repository_shows_the_no_repo_state(outside):
    s = status(outside)
    assert s["repository"] == "not inside a git repository (showing the no-repo state)"
    assert "git hooks" not in s and "OpenCode (repo)" not in s
    assert s["messages"] == "0 recorded, 0 not linked to a commit yet"
    append_spool(None, message_record(None, id="norepo1"), path=paths.no_repo_state_dir() / paths.SPOOL_NAME)
    assert status(outside)["messages"] == "1 recorded, 1 not linked to a commit yet"


def test_repo_argument_that_is_not_a_repository(outside, tmp_path):
    proc = periscope("status", "--repo", str(outside), cwd=outside, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        proc.stderr
        == f"error: {outside} is not inside a git repository hint: run this inside a repository or pass --repo PATH\n"
    )
    missing = tmp_path / "missing"
    proc = periscope("status", "--repo", str(missing), cwd=outside, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {missing} is not a directory hint: ")


def test_bad_usage_exits_2(outside):
    proc = periscope("status", "--no-such-flag", cwd=outside, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "unrecognized arguments" in proc.stderr


# --- state.db, hook.log -----------------------------------------------------------------------


def test_corrupt_state_db_is_reported_as_rebuilt(repo):
    append_spool(repo.path, message_record(repo.path, id="c1"), message_record(repo.path, id="c2"))
    commit(repo.path, "c")
    repo.flush()
    s = status(repo.path)
    assert "state.db" not in s
    db = state_dir(repo.path) / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    s = status(repo.path)
    m = re.fullmatch(
        r"was corrupt; moved aside \((state\.db\.corrupt-\d+) at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)"
        r" and rebuilt from the spool",
        s["state.db"],
    )
    assert m, s["state.db"]
    assert (state_dir(repo.path) / m.group(1)).read_bytes().startswith(b"this is not a database")
    # Rebuilt from the spool: both messages, linked to the commit again.
    assert s["messages"] == "2 recorded, 0 not linked to a commit yet"
    # Said for a week, not forever.
    conn = open_state_db(state_dir(repo.path))
    with transaction(conn):
        set_meta(conn, "rebuilt_from", f"state.db.corrupt-{int(time.time()) - 8 * 86400} at 2026-01-01T00:00:00Z")
    conn.close()
    assert "state.db" not in status(repo.path)


def test_last_hook_log_line_is_shown(repo):
    path = analytics_json()
    path.write_text("{broken")
    append_spool(repo.path, message_record(repo.path, id="h1"))
    proc = periscope("flush", cwd=repo.path, check=False)
    assert proc.returncode == 1
    path.unlink()
    s = status(repo.path)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ pid=\d+ flush: .*analytics\.json is not valid JSON .*", s["last problem"]
    ), s["last problem"]
    # An entry with a traceback: the entry's own line is shown, never a continuation line.
    hook_log = state_dir(repo.path) / paths.HOOK_LOG_NAME
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        assert logfile.log_line(hook_log, "background flush failed; events stay in the outbox", exc=e)
    assert "Traceback" in hook_log.read_text()
    last = status(repo.path)["last problem"]
    # With its cause: the entry's line said only that something failed (a docs sweep).
    assert last.endswith("background flush failed; events stay in the outbox: RuntimeError: boom"), last


def test_a_bad_setting_in_an_agents_hook_is_one_logged_line_and_status_names_it(repo):
    """configuration.md: a bad number stops a hook with one line naming the variable; the Claude
    Code hook logged a traceback without the hint, and status said only "Claude Code hook failed"."""
    import subprocess

    payload = {
        "session_id": "s1",
        "transcript_path": "/nonexistent/t.jsonl",
        "cwd": str(repo.path),
        "hook_event_name": "Stop",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "agent-hook", "claude-code"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        env={**os.environ, "PERISCOPE_BACKGROUND": "0", "PERISCOPE_HOOK_READ_BUDGET": "abc"},
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    log = (paths.state_home() / paths.STATE_SUBDIR / paths.HOOK_LOG_NAME).read_text()
    assert "Traceback" not in log and log.count("\n") == 1, log
    expected = "Claude Code is unaffected: error: PERISCOPE_HOOK_READ_BUDGET='abc' is not a number of seconds hint: "
    assert expected in log
    assert expected in status(repo.path)["last problem"]


def test_the_plugins_newer_problem_is_shown_and_a_file_in_the_state_folders_place_is_said(repo):
    """The OpenCode plugin logs in plugin.log (a plugin that cannot start periscope said so nowhere
    status looked); `last problem` is the newer of the two logs.  And `.git/periscope` replaced by a
    file was the catch-all's FileExistsError from every command: now one line and the fix."""
    sd = state_dir(repo.path)
    append_spool(repo.path, message_record(repo.path, id="p1"))
    logfile.log_line(sd / paths.HOOK_LOG_NAME, "an older hook problem")
    time.sleep(1.1)
    (sd / "plugin.log").write_text(
        time.strftime("%Y-%m-%dT%H:%M:%S.123Z", time.gmtime())
        + " could not start periscope (periscope): ENOENT; records wait in the spool\n"
    )
    assert status(repo.path)["last problem"].endswith(
        "could not start periscope (periscope): ENOENT; records wait in the spool"
    )
    # An entry that quotes a terminal escape (the plugin's older log() wrote them raw): status shows
    # it escaped (ESC reached the terminal).
    with open(sd / "plugin.log", "a") as f:
        f.write(time.strftime("%Y-%m-%dT%H:%M:%S.456Z", time.gmtime()) + " event x\x1b]0;T\x07failed\u202e: y\n")
    assert status(repo.path)["last problem"].endswith("event x\\x1b]0;T\\x07failed\\u202e: y")
    logfile.log_line(sd / paths.HOOK_LOG_NAME, "a newer hook problem")
    assert status(repo.path)["last problem"].endswith("a newer hook problem")
    # The user's logs (where a folder that cannot be written sends them) are every repository's:
    # an entry from there names its file.
    time.sleep(1.1)
    user_log = paths.state_home() / "periscope" / "plugin.log"
    user_log.parent.mkdir(parents=True, exist_ok=True)
    user_log.write_text(time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()) + " cannot write the spool\n")
    assert status(repo.path)["last problem"].endswith(f"cannot write the spool (in {user_log})")

    commit(repo.path, "c1")
    sd.rename(sd.with_name("periscope.aside"))
    sd.write_text("not a folder\n")
    expected = f"error: {sd} is not a folder hint: periscope keeps the spool and its state there: move that file aside"
    for command in (["flush"], ["report"], ["export"], ["log"], ["install-opencode"], ["install-claude-code"]):
        proc = periscope(*command, cwd=repo.path, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1, (
            command,
            proc.stderr,
        )
    assert not (repo.path / ".claude").exists()  # refused before anything was written
    proc = periscope("status", cwd=repo.path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(expected)
    assert dict(parse(proc.stdout))["state.db"] == f"cannot be read: {sd} is not a folder"


def _agent_lines(repo_path: Path) -> dict[str, str]:
    lines = status(repo_path)
    return {k: v for k, v in lines.items() if k.startswith(("OpenCode", "Claude Code"))}


def test_agent_integrations_from_an_older_version_or_a_python_that_is_gone_are_named(repo, tmp_path):
    """The security fix (no repository .py imported) reaches a user only by reinstalling the agent
    integrations; status said `installed` for the old commands.  It now names what is stale: an
    older plugin text, an older command, a Python that is gone (a deleted virtualenv)."""
    import shlex

    from periscope_hooks.commands.claude_code import MARKER

    periscope("install-opencode", cwd=repo.path)
    periscope("install-opencode", "--global", cwd=repo.path)
    periscope("install-claude-code", cwd=repo.path)
    fresh = _agent_lines(repo.path)
    assert all(", " not in text for text in fresh.values() if "not installed" not in text), fresh
    assert "installed" in fresh["OpenCode (repo)"] and "installed" in fresh["Claude Code (repo)"]

    command_file = state_dir(repo.path) / "opencode-command.json"
    command_file.write_text(json.dumps([sys.executable, "-m", "periscope_hooks"]))  # before the fix
    global_plugin = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "plugin" / "periscope.js"
    global_plugin.write_text(global_plugin.read_text().replace("MAX_TITLE_CHARS", "MAX_TITLE"))  # an older text
    settings = repo.path / ".claude" / "settings.local.json"
    old_command = f"{shlex.quote(sys.executable)} -c 'import sys; {MARKER}; sys.exit(main())'"
    data = json.loads(settings.read_text())
    for entries in data["hooks"].values():
        entries[0]["hooks"][0]["command"] = old_command
    settings.write_text(json.dumps(data))
    stale = _agent_lines(repo.path)
    assert stale["OpenCode (repo)"].endswith(
        ", from an older periscope-hooks (run periscope install-opencode to update)"
    ), stale
    assert stale["OpenCode (user)"].endswith(
        ", from an older periscope-hooks (run periscope install-opencode --global to update)"
    ), stale
    assert stale["Claude Code (repo)"].endswith(
        ", from an older periscope-hooks (run periscope install-claude-code to update)"
    ), stale

    gone = str(tmp_path / "deleted-venv" / "bin" / "python")
    periscope("install-opencode", cwd=repo.path)
    command_file.write_text(json.dumps([gone, *json.loads(command_file.read_text())[1:]]))
    periscope("install-claude-code", cwd=repo.path)
    data = json.loads(settings.read_text())
    current = data["hooks"]["Stop"][0]["hooks"][0]["command"]
    for entries in data["hooks"].values():
        entries[0]["hooks"][0]["command"] = current.replace(shlex.quote(sys.executable), shlex.quote(gone), 1)
    settings.write_text(json.dumps(data))
    moved = _agent_lines(repo.path)
    assert moved["OpenCode (repo)"].endswith(
        f", but its Python ({gone}) is gone (run periscope install-opencode again)"
    )
    assert moved["Claude Code (repo)"].endswith(
        f", but their Python ({gone}) is gone (run periscope install-claude-code again)"
    ), moved
    for command in (["install-opencode"], ["install-opencode", "--global"], ["install-claude-code"]):
        periscope(*command, cwd=repo.path)
    assert _agent_lines(repo.path) == fresh
