"""install-opencode / uninstall-opencode, and the plugin file itself (without OpenCode)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from periscope_hooks import jsonc
from periscope_hooks.hook import MAIN_CODE
from testing.otlp import need
from testing.util import REPO_ROOT, git, init_repo, periscope, report_json


def test_packaged_plugin_is_the_canonical_source():
    assert (REPO_ROOT / "hooks" / "opencode" / "periscope.js").read_text() == (
        REPO_ROOT / "periscope_hooks" / "resources" / "opencode-plugin.js"
    ).read_text()


def test_repo_install_keeps_the_work_tree_clean_and_opencode_json_untouched(tmp_path):
    """Per repository nothing machine-specific enters git's view: opencode.json (a team may commit
    it) is not touched, the plugin in .opencode/ names no interpreter and .git/info/exclude lists
    it, so `git add -A` commits nothing of ours; uninstall takes back exactly that."""
    repo = init_repo(tmp_path / "r")
    original = '{\n  // mine\n  "theme": "dark",\n  "plugin": ["other"],\n}\n'
    (repo / "opencode.json").write_text(original)
    (repo / ".opencode").mkdir()
    (repo / ".opencode" / "agent.md").write_text("team agent\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "team opencode config")
    exclude_before = (repo / ".git" / "info" / "exclude").read_bytes()
    periscope("install-opencode", cwd=repo)
    periscope("install-opencode", cwd=repo)  # idempotent
    assert (repo / "opencode.json").read_text() == original
    installed = (repo / ".opencode" / "plugin" / "periscope.js").read_text()
    assert sys.executable not in installed and "const BAKED_COMMAND = null;" in installed
    command = json.loads((repo / ".git" / "periscope" / "opencode-command.json").read_text())
    assert command == [sys.executable, "-c", MAIN_CODE]  # not -m: nothing imported from the work tree
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    git(repo, "add", "-A")
    assert git(repo, "diff", "--cached", "--name-only") == ""
    assert "plugin installed in" in periscope("status", cwd=repo).stdout
    periscope("uninstall-opencode", cwd=repo)
    assert (repo / "opencode.json").read_text() == original
    assert not (repo / ".opencode" / "plugin").exists() and (repo / ".opencode" / "agent.md").exists()
    assert (repo / ".git" / "info" / "exclude").read_bytes() == exclude_before
    assert not (repo / ".git" / "periscope" / "opencode-command.json").exists()


def test_an_older_repo_install_listed_in_opencode_json_is_still_removed_exactly(tmp_path):
    """Installs before this version listed the plugin in the repository's opencode.json."""
    repo = init_repo(tmp_path / "r")
    original = '{\n  "theme": "dark"\n}\n'
    (repo / "opencode.json").write_text(original)
    plugin_dir = repo / ".opencode" / "plugin"
    plugin_dir.mkdir(parents=True)
    (plugin_dir / "periscope.js").write_text("// old copy\n")
    at = original.index("\n}")
    inserted = ',\n  "plugin": ["./.opencode/plugin/periscope.js"]'
    updated = original[:at] + inserted + original[at:]
    (repo / "opencode.json").write_text(updated)
    record = {
        "listed": "./.opencode/plugin/periscope.js",
        "created_config": False,
        "inserted_at": at,
        "inserted": inserted,
        "config_sha256": __import__("hashlib").sha256(updated.encode()).hexdigest(),
        "created_key": True,
    }
    (plugin_dir / "periscope-install.json").write_text(json.dumps(record))
    periscope("uninstall-opencode", cwd=repo)
    assert (repo / "opencode.json").read_text() == original and not (repo / ".opencode").exists()


BEFORE_INSTALL = {
    "no opencode.json": None,
    "jsonc without a plugin key": (
        '{\n  // my settings\n  "$schema": "https://opencode.ai/config.json",\n'
        '  /* theme first */ "theme": "dark",\n  "model": "anthropic/claude-sonnet-4" // last\n}\n'
    ),
    "jsonc without a plugin key, trailing comma": '{\n  "theme": "dark",\n  "autoupdate": false,\n}\n',
    "an empty object with a comment": "{\n  // nothing yet\n}\n",
    "a plugin list with another plugin": '{\n  "plugin": [\n    "opencode-other" // theirs\n  ],\n  "theme": "dark"\n}',
    "CRLF line ends": '{\r\n  "theme": "dark"\r\n}\r\n',
}


@pytest.mark.parametrize("before", BEFORE_INSTALL.values(), ids=BEFORE_INSTALL.keys())
def test_uninstall_leaves_opencode_json_byte_identical(tmp_path, before):
    repo = init_repo(tmp_path / "r")
    global_ = True  # a repository's opencode.json is never edited
    args = ("--global",)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "opencode.json"
    if before is not None:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_bytes(before.encode())
    periscope("install-opencode", *args, cwd=repo)
    listed = jsonc.loads(config.read_text())["plugin"]
    assert global_ and listed[-1] == "./plugin/periscope.js"
    periscope("uninstall-opencode", *args, cwd=repo)
    if before is None:
        assert not config.exists()
    else:
        assert config.read_bytes() == before.encode()


@pytest.mark.parametrize("before", [None, '{\n  // mine\n  "theme": "dark"\n}\n'], ids=["created", "existing"])
def test_uninstall_removes_the_plugin_key_it_added_after_other_edits(tmp_path, before):
    """opencode.json edited since the install: uninstall still takes out the key it added, and only it."""
    repo = init_repo(tmp_path / "r")
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "opencode.json"
    if before is not None:
        config.parent.mkdir(parents=True)
        config.write_text(before)
    periscope("install-opencode", "--global", cwd=repo)
    config.write_text(config.read_text().replace('"plugin"', '"instructions": ["CONTRIBUTING.md"],\n  "plugin"'))
    periscope("uninstall-opencode", "--global", cwd=repo)
    after = config.read_text()
    expected = {"theme": "dark"} if before else {"$schema": "https://opencode.ai/config.json"}
    assert jsonc.loads(after) == {**expected, "instructions": ["CONTRIBUTING.md"]} and '"plugin"' not in after
    if before is not None:
        assert after == '{\n  // mine\n  "theme": "dark",\n  "instructions": ["CONTRIBUTING.md"]\n}\n'


def test_uninstall_keeps_a_created_opencode_json_the_user_has_added_to(tmp_path):
    repo = init_repo(tmp_path / "r")
    periscope("install-opencode", "--global", cwd=repo)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "opencode.json"
    config.write_text(config.read_text().replace('"plugin"', '"theme": "dark",\n  "plugin"'))
    periscope("uninstall-opencode", "--global", cwd=repo)
    assert jsonc.loads(config.read_text()) == {"$schema": "https://opencode.ai/config.json", "theme": "dark"}


def test_global_install(tmp_path):
    periscope("install-opencode", "--global", cwd=tmp_path)
    base = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode"
    assert (base / "plugin" / "periscope.js").exists()
    assert jsonc.loads((base / "opencode.json").read_text())["plugin"] == ["./plugin/periscope.js"]
    periscope("uninstall-opencode", "--global", cwd=tmp_path)
    assert not (base / "plugin" / "periscope.js").exists()


def test_broken_config_is_refused_with_a_hint(tmp_path):
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True)
    config.write_text("{ nope")
    proc = periscope("install-opencode", "--global", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "hint:" in proc.stderr
    assert config.read_text() == "{ nope"


DRIVER = r"""
import fs from "node:fs";
import { PeriscopePlugin } from %(plugin)s;
const arg = process.argv[2];  // the events, or @file holding them
const events = JSON.parse(arg.startsWith("@") ? fs.readFileSync(arg.slice(1), "utf8") : arg);
const hooks = await PeriscopePlugin({ directory: process.argv[3], worktree: process.argv[3] });
const env = {};
for (const e of events) {
  if (e.rename) { fs.renameSync(...e.rename); continue; }
  if (e.raw) { await hooks.event(e.raw.input); continue; }  // what OpenCode should never send
  if (e.shell) { const out = { env: {} }; await hooks["shell.env"]({ sessionID: e.shell }, out); Object.assign(env, out.env); continue; }
  await hooks.event({ event: e });
}
await hooks.event({ event: { type: "message.updated", properties: { info: null } } });  // ignored, no throw
await hooks.event({ event: null });
await hooks.event(undefined);
await hooks.event({ event: { type: "message.updated", properties: { info: "text" } } });
console.log(JSON.stringify(env));
"""


def _assistant(mid, completed=None, sid="ses_1", cwd=None):
    return {
        "type": "message.updated",
        "properties": {
            "info": {
                "id": mid,
                "sessionID": sid,
                "role": "assistant",
                "modelID": "m1",
                "providerID": "p1",
                "mode": "build",
                "agent": "build",
                "path": {"cwd": cwd, "root": cwd},
                "cost": 0.5,
                "tokens": {"total": 20, "input": 10, "output": 5, "reasoning": 2, "cache": {"read": 3, "write": 1}},
                "time": {"created": 1, "completed": completed},
            }
        },
    }


def test_plugin_writes_one_record_per_message_and_sets_shell_env(tmp_path):
    node = __import__("shutil").which("node")
    need(bool(node), "node")
    repo = init_repo(tmp_path / "r")
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    events = [
        {
            "type": "session.created",
            "properties": {"info": {"id": "ses_1", "title": "New session", "directory": str(repo)}},
        },
        _assistant("msg_1", None, cwd=str(repo)),
        {"shell": "ses_1"},
        _assistant("msg_1", 1000, cwd=str(repo)),
        _assistant("msg_1", 1000, cwd=str(repo)),  # updated again: still one record
        {
            "type": "session.updated",
            "properties": {"info": {"id": "ses_1", "title": "Real title", "directory": str(repo)}},
        },
        {
            "type": "session.updated",
            "properties": {"info": {"id": "ses_1", "title": "Real title", "directory": str(repo)}},
        },
    ]
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER % {"plugin": json.dumps(str(REPO_ROOT / "hooks" / "opencode" / "periscope.js"))})
    env = {**os.environ, "PERISCOPE_BIN": "/nonexistent/periscope"}
    proc = subprocess.run(
        [node, str(driver), json.dumps(events), str(repo)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"PERISCOPE_SESSION_ID": "ses_1", "PERISCOPE_MESSAGE_ID": "msg_1"}
    lines = [json.loads(x) for x in (repo / ".git" / "periscope" / "spool.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in lines]
    assert kinds == ["session", "message", "session"]
    msg = lines[1]
    assert msg == {
        "v": 1,
        "kind": "message",
        "id": "msg_1",
        "session_id": "ses_1",
        "time": 1000,
        "provider": "p1",
        "model": "m1",
        "agent": "build",
        "tokens": {"input": 10, "output": 5, "reasoning": 2, "cache_read": 3, "cache_write": 1},
        "cost": 0.5,
        "cwd": os.path.realpath(repo),
        "git": {"branch": "main", "sha": sha},
    }
    import time

    time.sleep(0.5)
    log = (repo / ".git" / "periscope" / "plugin.log").read_text()
    assert "records wait in the spool" in log  # periscope missing: logged, nothing thrown


def _run_plugin_with_recording_periscope(tmp_path, repo, events):
    """Run the plugin with PERISCOPE_BIN pointing at a stand-in that records each invocation."""
    node = __import__("shutil").which("node")
    need(bool(node), "node")
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake-periscope"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    fake.chmod(0o755)
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER % {"plugin": json.dumps(str(REPO_ROOT / "hooks" / "opencode" / "periscope.js"))})
    env = {**os.environ, "PERISCOPE_BIN": str(fake)}
    proc = subprocess.run(
        [node, str(driver), json.dumps(events), str(repo)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    import time

    deadline = time.time() + 10  # the spawned children are detached: wait for their lines
    while time.time() < deadline and not (calls.exists() and "flush" in calls.read_text()):
        time.sleep(0.05)
    time.sleep(0.3)
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize(
    "endpoint, signed_in, expect_login",
    [
        ("https://ingest.example.com/v1/events", False, True),  # first use: sign in once
        ("https://ingest.example.com/v1/events", True, False),  # a token is cached: never ask
        ("https://ingest.example.com/v1/events", "expired", True),  # a flusher found the sign-in expired: ask again
        ("env", False, True),  # the endpoint comes from PERISCOPE_ENDPOINT
        (None, False, False),  # no endpoint, local store: never ask
    ],
)
def test_plugin_starts_sign_in_once_only_when_an_endpoint_needs_it(
    tmp_path, monkeypatch, endpoint, signed_in, expect_login
):
    repo = init_repo(tmp_path / "r")
    config = Path(os.environ["XDG_CONFIG_HOME"])
    if endpoint == "env":
        monkeypatch.setenv("PERISCOPE_ENDPOINT", "https://ingest.example.com/v1/events")
    elif endpoint:
        (config / "opencode").mkdir(parents=True, exist_ok=True)
        (config / "opencode" / "analytics.json").write_text(
            json.dumps({"endpoint": endpoint, "client_id": "c", "authority": "https://login.example.com/t"})
        )
    if signed_in:
        (config / "periscope").mkdir(parents=True, exist_ok=True)
        (config / "periscope" / "token_cache.json").write_text("{}")
    if signed_in == "expired":
        (config / "periscope" / "sign-in-required").touch()
    events = [_assistant("msg_1", 1000, cwd=str(repo)), _assistant("msg_2", 2000, cwd=str(repo))]
    calls = _run_plugin_with_recording_periscope(tmp_path, repo, events)
    assert calls.count("login") == (1 if expect_login else 0), calls
    assert any(c.startswith("_background-flush ") for c in calls), calls


def test_a_burst_of_messages_starts_one_flusher_run_directly(tmp_path):
    """One process per flush request (the flusher itself, not `flush --background` starting it),
    and a burst of messages shares it."""
    repo = init_repo(tmp_path / "r")
    events = [_assistant(f"msg_{i}", 1000 + i, cwd=str(repo)) for i in range(20)]
    calls = _run_plugin_with_recording_periscope(tmp_path, repo, events)
    flushes = [c for c in calls if "flush" in c]
    assert flushes == [f"_background-flush {repo / '.git' / 'periscope'}"], calls


def test_every_record_the_plugin_writes_matches_the_spool_schema(tmp_path):
    """Also a message OpenCode reports without provider, model or session (the plugin writes nulls)."""
    import jsonschema

    from periscope_hooks import schemas

    repo = init_repo(tmp_path / "r")
    sparse = _assistant("msg_2", 2000, cwd=str(repo))
    for key in ("providerID", "modelID", "sessionID", "agent", "mode", "cost", "tokens"):
        sparse["properties"]["info"].pop(key)
    events = [
        {"type": "session.created", "properties": {"info": {"id": "ses_1", "title": "t", "directory": str(repo)}}},
        {
            "type": "session.created",
            "properties": {"info": {"id": "ses_2", "title": "sub", "parentID": "ses_1", "directory": str(repo)}},
        },
        _assistant("msg_1", 1000, cwd=str(repo)),
        sparse,
    ]
    _run_plugin_with_recording_periscope(tmp_path, repo, events)
    records = [json.loads(x) for x in (repo / ".git" / "periscope" / "spool.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["session", "session", "message", "message"]
    validator = jsonschema.Draft202012Validator(schemas.load("spool-record"))
    for record in records:
        validator.validate(record)
    assert records[-1]["provider"] is None and records[-1]["session_id"] is None


def test_plugin_flushes_every_repository_a_session_touched(tmp_path):
    """A flush asked for while one runs is kept per repository: with one session working in two
    repositories, neither repository's request is dropped in favour of the other's."""
    node = __import__("shutil").which("node")
    need(bool(node), "node")
    a, b = init_repo(tmp_path / "a"), init_repo(tmp_path / "b")
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "fake-periscope"
    # Each flush takes a moment, so the next messages' requests arrive while it runs.
    fake.write_text(f'#!/bin/sh\necho "$(pwd -P) $*" >> "{calls}"\nsleep 0.3\n')
    fake.chmod(0o755)
    events = [
        _assistant("msg_a1", 1000, cwd=str(a)),
        _assistant("msg_b1", 1001, cwd=str(b)),
        _assistant("msg_a2", 1002, cwd=str(a)),
    ]
    driver = tmp_path / "driver.mjs"
    # OpenCode keeps running after the events: so does this driver, until the queue has drained.
    driver.write_text(
        DRIVER % {"plugin": json.dumps(str(REPO_ROOT / "hooks" / "opencode" / "periscope.js"))}
        + "await new Promise((r) => setTimeout(r, 2000));\n"
    )
    env = {**os.environ, "PERISCOPE_BIN": str(fake)}
    proc = subprocess.run(
        [node, str(driver), json.dumps(events), str(a)], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    flushed = [line.split(" ")[0] for line in calls.read_text().splitlines() if " _background-flush " in line]
    assert sorted(set(flushed)) == sorted({os.path.realpath(a), os.path.realpath(b)})


def _node_plugin(tmp_path, repo, events):
    node = __import__("shutil").which("node")
    need(bool(node), "node")
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER % {"plugin": json.dumps(str(REPO_ROOT / "hooks" / "opencode" / "periscope.js"))})
    env = {**os.environ, "PERISCOPE_BACKGROUND": "0"}
    (tmp_path / "events.json").write_text(json.dumps(events))
    proc = subprocess.run(
        [node, str(driver), f"@{tmp_path / 'events.json'}", str(repo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "{}", proc.stderr
    assert proc.stderr == ""  # nothing printed, nothing thrown (an unhandled rejection prints)


def test_plugin_records_strings_or_nulls_whatever_opencode_sends(tmp_path):
    """Only a string is recorded as an id, model, provider, agent, title or folder: anything else is
    null, so ingest keeps the message's usage.  A title is cut to 200 characters (never through an
    emoji) and a lone UTF-16 half becomes U+FFFD: a 5 MB title once made a spool line ingest skips."""
    import jsonschema

    from periscope_hooks import schemas

    repo = init_repo(tmp_path / "r")
    odd = _assistant("msg_odd", 3000, cwd=str(repo))
    info = odd["properties"]["info"]
    info.update(modelID={"name": "m"}, providerID=7, agent=["a"], mode=True, sessionID=12)
    info["path"] = {"cwd": {"x": 1}, "root": str(repo)}
    info["tokens"] = {"input": "10", "output": 5, "reasoning": None, "cache": "x"}
    info["time"] = {"created": 1, "completed": "soon"}
    no_id = _assistant(None, 3000, cwd=str(repo))
    odd_numbers = _assistant("msg_numbers", 3500, cwd=str(repo))
    odd_numbers["properties"]["info"]["tokens"] = {"input": 1.5, "output": 2.9, "cache": {"read": 5e-324}}
    odd_numbers["properties"]["info"]["time"] = {"created": 1, "completed": 2**70}  # ingest skips past 9999
    long_title = "t" * 199 + "\U0001f600" + "x" * 5_000_000
    # A model, agent and ids of a few MB: cut (names) or recorded as their digest (ids), so the
    # line stays short enough to ingest and the message's usage is kept.
    huge = _assistant("m" * 3_000_000, 3600, sid="s" * 3_000_000, cwd=str(repo))
    huge["properties"]["info"].update(modelID="M" * 3_000_000, agent="a" * 3_000_000)
    events = [
        {
            "type": "session.created",
            "properties": {"info": {"id": "ses_1", "title": long_title, "directory": str(repo)}},
        },
        {"type": "session.created", "properties": {"info": {"id": "ses_2", "title": {"t": 1}, "parentID": 5}}},
        {"type": "session.created", "properties": {"info": {"id": ["x"], "title": "no id"}}},
        {
            "raw": {
                "input": {
                    "event": {"type": "session.updated", "properties": {"info": {"id": "ses_3", "title": "a\ud83d"}}}
                }
            }
        },
        # Two sessions' facts that joined with a NUL separator were the same key: the second
        # (title "a", parent "\0b" -> title "a\0", parent "b") was never written.
        {"type": "session.created", "properties": {"info": {"id": "ses_4", "title": "a", "parentID": "\0b"}}},
        {"type": "session.updated", "properties": {"info": {"id": "ses_4", "title": "a\0", "parentID": "b"}}},
        _assistant("msg_1", 1000, cwd=str(repo)),
        odd,
        no_id,
        odd_numbers,
        huge,
    ]
    _node_plugin(tmp_path, repo, events)
    spool = (repo / ".git" / "periscope" / "spool.jsonl").read_text()
    records = [json.loads(x) for x in spool.splitlines()]
    validator = jsonschema.Draft202012Validator(schemas.load("spool-record"))
    for record in records:
        validator.validate(record)
    assert max(map(len, spool.splitlines())) < 2000
    assert [(r["title"], r["parent_id"]) for r in records if r.get("session_id") == "ses_4"] == [
        ("a", "\0b"),
        ("a\0", "b"),
    ]
    sessions = {r["session_id"]: r for r in records if r["kind"] == "session"}
    assert sessions["ses_1"]["title"] == "t" * 199 + "\U0001f600"
    assert sessions["ses_2"]["title"] is None and sessions["ses_2"]["parent_id"] is None
    assert sessions["ses_3"]["title"] == "a\ufffd"
    assert len(sessions) == 4
    messages = [r for r in records if r["kind"] == "message"]
    digest = "sha256:" + hashlib.sha256(b"m" * 3_000_000).hexdigest()
    assert [m["id"] for m in messages] == ["msg_1", "msg_odd", "msg_numbers", digest]
    assert messages[3]["session_id"] == "sha256:" + hashlib.sha256(b"s" * 3_000_000).hexdigest()
    assert (messages[3]["model"], messages[3]["agent"]) == ("M" * 200, "a" * 200)
    # Whole token counts (the schema's), and a time past the year 9999 replaced by the clock's.
    assert messages[2]["tokens"] == {"input": 1, "output": 2, "reasoning": 0, "cache_read": 0, "cache_write": 0}
    assert isinstance(messages[2]["time"], int) and messages[2]["time"] < 253402300800000
    odd_record = messages[1]
    assert [odd_record[k] for k in ("session_id", "provider", "model", "agent")] == [None] * 4
    assert odd_record["tokens"] == {"input": 0, "output": 5, "reasoning": 0, "cache_read": 0, "cache_write": 0}
    assert isinstance(odd_record["time"], int) and odd_record["cwd"] == os.path.realpath(repo)
    periscope("flush", cwd=repo)
    by_session = {r["session"]: r for r in report_json(repo, "session")}
    assert by_session["ses_1"]["title"] == "t" * 199 + "\U0001f600" and by_session["ses_1"]["messages"] == 2
    assert sum(r["messages"] for r in by_session.values()) == 4


def test_records_wait_in_memory_while_the_spool_cannot_be_written(tmp_path):
    """.git/periscope replaced by a file: the plugin used to mark the message recorded, fail to
    write it, and fail to log that too (the log lives in the same folder).  Now the record waits,
    the problem is logged in the user's state folder, and once the folder is back the waiting
    records go in, in order, when the session goes idle (or before the next record)."""
    repo = init_repo(tmp_path / "r")
    state = repo / ".git" / "periscope"
    state.write_text("not a folder\n")
    events = [
        _assistant("msg_1", 1000, cwd=str(repo)),
        _assistant("msg_1", 1000, cwd=str(repo)),  # updated again: still one record
        _assistant("msg_2", 2000, cwd=str(repo)),
        {"rename": [str(state), str(tmp_path / "moved-aside")]},
        {"type": "session.idle", "properties": {"sessionID": "ses_1"}},  # the turn ends: they go in
        _assistant("msg_3", 3000, cwd=str(repo)),
    ]
    _node_plugin(tmp_path, repo, events)
    records = [json.loads(x) for x in (state / "spool.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["msg_1", "msg_2", "msg_3"]
    fallback = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "plugin.log"
    logged = fallback.read_text()
    assert logged.count("cannot write") == 1 and "1 record(s) wait in memory" in logged, logged
    assert "wrote 2 record(s) that had waited" in (state / "plugin.log").read_text()


def test_a_fifo_in_the_spools_place_never_blocks_opencode(tmp_path):
    """Opening a FIFO with no reader for writing waits for one: appendFileSync blocked OpenCode's
    event loop for good.  Opened non-blocking, the write fails at once and the record waits."""
    repo = init_repo(tmp_path / "r")
    state = repo / ".git" / "periscope"
    state.mkdir()
    os.mkfifo(state / "spool.jsonl")
    _node_plugin(tmp_path, repo, [_assistant("msg_1", 1000, cwd=str(repo))])
    assert "cannot write" in (state / "plugin.log").read_text() and "ENXIO" in (state / "plugin.log").read_text()


def test_a_repository_moved_under_a_running_plugin_is_not_made_again_at_its_old_path(tmp_path):
    """OpenCode keeps the folder it was started in, and the plugin the state folder it found there:
    after `mv repo elsewhere` the plugin re-created `<old path>/.git/periscope` with its parents and
    wrote the spool there, a stray folder where no repository is, holding records ingest never
    reads.  Now the record waits in memory and says so in the user's state folder."""
    repo = init_repo(tmp_path / "r")
    moved = tmp_path / "moved"
    events = [
        _assistant("msg_1", 1000, cwd=str(repo)),
        {"rename": [str(repo), str(moved)]},
        _assistant("msg_2", 2000, cwd=str(repo)),
    ]
    _node_plugin(tmp_path, moved, events)
    assert not repo.exists()
    records = [json.loads(x) for x in (moved / ".git" / "periscope" / "spool.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["msg_1"]
    logged = (Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "plugin.log").read_text()
    assert "cannot write" in logged and "1 record(s) wait in memory" in logged, logged
