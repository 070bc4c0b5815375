"""Claude Code capture reads a long session in bounded memory and records what it recorded when it
held every record: records are appended as the transcripts are read, the newest messages held
back so a message's later lines still join its record."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

from periscope_hooks import spool
from periscope_hooks.agents import claude_code
from testing.util import init_repo, spool_path

PER_FILE = 500  # messages per transcript file: each file is read in one small chunk


def _session_id(files: int) -> str:
    return f"5e55a9e0-1d2f-4e5a-8b6c-{files:012d}"


def _line(session: str, i: int, cwd: Path, block: dict[str, object], agent: str | None = None) -> str:
    line = {
        "type": "assistant",
        "isSidechain": agent is not None,
        "sessionId": session,
        "cwd": str(cwd),
        "timestamp": f"2026-12-01T10:{i // 3600 % 60:02d}:{i // 60 % 60:02d}.{i % 60:03d}Z",
        "message": {
            "id": f"msg_{i:08d}",
            "model": "claude-sonnet-4-5-20250929",
            "content": [block],
            "usage": {"input_tokens": 10 + i % 7, "output_tokens": 20, "cache_read_input_tokens": 300},
        },
    }
    if agent:
        line["agentId"] = agent
    return json.dumps(line) + "\n"


def _session(home: Path, repo: Path, files: int) -> Path:
    """The session's transcript and files - 1 sub-agent transcripts, PER_FILE messages each; every
    third message in three lines (a text block, two tool calls), like Claude Code writes them."""
    session = _session_id(files)
    transcript = home / ".claude" / "projects" / "p" / f"{session}.jsonl"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        agent = f"a{f:03d}" if f else None
        path = transcript if not f else transcript.with_suffix("") / "subagents" / f"agent-{agent}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as out:
            for i in range(f * PER_FILE, (f + 1) * PER_FILE):
                blocks: list[dict[str, object]] = [{"type": "text", "text": "ok"}]
                if i % 3 == 1:
                    blocks += [{"type": "tool_use", "id": f"toolu_{i:08d}{b}", "name": "Bash"} for b in "ab"]
                out.writelines(_line(session, i, repo, b, agent) for b in blocks)
    return transcript


def _peak_of_capture(tmp_path: Path, files: int) -> tuple[int, list[dict[str, object]]]:
    repo = init_repo(tmp_path / f"r{files}")
    transcript = _session(Path(os.environ["HOME"]), repo, files)
    tracemalloc.start()
    try:
        claude_code.capture_session(_session_id(files), str(transcript), finished=True)  # a session that ended
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, list(spool.iter_records(str(spool_path(repo))))


def test_a_long_session_is_captured_in_bounded_memory(tmp_path: Path) -> None:
    """Twelve transcripts (6,000 messages) cost about what two do (1,000): holding every record
    until the end made the peak grow with the session, ~1.5 KB a message (1.2 GB of RSS for a
    1M-message session); held back now are at most 1,000 (~35 B a message on top of the 8 MB
    read buffer, measured)."""
    _peak_of_capture(tmp_path, 1)  # imports what capture imports: not counted below
    small, _ = _peak_of_capture(tmp_path, 2)
    large, large_records = _peak_of_capture(tmp_path, 12)
    assert sum(r["kind"] == "message" for r in large_records) == 12 * PER_FILE
    assert (large - small) / (10 * PER_FILE) < 200, (small, large)  # bytes per message more
    # What was recorded is what holding every record recorded: one record a message, its tool
    # calls joined from its later lines, a session record before each sub-agent's first message.
    messages = [r for r in large_records if r["kind"] == "message"]
    assert [r["id"] for r in messages] == [f"msg_{i:08d}" for i in range(12 * PER_FILE)]
    assert all(
        r["tool_use_ids"] == ([f"toolu_{i:08d}a", f"toolu_{i:08d}b"] if i % 3 == 1 else [])
        for i, r in enumerate(messages)
    )
    sessions = [r["session_id"] for r in large_records if r["kind"] == "session"]
    session = _session_id(12)
    assert sessions == [session] + [f"{session}/agent-a{f:03d}" for f in range(1, 12)]
