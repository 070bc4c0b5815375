"""Claude Code capture without the binary: install/uninstall, the hook on made-up transcripts.

(The real binary is exercised in test_e2e_claude_code.py; these pin the edges it cannot reach.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from periscope_hooks import spool
from periscope_hooks.agents import claude_code
from testing.util import git, init_repo, periscope, spool_path

SESSION = "0b7c2a9e-1d2f-4e5a-8b6c-7d8e9f0a1b2c"


def assistant_line(
    mid, cwd, *, block, usage=(100, 20, 300, 40), agent_id=None, thinking=0, split=None, model=None, more_usage=None
):
    inp, out, cread, cwrite = usage
    line = {
        "type": "assistant",
        "isSidechain": bool(agent_id),
        "sessionId": SESSION,
        "cwd": str(cwd),
        "timestamp": "2026-12-01T10:00:00.250Z",
        "message": {
            "id": mid,
            "model": model or "claude-sonnet-4-5-20250929",
            "content": [block],
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "output_tokens_details": {"thinking_tokens": thinking},
                "cache_read_input_tokens": cread,
                "cache_creation_input_tokens": cwrite,
                # (five-minute, one-hour) writes, as the API splits cache_creation_input_tokens
                **(
                    {"cache_creation": {"ephemeral_5m_input_tokens": split[0], "ephemeral_1h_input_tokens": split[1]}}
                    if split
                    else {}
                ),
                **(more_usage or {}),
            },
        },
    }
    if agent_id:
        line["agentId"] = agent_id
    return json.dumps(line) + "\n"


def run_hook(payload, env=None):
    return subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "agent-hook", "claude-code"],
        input=payload if isinstance(payload, bytes) else json.dumps(payload).encode(),
        capture_output=True,
        env={**os.environ, "PERISCOPE_BACKGROUND": "0", **(env or {})},
    )


def run_installed_hook(payload):
    """The command install-claude-code writes (`python -c`, without the json package), as Claude
    Code runs it: silent, exit 0."""
    from periscope_hooks.commands.claude_code import hook_command

    proc = subprocess.run(
        ["sh", "-c", hook_command()],
        input=json.dumps(payload).encode(),
        capture_output=True,
        env={**os.environ, "PERISCOPE_BACKGROUND": "0"},
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_install_uninstall_removes_exactly_what_it_added(tmp_path):
    repo = init_repo(tmp_path / "r")
    settings = repo / ".claude" / "settings.local.json"
    exclude = repo / ".git" / "info" / "exclude"
    before_exclude = exclude.read_bytes()
    periscope("install-claude-code", cwd=repo)
    periscope("install-claude-code", cwd=repo)  # twice: still one entry per event
    data = json.loads(settings.read_text())
    assert sorted(data["hooks"]) == sorted(claude_code.HOOK_EVENTS)
    assert all(len(v) == 1 for v in data["hooks"].values())
    assert data["hooks"]["PreToolUse"][0]["matcher"] == "Bash"
    assert git(repo, "status", "--porcelain") == ""
    periscope("uninstall-claude-code", cwd=repo)
    assert not (repo / ".claude").exists() and exclude.read_bytes() == before_exclude

    # A file the user had: their settings and hooks stay, ours go.
    theirs = {"permissions": {"allow": ["Read"]}, "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}}
    settings.parent.mkdir()
    settings.write_text(json.dumps(theirs, indent=2) + "\n")
    periscope("install-claude-code", cwd=repo)
    assert len(json.loads(settings.read_text())["hooks"]["Stop"]) == 2
    assert "capture hooks installed" in periscope("status", cwd=repo).stdout
    periscope("uninstall-claude-code", cwd=repo)
    assert json.loads(settings.read_text()) == theirs
    assert "capture hooks not installed" in periscope("status", cwd=repo).stdout


def test_global_install_and_bad_settings(tmp_path):
    home = Path(os.environ["HOME"])
    periscope("install-claude-code", "--global", cwd=tmp_path)
    assert "periscope_hooks.agents.claude_code import main" in (home / ".claude" / "settings.json").read_text()
    periscope("uninstall-claude-code", "--global", cwd=tmp_path)
    assert not (home / ".claude" / "settings.json").exists()
    repo = init_repo(tmp_path / "r")
    (repo / ".claude").mkdir()
    (repo / ".claude" / "settings.local.json").write_text("{not json")
    proc = periscope("install-claude-code", cwd=repo, check=False)
    assert proc.returncode != 0 and proc.stderr.startswith("error: ") and "hint: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_hooks_time_limit_covers_reading_its_input():
    """A caller that keeps stdin open (half a payload written) held the hook for as long as it
    liked: stdin was read before the alarm was set."""
    from periscope_hooks.agents.claude_code import HOOK_TIME_LIMIT_S
    from periscope_hooks.commands.claude_code import hook_command

    proc = subprocess.Popen(
        ["sh", "-c", hook_command()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PERISCOPE_BACKGROUND": "0"},
    )
    try:
        proc.stdin.write(b'{"session_id": "')
        proc.stdin.flush()
        assert proc.wait(timeout=HOOK_TIME_LIMIT_S * 3) == 0  # ended by its own limit, not ours
        assert (proc.stdout.read(), proc.stderr.read()) == (b"", b"")
    finally:
        proc.kill()
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1]", {"session_id": "../../etc", "transcript_path": "/x"}])
def test_hook_is_silent_and_exits_0_on_bad_input(payload):
    proc = run_hook(payload)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""


def test_hook_dedupes_lines_of_one_message_and_keeps_no_text(tmp_path):
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    sub = transcript.with_suffix("") / "subagents" / "agent-a1b2.jsonl"
    sub.parent.mkdir(parents=True)
    (sub.parent / "agent-a1b2.meta.json").write_text(json.dumps({"agentType": "Explore"}))
    text = {"type": "text", "text": "SECRET-TEXT"}
    tool = {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "SECRET-CMD"}}
    transcript.write_text(
        assistant_line("msg_1", repo, block=text, thinking=5)
        + assistant_line("msg_1", repo, block=tool)
        + '{"type": "user", "message": {"content": "SECRET-PROMPT"}}\n'
        + assistant_line("msg_2", repo, block=text)[:40]  # torn: written later
    )
    sub.write_text(assistant_line("msg_s", repo, block=text, agent_id="a1b2"))
    hook_input = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(repo),
        "hook_event_name": "PreToolUse",
        "tool_use_id": "toolu_01",
    }
    assert run_hook(hook_input).returncode == 0
    # The session's end: nothing new in its transcript, nothing twice; the sub-agent's message, no
    # line after it, is settled now (a turn's Stop would not settle it: its agent may stream on).
    assert run_hook({**hook_input, "hook_event_name": "SessionEnd"}).returncode == 0
    raw = spool_path(repo).read_bytes()
    assert b"SECRET" not in raw
    recs = list(spool.iter_records(str(spool_path(repo))))
    msgs = [r for r in recs if r["kind"] == "message"]
    assert [m["id"] for m in msgs] == ["msg_1", "msg_s"]
    assert msgs[0]["tokens"] == {"input": 100, "output": 15, "reasoning": 5, "cache_read": 300, "cache_write": 40}
    assert msgs[0]["tool_use_ids"] == ["toolu_01"] and msgs[0]["cost"] is None
    assert msgs[1]["session_id"] == f"{SESSION}/agent-a1b2" and msgs[1]["agent"] == "Explore"
    sessions = {r["session_id"]: r for r in recs if r["kind"] == "session"}
    assert sessions[f"{SESSION}/agent-a1b2"]["parent_id"] == SESSION
    # The commit hook reads the tool call in flight, and the message that holds it.
    env = {"CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": SESSION}
    assert claude_code.commit_agent({**os.environ, **env}) == {
        "coding_agent": "claude-code",
        "session_id": SESSION,
        "message_id": "msg_1",
        "tool_use_id": "toolu_01",
    }
    assert claude_code.commit_agent({"CLAUDE_CODE_SESSION_ID": SESSION}) is None


def test_report_by_agent_puts_the_agents_side_by_side(tmp_path):
    from testing.util import append_spool, message_record, report_json

    repo = init_repo(tmp_path / "r")
    append_spool(
        repo,
        message_record(repo, tokens=(100, 10, 0, 0, 0), cost=0.5),
        message_record(repo, tokens=(200, 20, 0, 0, 0), cost=0.25),
        message_record(
            repo, session_id=SESSION, tokens=(1000, 40, 0, 3000, 250), cost=None, coding_agent="claude-code"
        ),
    )
    rows = {r["agent"]: r for r in report_json(repo, by="agent")}
    assert sorted(rows) == ["claude-code", "opencode"]
    assert rows["opencode"]["messages"] == 2 and rows["opencode"]["cost"] == 0.75
    assert rows["claude-code"]["tokens"]["cache_write"] == 250
    assert rows["claude-code"]["cost_sources"]["estimated"] == 1  # no cost reported: priced at list price
    table = periscope("report", "--by", "agent", cwd=repo).stdout
    assert "claude-code" in table and "opencode" in table and "total" in table


def test_a_recovered_session_is_followed_after_its_first_recovery(tmp_path, monkeypatch):
    """No capture hook ran. The agent's commit names its session, and the flush after it recovers
    the transcript so far. That flush usually runs while the session goes on, so the replies the
    transcript gains after it must still be captured by later flushes, once each."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "r")
    git(repo, "commit", "-q", "--allow-empty", "-m", "initial")
    periscope("install-hooks", cwd=repo)
    transcript = Path(os.environ["HOME"]) / ".claude" / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    tool = {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "git commit"}}
    transcript.write_text(assistant_line("msg_1", repo, block=tool))
    git(
        repo, "commit", "-q", "--allow-empty", "-m", "agent", env={"CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": SESSION}
    )
    periscope("flush", cwd=repo)  # recovers msg_1
    with transcript.open("a") as f:  # the session goes on after its commit
        f.write(assistant_line("msg_2", repo, block={"type": "text", "text": "done"}))
    periscope("flush", cwd=repo)
    periscope("flush", cwd=repo)  # nothing new: nothing twice
    msgs = [r["id"] for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
    assert msgs == ["msg_1", "msg_2"]


def test_a_capture_with_nothing_new_leaves_the_state_file_alone(tmp_path):
    """A followed session is captured on every flush; when its transcripts did not grow, its state
    file is not rewritten (that was most of the flush's cost per session), and a capture after the
    transcript grows still records exactly the new message."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(assistant_line("msg_1", repo, block={"type": "text", "text": "x"}))
    claude_code.capture_session(SESSION, str(transcript))
    state = Path(claude_code.capture_dir(os.environ)) / f"{SESSION}.json"
    before = state.stat()
    claude_code.capture_session(SESSION, str(transcript))
    after = state.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with open(transcript, "a") as f:
        f.write(assistant_line("msg_2", repo, block={"type": "text", "text": "y"}))
    claude_code.capture_session(SESSION, str(transcript))
    assert state.stat().st_ino != before.st_ino  # written again (a new file renamed into place)
    msgs = [r["id"] for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
    assert msgs == ["msg_1", "msg_2"]
    assert json.loads(state.read_text())["files"] == {str(transcript): transcript.stat().st_size}


def test_a_malformed_transcript_line_is_skipped_by_the_installed_command(tmp_path):
    """The installed command (`python -c`, without the json package) read a malformed line that
    names "assistant" as SystemError, not ValueError: the run stopped before saving anything, and
    every later run met the same line, so nothing of the session was ever captured again."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    text = {"type": "text", "text": "hello"}
    transcript.write_text(
        assistant_line("msg_1", repo, block=text)
        + '{"type":"assistant","message":{"id":"torn\n'
        + assistant_line("msg_2", repo, block=text)
    )
    payload = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo), "hook_event_name": "Stop"}
    run_installed_hook(payload)
    msgs = [r["id"] for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
    assert msgs == ["msg_1", "msg_2"]


def test_a_long_transcript_is_read_over_several_runs_each_message_once(tmp_path):
    """A run stops reading at its time budget and saves where it stopped; the next reads on.  The
    alarm it used to rely on was swallowed (TimeoutError is an OSError, caught while reading HEAD),
    and when it did stop a run, nothing was saved: each run appended the same records again and a
    long session was never caught up.  A run stopped between two lines of one message reads the
    message again whole next time: the line read alone was dropped as seen, and its tool call
    with it (a commit it made then waited for it in vain)."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    ids = [f"msg_{i}" for i in range(1000)]
    transcript.write_text(
        "".join(
            assistant_line(m, repo, block={"type": "text", "text": "x"})
            + assistant_line(m, repo, block={"type": "tool_use", "id": f"toolu_{m}", "name": "Bash", "input": {}})
            for m in ids
        )
    )
    payload = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo), "hook_event_name": "Stop"}
    runs = 0
    while runs < 400:
        runs += 1
        assert run_hook(payload, env={"PERISCOPE_HOOK_READ_BUDGET": "0.02"}).returncode == 0
        got = [r for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
        if len(got) >= len(ids):
            break
    assert runs > 1  # the budget did stop a run
    assert [r["id"] for r in got] == ids  # every message once, in order
    assert [r["tool_use_ids"] for r in got] == [[f"toolu_{m}"] for m in ids]  # with its tool call


def test_a_transcript_that_cannot_be_read_skips_itself_not_the_session(tmp_path):
    """A sub-agent transcript that cannot be read (here one whose reads fail with EIO; a FIFO would
    hold the run until its alarm) is skipped with one logged line: the run aborted before, saving
    nothing, and every later run of the session did the same.  A byte that is not UTF-8 and a line
    longer than the 8 MiB read (a Write of a large file) keep their messages too."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    huge = {"type": "tool_use", "id": "toolu_big", "name": "Write", "input": {"content": "x" * (9 << 20)}}
    transcript.write_bytes(
        assistant_line("msg_main", repo, block={"type": "text", "text": "hi"}).encode()
        + assistant_line("msg_bytes", repo, block={"type": "text", "text": "caf\u00e9"})
        .encode()
        .replace(b"\\u00e9", b"\xff")
        + assistant_line("msg_huge", repo, block=huge).encode()
    )
    agents = transcript.with_suffix("") / "subagents"
    agents.mkdir(parents=True)
    (agents / "agent-eio.jsonl").symlink_to("/proc/self/mem")  # regular, and every read fails (EIO)
    os.mkfifo(agents / "agent-fifo.jsonl")
    (agents / "agent-ok.jsonl").write_text(_subagent_row("msg_sub", repo, "ok", 50, stop="end_turn"))
    payload = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo)}
    assert run_hook({**payload, "hook_event_name": "SessionEnd"}).returncode == 0
    recs = [r for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
    assert [r["id"] for r in recs] == ["msg_main", "msg_bytes", "msg_huge", "msg_sub"]
    assert recs[2]["tool_use_ids"] == ["toolu_big"]
    log = (Path(os.environ["HOME"]) / ".local" / "state" / "periscope" / "hook.log").read_text()
    assert log.count("skipped a transcript it cannot read") == 2 and "Traceback" not in log


def test_a_pretooluse_payload_over_a_mebibyte_still_marks_the_tool_call_in_flight(tmp_path):
    """Claude Code sends PreToolUse the whole Bash command (an agent writing a file through a
    heredoc sends its contents): the hook read 1 MiB of it, could not parse the rest, and so never
    marked the tool call in flight, and the commit that command made lost its agent."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    big = "cat > data.txt <<'EOF'\n" + "x" * (3 << 20) + "\nEOF\ngit add -A && git commit -m data"
    tool = {"type": "tool_use", "id": "toolu_big", "name": "Bash", "input": {"command": "(kept out)"}}
    transcript.write_text(assistant_line("msg_1", repo, block=tool))
    payload = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(repo),
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": big, "description": "write the data file"},
        "tool_use_id": "toolu_big",
    }
    run_installed_hook(payload)
    env = {**os.environ, "CLAUDECODE": "1", "CLAUDE_CODE_SESSION_ID": SESSION}
    assert claude_code.commit_agent(env) == {
        "coding_agent": "claude-code",
        "session_id": SESSION,
        "message_id": "msg_1",
        "tool_use_id": "toolu_big",
    }
    assert b"xxxx" not in spool_path(repo).read_bytes()


def _records_after_stop(repo, transcript):
    """The message records a Stop hook run on `transcript` appended, by id."""
    hook_input = {
        "session_id": SESSION,
        "transcript_path": str(transcript),
        "cwd": str(repo),
        "hook_event_name": "Stop",
    }
    assert run_hook(hook_input).returncode == 0
    return {r["id"]: r for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="list prices need genai-prices (Python 3.11+)")
def test_web_searches_and_fast_mode_are_priced(tmp_path):
    """A request's web searches are billed apart ($10 a thousand), and fast mode (`usage.speed:
    "fast"`) at the table's fast-mode variant (Opus 5: 2x).  Both were left out: the estimate must
    be the library's own figure for the message's usage and speed."""
    from datetime import datetime, timezone

    from genai_prices import Usage, data_snapshot

    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    text = {"type": "text", "text": "hi"}

    def line(mid, **usage):
        return assistant_line(
            mid, repo, block=text, usage=(100, 2000, 300, 4000), model="claude-opus-5", more_usage=usage
        )

    searched = {"server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2}}
    transcript.write_text(
        line("msg_search", server_tool_use={"web_search_requests": 1})  # streamed: the count grows
        + line("msg_search", **searched)
        + line("msg_fast", speed="fast", server_tool_use={"web_search_requests": 0})
        + line("msg_std", speed="standard", server_tool_use={"web_fetch_requests": 4})
        + line("msg_odd", speed=["fast"], server_tool_use={"web_search_requests": "3"})  # not a count, not fast
    )
    recs = _records_after_stop(repo, transcript)
    import jsonschema

    from periscope_hooks import schemas

    for rec in recs.values():
        jsonschema.validate(rec, schemas.load("spool-record"))
    assert (recs["msg_search"]["web_searches"], "speed" in recs["msg_search"]) == (3, False)
    assert (recs["msg_fast"]["speed"], "web_searches" in recs["msg_fast"]) == ("fast", False)
    for plain in ("msg_std", "msg_odd"):
        assert "speed" not in recs[plain] and "web_searches" not in recs[plain]

    periscope("flush", cwd=repo)
    out = periscope("export", "--type", "message", cwd=repo).stdout
    events = {e["message_id"]: e for e in map(json.loads, out.splitlines())}
    model = data_snapshot.get_snapshot().find_provider_model("claude-opus-5", None, "anthropic", None)[1]
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)

    def library(searches=0, context=None):
        usage = Usage(input_tokens=4400, output_tokens=2000, cache_read_tokens=300, cache_write_tokens=4000)
        usage.web_searches = searches or None
        return float(model.get_prices(when, context).calc_price(usage)["total_price"])

    for event in events.values():
        jsonschema.validate(event, schemas.load("events"))
    assert events["msg_search"]["web_searches"] == 3 and "speed" not in events["msg_search"]
    assert events["msg_search"]["list_cost"] == pytest.approx(library(3), abs=1e-6)
    assert events["msg_search"]["list_cost"] == pytest.approx(library() + 0.03, abs=1e-6)
    assert events["msg_fast"]["speed"] == "fast" and "web_searches" not in events["msg_fast"]
    assert events["msg_fast"]["list_cost"] == pytest.approx(library(0, {"speed": "fast"}), abs=1e-6)
    assert events["msg_fast"]["list_cost"] > 1.5 * library()  # the variant is there, and dearer
    for plain in ("msg_std", "msg_odd"):
        assert events[plain]["list_cost"] == pytest.approx(library(), abs=1e-6)
        assert "speed" not in events[plain] and "web_searches" not in events[plain]
    from testing.util import report_json

    (row,) = report_json(repo, by="model")
    assert row["list_cost"] == pytest.approx(sum(e["list_cost"] for e in events.values()), abs=1e-6)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="list prices need genai-prices (Python 3.11+)")
def test_cache_writes_kept_for_an_hour_are_priced_at_their_own_rate(tmp_path):
    """Claude Code asks for one-hour caching: Anthropic bills those writes at 2x input ($6 a million
    for Sonnet 4.5), five-minute ones at 1.25x ($3.75).  The transcript splits them; the estimate
    must be the library's own figure for that split, not every write at the five-minute rate."""
    from datetime import datetime

    from genai_prices import Usage, data_snapshot

    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    text = {"type": "text", "text": "hi"}
    transcript.write_text(
        assistant_line("msg_hour", repo, block=text, usage=(100, 20, 300, 40_000), split=(10_000, 30_000))
        + assistant_line("msg_five", repo, block=text, usage=(100, 20, 300, 40_000), split=(40_000, 0))
        + assistant_line("msg_old", repo, block=text, usage=(100, 20, 300, 40_000))  # no split told
        + assistant_line("msg_odd", repo, block=text, usage=(100, 20, 300, 500), split=(0, 900))  # more than in all
    )
    recs = _records_after_stop(repo, transcript)
    assert recs["msg_hour"]["tokens"]["cache_write_1h"] == 30_000
    assert "cache_write_1h" not in recs["msg_five"]["tokens"] and "cache_write_1h" not in recs["msg_old"]["tokens"]
    assert recs["msg_odd"]["tokens"]["cache_write_1h"] == 500  # at most the writes there were

    periscope("flush", cwd=repo)
    out = periscope("export", "--type", "message", cwd=repo).stdout
    events = {e["message_id"]: e for e in map(json.loads, out.splitlines())}
    snapshot = data_snapshot.get_snapshot()
    model = snapshot.find_provider_model("claude-sonnet-4-5-20250929", None, "anthropic", None)[1]
    prices = model.get_prices(datetime(2026, 12, 1))

    def library(cread, cwrite, hour):
        usage = Usage(
            input_tokens=100 + cread + cwrite,
            output_tokens=20,
            cache_read_tokens=cread,
            cache_write_tokens=cwrite,
            cache_write_1h_tokens=hour or None,
        )
        return float(prices.calc_price(usage)["total_price"])

    assert events["msg_hour"]["tokens"]["cache_write_1h"] == 30_000
    assert events["msg_hour"]["list_cost"] == pytest.approx(library(300, 40_000, 30_000), abs=1e-6)
    assert events["msg_hour"]["list_cost"] == pytest.approx(
        (100 * 3 + 20 * 15 + 300 * 0.3 + 10_000 * 3.75 + 30_000 * 6) / 1e6, abs=1e-6
    )
    for five_minutes in ("msg_five", "msg_old"):
        assert "cache_write_1h" not in events[five_minutes]["tokens"]
        assert events[five_minutes]["list_cost"] == pytest.approx(library(300, 40_000, 0), abs=1e-6)
    assert events["msg_odd"]["list_cost"] == pytest.approx(library(300, 500, 500), abs=1e-6)
    from testing.util import report_json

    (row,) = report_json(repo, by="model")
    assert row["list_cost"] == pytest.approx(sum(e["list_cost"] for e in events.values()), abs=1e-6)


def _subagent_row(mid, cwd, agent_id, output, *, stop=None):
    line = json.loads(
        assistant_line(mid, cwd, block={"type": "text", "text": "x"}, usage=(8, output, 0, 9000), agent_id=agent_id)
    )
    line["message"]["stop_reason"] = stop
    return json.dumps(line) + "\n"


def test_a_subagent_message_counts_its_final_output_even_across_hook_runs(tmp_path):
    """A sub-agent's transcript gets a message's lines while it streams, output_tokens growing
    (3, then 57, then 640): the first line was kept, 3 output tokens for 640.  Within a run each
    count keeps its largest; a message no line follows yet is read again by the next run, unless
    its agent stopped.  Workflow agents (`subagents/workflows/<run>/`) are read too."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(assistant_line("msg_main", repo, block={"type": "text", "text": "hi"}))
    agents = transcript.with_suffix("") / "subagents"
    agents.mkdir(parents=True)
    sub = agents / "agent-a1.jsonl"
    payload = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo)}

    def outputs():
        recs = [r for r in spool.iter_records(str(spool_path(repo))) if r["kind"] == "message"]
        return {r["id"]: r["tokens"]["output"] for r in recs}

    # One run reads every line of it: the largest count.
    sub.write_text(
        _subagent_row("msg_s1", repo, "a1", 3) + _subagent_row("msg_s1", repo, "a1", 57)
        + _subagent_row("msg_s1", repo, "a1", 640, stop="tool_use") + '{"type": "user", "isSidechain": true}\n'
    )  # fmt: skip
    assert run_hook({**payload, "hook_event_name": "PostToolBatch"}).returncode == 0
    assert outputs() == {"msg_main": 20, "msg_s1": 640}
    # A run in the middle of a message (another agent's tool call): not captured yet.
    with sub.open("a") as f:
        f.write(_subagent_row("msg_s2", repo, "a1", 5) + _subagent_row("msg_s2", repo, "a1", 90))
    assert run_hook({**payload, "hook_event_name": "PreToolUse", "tool_use_id": "toolu_x"}).returncode == 0
    assert "msg_s2" not in outputs()
    with sub.open("a") as f:
        f.write(_subagent_row("msg_s2", repo, "a1", 700, stop="end_turn"))
    assert run_hook({**payload, "hook_event_name": "PostToolBatch"}).returncode == 0
    assert "msg_s2" not in outputs()  # still the last lines: the agent may write more
    stopped = {**payload, "hook_event_name": "SubagentStop", "agent_transcript_path": str(sub)}
    assert run_hook(stopped).returncode == 0
    assert outputs()["msg_s2"] == 700
    # A background agent still streams when the turn ends: Stop does not settle it (it froze the
    # message at its first line's count); a line after the message does.
    background = agents / "agent-b1.jsonl"
    background.write_text(_subagent_row("msg_b1", repo, "b1", 1))
    assert run_hook({**payload, "hook_event_name": "Stop"}).returncode == 0
    assert "msg_b1" not in outputs()
    with background.open("a") as f:
        f.write(_subagent_row("msg_b1", repo, "b1", 1886, stop="end_turn") + '{"type": "user", "isSidechain": true}\n')
    assert run_hook({**payload, "hook_event_name": "PostToolBatch"}).returncode == 0
    assert outputs()["msg_b1"] == 1886
    # A workflow's agents, one folder further down; the session's end settles every transcript.
    workflow = agents / "workflows" / "wf_1" / "agent-w1.jsonl"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(_subagent_row("msg_w1", repo, "w1", 900, stop="end_turn"))
    assert run_hook({**payload, "hook_event_name": "SessionEnd"}).returncode == 0
    assert outputs()["msg_w1"] == 900
    assert list(outputs()) == ["msg_main", "msg_s1", "msg_s2", "msg_b1", "msg_w1"]  # each once


@pytest.mark.skipif(sys.version_info < (3, 11), reason="list prices need genai-prices (Python 3.11+)")
def test_bedrock_and_vertex_model_ids_name_their_provider_without_claude_codes_environment(tmp_path):
    """A flush recovering a transcript no hook read runs without CLAUDE_CODE_USE_BEDROCK: a Bedrock
    model id was recorded as Anthropic's, which the price table does not know (cost unknown)."""
    repo = init_repo(tmp_path / "r")
    transcript = tmp_path / "projects" / "p" / f"{SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    lines = []
    for mid, model in (
        ("msg_bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("msg_vertex", "claude-sonnet-4-5@20250929"),
        ("msg_api", "claude-sonnet-4-5-20250929"),
    ):
        line = json.loads(assistant_line(mid, repo, block={"type": "text", "text": "hi"}))
        line["message"]["model"] = model
        lines.append(json.dumps(line) + "\n")
    transcript.write_text("".join(lines))
    payload = {"session_id": SESSION, "transcript_path": str(transcript), "cwd": str(repo), "hook_event_name": "Stop"}
    env = {k: "" for k in ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")}
    assert run_hook(payload, env=env).returncode == 0
    periscope("flush", cwd=repo)
    events = {
        e["message_id"]: e
        for e in map(json.loads, periscope("export", "--type", "message", cwd=repo).stdout.splitlines())
    }
    assert {m: e["provider"] for m, e in events.items()} == {
        "msg_bedrock": "amazon-bedrock",
        "msg_vertex": "google-vertex",
        "msg_api": "anthropic",
    }
    assert all(e["list_cost"] for e in events.values()), {m: e["list_cost"] for m, e in events.items()}
