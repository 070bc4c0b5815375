"""End to end with the real Claude Code binary (@anthropic-ai/claude-code 2.1.332) against a local
Anthropic Messages API server (testing.anthropic_server).

The binary comes from the npm registry (scripts/install-claude-code-for-tests.sh; scripts/test.sh
passes its path in PERISCOPE_TEST_CLAUDE_CODE).  With CI set, a missing binary fails these tests.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import jsonschema
import pytest

from periscope_hooks import schemas
from periscope_hooks import spool as spool_mod
from testing.anthropic_server import FakeAnthropic
from testing.claude_code import allow_tools, claude_env, find_claude_code, run_claude
from testing.delivery import point_config_at
from testing.opencode import find_opencode, opencode_env, run_opencode, write_config
from testing.receiver import Receiver
from testing.util import cost_at, git, init_repo, periscope, spool_path, state_dir

BINARY = find_claude_code()
pytestmark = pytest.mark.skipif(
    BINARY is None and not os.environ.get("CI"), reason="Claude Code binary not installed (run scripts/test.sh)"
)
TOKEN_KEYS = ("input", "output", "reasoning", "cache_read", "cache_write")


def expected_tokens(usage):
    """How a Messages API usage block maps to the five token counts (no thinking here)."""
    return {
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "reasoning": 0,
        "cache_read": usage["cache_read_input_tokens"],
        "cache_write": usage["cache_creation_input_tokens"],
    }


def expected_message_tokens(usage):
    """A message event's tokens: the five counts, and the cache writes kept for an hour (the fake
    server splits every response's writes, as the API does for Claude Code)."""
    hour = usage["cache_creation"]["ephemeral_1h_input_tokens"]
    assert hour > 0
    return {**expected_tokens(usage), "cache_write_1h": hour}


# Anthropic's list prices for Claude Sonnet 4.5, dollars per million tokens (cache writes kept for
# five minutes and for an hour): Claude Code reports no per-message cost, so ingest prices each message.
SONNET_4_5 = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75, "cache_write_1h": 6.0}


@pytest.fixture
def server():
    with FakeAnthropic(reply_text="Reply text.") as s:
        yield s


@pytest.fixture
def project(tmp_path):
    assert BINARY, "PERISCOPE_TEST_CLAUDE_CODE is not set and no Claude Code binary was found"
    path = init_repo(tmp_path / "project")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    periscope("install-hooks", cwd=path)
    periscope("install-claude-code", cwd=path)
    allow_tools(Path(os.environ["HOME"]))
    return path


def claude(cwd, server, prompt, *args):
    env = claude_env(Path(os.environ["HOME"]), server.base_url, {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    proc = run_claude(BINARY, cwd, prompt, env, *args)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def events(cwd, kind=None):
    periscope("flush", cwd=cwd)
    out = periscope("export", *(["--type", kind] if kind else []), cwd=cwd).stdout
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def spool_records(repo, kind):
    return [r for r in spool_mod.iter_records(str(spool_path(repo))) if r.get("kind") == kind]


def commit_event(repo, sha):
    found = [e for e in events(repo, "commit") if e["commit"]["sha"] == sha]
    assert len(found) == 1, found
    return found[0]


def test_web_searches_and_fast_mode_reach_the_events_priced(project):
    """The API's usage says how many server-side web searches a response ran and whether it ran in
    fast mode; the real binary writes that usage to its transcript, and each message's event says
    both, its list price the library's for those searches (Sonnet 4.5 has no fast-mode rates: its
    tokens stay at the standard ones)."""
    extra = {"server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1}, "speed": "fast"}
    with FakeAnthropic(reply_text="Reply text.", extra_usage=extra) as server:
        claude(project, server, "Say hello")
    msgs = events(project, "message")
    assert msgs and [m["message_id"] for m in msgs] == [r["id"] for r in server.responses]
    for m in msgs:
        assert (m["web_searches"], m["speed"]) == (3, "fast")
        searches = 3 * 10 / 1000  # $10 a thousand
        assert m["list_cost"] == pytest.approx(cost_at(SONNET_4_5, m["tokens"]) + searches, abs=1e-6)


def test_messages_carry_exact_tokens_and_no_repeats(project, server):
    claude(project, server, "Say hello")
    head = git(project, "rev-parse", "HEAD")
    assert git(project, "status", "--porcelain") == ""  # .claude/settings.local.json is kept out of git's way
    msgs = events(project, "message")
    assert [r["id"] for r in server.responses] == [m["message_id"] for m in msgs]
    m, want = msgs[0], server.responses[0]
    assert m["tokens"] == expected_message_tokens(want["usage"])
    assert m["cost_source"] == "estimated" and m["cost"] == 0.0
    assert m["list_cost"] == pytest.approx(cost_at(SONNET_4_5, m["tokens"]), abs=1e-6)
    assert m["provider"] == "anthropic" and m["model"] == want["model"]
    assert m["session"]["coding_agent"] == "claude-code" and m["session"]["is_subagent"] is False
    assert m["session"]["title"] is None
    assert m["repo"] == {"url": "https://example.com/acme/widgets.git", "branch": "main", "sha": head}
    recs = spool_records(project, "message")
    assert len(recs) == len(server.responses) and recs[0]["cost"] is None  # no cost reported: priced at ingest
    schema = schemas.load("spool-record")
    for rec in spool_mod.iter_records(str(spool_path(project))):
        jsonschema.validate(rec, schema)
    status = periscope("status", cwd=project).stdout
    assert "Claude Code (repo)" in status and "capture hooks installed" in status


@pytest.mark.parametrize("delta_delay", [0.0, 1.5], ids=["message-first", "commit-first"])
def test_agent_commit_includes_its_in_flight_message(project, delta_delay):
    # With a slow end of stream, Claude Code runs the Bash tool (and so the commit) before it writes
    # the message to the transcript: the commit is held until the message is captured.
    with FakeAnthropic(reply_text="Reply text.", delta_delay=delta_delay) as server:
        (project / "feature.txt").write_text("new feature\n")
        claude(project, server, "[[bash: git add feature.txt && git commit -q -m 'agent commit']]")
        sha = git(project, "rev-parse", "HEAD")
        assert git(project, "log", "-1", "--format=%s") == "agent commit"
        ev = commit_event(project, sha)
    tool_call = next(r for r in server.responses if r["kind"] == "tool:Bash")
    session_id = spool_records(project, "message")[0]["session_id"]
    assert ev["origin"] == "agent" and ev["agent"] == {"session_id": session_id, "message_included": True}
    assert ev["usage"]["messages"] == 1
    assert ev["usage"]["tokens"] == expected_tokens(tool_call["usage"])
    assert ev["usage"]["list_cost"] == pytest.approx(
        cost_at(SONNET_4_5, expected_message_tokens(tool_call["usage"])), abs=1e-6
    )
    assert ev["usage"]["cost_sources"]["estimated"] == 1
    assert [s["coding_agent"] for s in ev["sessions"]] == ["claude-code"]
    conn = sqlite3.connect(str(state_dir(project) / "state.db"))
    linked = [
        r[0]
        for r in conn.execute("SELECT m.id FROM messages m JOIN links l ON l.id = m.link_id WHERE l.sha = ?", (sha,))
    ]
    assert linked == [tool_call["id"]]
    # The reply after the tool result waits for the next commit.
    pending = [r[0] for r in conn.execute("SELECT id FROM messages WHERE link_id IS NULL")]
    assert pending == [r["id"] for r in server.responses if r["kind"] == "text"]


def test_human_commit_after_a_session(project, server):
    claude(project, server, "First question")
    claude(project, server, "Second question")
    (project / "human.txt").write_text("by hand\n")
    git(project, "add", "human.txt")
    git(project, "commit", "-q", "-m", "human commit")
    ev = commit_event(project, git(project, "rev-parse", "HEAD"))
    assert ev["origin"] == "human" and "agent" not in ev
    want = [expected_tokens(r["usage"]) for r in server.responses]
    assert ev["usage"]["messages"] == len(want) == 2
    assert ev["usage"]["tokens"] == {k: sum(t[k] for t in want) for k in TOKEN_KEYS}
    assert len(ev["sessions"]) == 2 and {s["coding_agent"] for s in ev["sessions"]} == {"claude-code"}


def test_sub_agent_messages_are_marked_and_linked(project, server):
    claude(project, server, "[[task: look around the project]]")
    git(project, "commit", "-q", "--allow-empty", "-m", "after the sub-agent")
    msgs = events(project, "message")
    assert sorted(m["message_id"] for m in msgs) == sorted(r["id"] for r in server.responses)
    subs = [m for m in msgs if m["session"]["is_subagent"]]
    mains = [m for m in msgs if not m["session"]["is_subagent"]]
    # The sub-agent's result comes back to the main session as a further turn: all but one are main's.
    assert len(subs) == 1 and len(mains) == len(server.responses) - 1 >= 2
    parent = mains[0]["session"]["id"]
    assert subs[0]["session"]["parent_id"] == parent and subs[0]["session"]["id"].startswith(parent + "/agent-")
    assert subs[0]["session"]["agent"] == "general-purpose"
    by_id = {r["id"]: r for r in server.responses}
    for m in msgs:
        assert m["tokens"] == expected_message_tokens(by_id[m["message_id"]]["usage"])
    ev = commit_event(project, git(project, "rev-parse", "HEAD"))
    assert ev["usage"]["messages"] == len(server.responses) and any(s["is_subagent"] for s in ev["sessions"])


def test_privacy_no_sentinel_in_any_stored_or_sent_byte(project, tmp_path):
    sentinel_prompt, sentinel_reply, sentinel_file = (
        "SENTINEL-PROMPT-5b1e7",
        "SENTINEL-REPLY-c3d90",
        "SENTINEL-FILE-8a2f4",
    )
    (project / "secret.txt").write_text(f"the file says {sentinel_file}\n")
    with Receiver() as receiver, FakeAnthropic(reply_text=f"My answer {sentinel_reply}") as s:
        config = point_config_at(receiver.url)
        claude(project, s, f"Please show it {sentinel_prompt} [[bash: cat secret.txt]]")
        assert any(sentinel_file in json.dumps(r) for r in s.requests)  # the model did see the file
        git(project, "add", "secret.txt")
        git(project, "commit", "-q", "-m", "commit")
        periscope("flush", cwd=project)
        sent = json.dumps(list(receiver.events.values()))
    config.unlink()
    assert '"type": "message"' in sent and '"type": "commit"' in sent
    home = Path(os.environ["HOME"])
    stored = [p for p in state_dir(project).rglob("*") if p.is_file()]
    stored += [p for p in (home / ".local").rglob("*") if p.is_file()]  # capture state, logs, local store
    assert any(p.name.endswith(".inflight") for p in stored) and any(p.name == "spool.jsonl" for p in stored)
    for sentinel in (sentinel_prompt, sentinel_reply, sentinel_file):
        assert sentinel not in sent, f"{sentinel} was sent to the endpoint"
        for p in stored:
            assert sentinel.encode() not in p.read_bytes(), f"{sentinel} was stored in {p}"


def test_hooks_never_ran_flush_recovers_from_the_transcript(tmp_path, server):
    assert BINARY
    repo = init_repo(tmp_path / "bare-session")
    git(repo, "commit", "-q", "--allow-empty", "-m", "initial")
    periscope("install-hooks", cwd=repo)  # git hooks only: Claude Code's capture hooks are not installed
    allow_tools(Path(os.environ["HOME"]))
    claude(repo, server, "[[bash: git commit -q --allow-empty -m 'agent commit']]")
    sha = git(repo, "rev-parse", "HEAD")
    ev = commit_event(repo, sha)  # flush: ingest, then recover the session named by the agent commit
    assert ev["origin"] == "agent" and ev["agent"]["session_id"]
    msgs = events(repo, "message")
    assert sorted(m["message_id"] for m in msgs) == sorted(r["id"] for r in server.responses)
    assert all(m["session"]["id"] == ev["agent"]["session_id"] for m in msgs)
    by_id = {r["id"]: r for r in server.responses}
    assert all(m["tokens"] == expected_message_tokens(by_id[m["message_id"]]["usage"]) for m in msgs)
    periscope("flush", cwd=repo)  # again: nothing twice
    assert len(events(repo, "message")) == len(msgs)


OPENCODE = find_opencode()


@pytest.mark.skipif(OPENCODE is None and not os.environ.get("CI"), reason="OpenCode binary not installed")
def test_opencode_and_claude_code_in_one_repository(project, server, tmp_path):
    from testing.openai_server import FakeOpenAI

    assert OPENCODE
    periscope("install-opencode", cwd=project)
    with FakeOpenAI(reply_text="OpenCode reply.") as oc_server:
        write_config(project, oc_server.base_url)
        env = opencode_env(Path(os.environ["HOME"]), {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        proc = run_opencode(OPENCODE, project, "[[bash: git commit -q --allow-empty -m 'by opencode']]", env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    c1 = git(project, "rev-parse", "HEAD")
    claude(project, server, "[[bash: git commit -q --allow-empty -m 'by claude']]")
    c2 = git(project, "rev-parse", "HEAD")
    git(project, "commit", "-q", "--allow-empty", "-m", "by hand")
    c3 = git(project, "rev-parse", "HEAD")
    e1, e2, e3 = (commit_event(project, sha) for sha in (c1, c2, c3))
    oc_session = next(s["id"] for s in e1["sessions"])
    cc_session = e2["agent"]["session_id"]
    assert e1["origin"] == "agent" and e1["agent"] == {"session_id": oc_session, "message_included": True}
    assert [(s["coding_agent"], s["messages"]) for s in e1["sessions"]] == [("opencode", 1)]
    # The Claude Code commit takes its own tool-call message and OpenCode's reply that was pending.
    assert e2["origin"] == "agent" and e2["agent"] == {"session_id": cc_session, "message_included": True}
    assert {s["id"]: (s["coding_agent"], s["messages"]) for s in e2["sessions"]} == {
        oc_session: ("opencode", 1),
        cc_session: ("claude-code", 1),
    }
    assert e3["origin"] == "human"
    assert [(s["id"], s["coding_agent"], s["messages"]) for s in e3["sessions"]] == [(cc_session, "claude-code", 1)]
    tool_call = next(r for r in server.responses if r["kind"] == "tool:Bash")
    cc_tokens = next(s["tokens"] for s in e2["sessions"] if s["id"] == cc_session)
    assert cc_tokens == expected_tokens(tool_call["usage"])
    # Every message of both agents is linked to exactly one commit.
    msgs = events(project, "message")
    assert sum(e["usage"]["messages"] for e in (e1, e2, e3)) == len(msgs) == 4
