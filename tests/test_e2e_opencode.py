"""End to end with the real OpenCode binary (opencode-ai 1.18.33) against a local fake model server.

The binary comes from the npm registry (scripts/install-opencode-for-tests.sh; scripts/test.sh
passes its path in PERISCOPE_TEST_OPENCODE).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from periscope_hooks import spool as spool_mod
from testing.delivery import point_config_at
from testing.openai_server import TITLE, FakeOpenAI
from testing.opencode import COST, find_opencode, opencode_env, run_opencode, write_config
from testing.receiver import Receiver
from testing.util import cost_at, git, init_repo, periscope, spool_path, state_dir

BINARY = find_opencode()
pytestmark = pytest.mark.skipif(
    BINARY is None and not os.environ.get("CI"), reason="OpenCode binary not installed (run scripts/test.sh)"
)
TOKEN_KEYS = ("input", "output", "reasoning", "cache_read", "cache_write")


def expected_tokens(usage):
    """How OpenCode turns an OpenAI usage block into its token counts."""
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    return {
        "input": usage["prompt_tokens"] - cached,
        "output": usage["completion_tokens"] - reasoning,
        "reasoning": reasoning,
        "cache_read": cached,
        "cache_write": 0,
    }


@pytest.fixture
def server():
    with FakeOpenAI(reply_text="Reply text.") as s:
        yield s


@pytest.fixture
def project(tmp_path, server):
    assert BINARY, "PERISCOPE_TEST_OPENCODE is not set and no OpenCode binary was found"
    path = init_repo(tmp_path / "project")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    write_config(path, server.base_url)
    git(path, "add", "opencode.json")  # a team that commits its opencode.json
    git(path, "commit", "-q", "-m", "team config")
    periscope("install-hooks", cwd=path)
    periscope("install-opencode", cwd=path)
    # OpenCode loads the plugin from .opencode/plugin/ with opencode.json untouched, and git
    # does not see the plugin (.git/info/exclude): `git add -A` in these tests commits none of it.
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    return path


def run(cwd, prompt):
    env = opencode_env(Path(os.environ["HOME"]), {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    proc = run_opencode(BINARY, cwd, prompt, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def spool_messages(path):
    return [r for r in spool_mod.iter_records(str(path)) if r.get("kind") == "message"]


def events(cwd, kind=None):
    periscope("flush", cwd=cwd)
    out = periscope("export", *(["--type", kind] if kind else []), cwd=cwd).stdout
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def test_one_plain_prompt(project, server):
    run(project, "Say hello")
    head = git(project, "rev-parse", "HEAD")
    msgs = events(project, "message")
    assert len(msgs) == 1 and len(server.responses) == 1
    m = msgs[0]
    want = expected_tokens(server.responses[0]["usage"])
    assert m["tokens"] == want
    assert m["cost"] == pytest.approx(cost_at(COST, want), rel=1e-9)
    assert m["provider"] == "fakeai" and m["model"] == "fake-model"
    assert m["session"]["title"] == TITLE and m["session"]["agent"] == "build" and m["session"]["is_subagent"] is False
    assert m["session"]["id"].startswith("ses_")
    assert m["repo"] == {"url": "https://example.com/acme/widgets.git", "branch": "main", "sha": head}


def test_agent_commit_includes_its_in_flight_message(project, server):
    (project / "feature.txt").write_text("new feature\n")
    run(project, "[[bash: git add -A && git commit -q -m 'agent commit']]")
    sha = git(project, "rev-parse", "HEAD")
    assert git(project, "log", "-1", "--format=%s") == "agent commit"
    assert git(project, "show", "--name-only", "--format=", "HEAD") == "feature.txt"  # nothing of ours
    deadline = time.time() + 30
    while True:
        commits = [e for e in events(project, "commit") if e["commit"]["sha"] == sha]
        if commits or time.time() > deadline:
            break
        time.sleep(0.5)
    assert len(commits) == 1
    ev = commits[0]
    assert ev["origin"] == "agent" and ev["agent"]["message_included"] is True
    conn = sqlite3.connect(str(state_dir(project) / "state.db"))
    linked = {
        r[0]
        for r in conn.execute("SELECT m.id FROM messages m JOIN links l ON l.id = m.link_id WHERE l.sha = ?", (sha,))
    }
    recs = [r for r in spool_messages(spool_path(project)) if r["id"] in linked]
    assert len(recs) == ev["usage"]["messages"] == 1
    assert ev["usage"]["tokens"] == {k: sum(r["tokens"][k] for r in recs) for k in TOKEN_KEYS}
    assert ev["usage"]["cost"] == pytest.approx(sum(r["cost"] for r in recs), rel=1e-9)
    # The tool-call message ran the commit; the reply after it waits for the next commit.
    assert len(spool_messages(spool_path(project))) == 2
    rows = {r["sha"]: r for r in json.loads(periscope("report", "--format", "json", cwd=project).stdout)}
    assert rows[sha]["origin"] == "agent" and rows[sha]["tokens"] == ev["usage"]["tokens"]


def test_two_prompts_then_a_human_commit(project, server):
    run(project, "First question")
    run(project, "Second question")
    (project / "human.txt").write_text("by hand\n")
    git(project, "add", "human.txt")
    git(project, "commit", "-q", "-m", "human commit")
    sha = git(project, "rev-parse", "HEAD")
    ev = [e for e in events(project, "commit") if e["commit"]["sha"] == sha][0]
    assert ev["origin"] == "human" and ev["usage"]["messages"] == 2
    want = [expected_tokens(r["usage"]) for r in server.responses]
    assert ev["usage"]["tokens"] == {k: sum(t[k] for t in want) for k in TOKEN_KEYS}
    assert len(ev["sessions"]) == 2


def test_sub_agent_messages_are_marked_and_linked(project, server):
    run(project, "[[task: look around]]")
    (project / "s.txt").write_text("x\n")
    git(project, "add", "s.txt")
    git(project, "commit", "-q", "-m", "after sub-agent")
    sha = git(project, "rev-parse", "HEAD")
    msgs = events(project, "message")
    subs = [m for m in msgs if m["session"]["is_subagent"]]
    mains = [m for m in msgs if not m["session"]["is_subagent"]]
    assert subs and mains
    assert all(s["session"]["parent_id"] == mains[0]["session"]["id"] for s in subs)
    ev = [e for e in events(project, "commit") if e["commit"]["sha"] == sha][0]
    assert ev["usage"]["messages"] == len(msgs) == len(server.responses)
    assert any(s["is_subagent"] for s in ev["sessions"])


def test_outside_any_git_repository(tmp_path, server):
    assert BINARY
    work = tmp_path / "plain dir"
    work.mkdir()
    write_config(work, server.base_url)
    periscope("install-opencode", "--global", cwd=work)
    run(work, "Hello from nowhere")
    spool = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "no-repo" / "spool.jsonl"
    recs = spool_messages(spool)
    assert len(recs) == 1 and recs[0]["git"] == {"branch": None, "sha": None}
    msgs = events(work, "message")
    assert len(msgs) == 1 and msgs[0]["repo"] == {"url": None, "branch": None, "sha": None}
    assert msgs[0]["tokens"] == expected_tokens(server.responses[0]["usage"])


def test_privacy_no_sentinel_anywhere(project, tmp_path):
    sentinel_prompt, sentinel_reply, sentinel_file = (
        "SENTINEL-PROMPT-7f3a9",
        "SENTINEL-REPLY-2c8e1",
        "SENTINEL-FILE-9d4b6",
    )
    (project / "secret.txt").write_text(f"the file says {sentinel_file}\n")
    # First everything goes to an HTTP endpoint; then, rebuilt from the same spool, to the local store.
    with Receiver() as receiver, FakeOpenAI(reply_text=f"My answer {sentinel_reply}") as s:
        config = point_config_at(receiver.url)
        write_config(project, s.base_url)
        run(project, f"Please read it {sentinel_prompt} [[read: {project / 'secret.txt'}]]")
        assert any(sentinel_file in json.dumps(r) for r in s.requests)  # the model did see the file
        git(project, "add", "secret.txt")
        git(project, "commit", "-q", "-m", "commit")
        periscope("flush", cwd=project)
        sent = json.dumps(list(receiver.events.values()))
    assert '"type": "message"' in sent and '"type": "commit"' in sent
    for sentinel in (sentinel_prompt, sentinel_reply, sentinel_file):
        assert sentinel not in sent, f"{sentinel} was sent to the endpoint"
    config.unlink()
    for suffix in ("", "-wal", "-shm"):
        Path(str(state_dir(project) / "state.db") + suffix).unlink(missing_ok=True)
    assert any(e["type"] == "message" for e in events(project))
    places = list(state_dir(project).iterdir()) + list((Path(os.environ["XDG_DATA_HOME"]) / "periscope").iterdir())
    assert any(p.name == "events.db" for p in places)
    for p in places:
        if p.is_file():
            data = p.read_bytes()
            for sentinel in (sentinel_prompt, sentinel_reply, sentinel_file):
                assert sentinel.encode() not in data, f"{sentinel} found in {p}"
