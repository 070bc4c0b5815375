"""Claude Code: captured by periscope's own hooks, which read Claude Code's transcripts.

Claude Code runs `periscope agent-hook claude-code` (installed by `install-claude-code`) at
PreToolUse (Bash), PostToolBatch, Stop, SubagentStop and SessionEnd, with JSON on stdin
(`session_id`, `transcript_path`, `cwd`, and for tools `tool_use_id`).  The hook reads the
transcript lines added since the offset stored for the session, and the session's sub-agent
transcripts (`<session>/subagents/agent-<id>.jsonl`), and appends one metadata-only message
record per assistant message to the spool of the repository the line's `cwd` is in.  Then it
starts the background flush.  It is synchronous (Claude Code cancels `async` hooks when a `-p`
turn ends), silent, bounded in time, and always exits 0 (an exit 2 would block the tool).

Facts this rests on (checked with Claude Code 2.1.332):
- One message with several content blocks is written as several lines with the same
  `message.id`: deduplicated on the id, never summed.  In the session's own transcript the
  lines carry the same, final usage, written once the message is complete.  A sub-agent's
  transcript gets them while the message streams, `output_tokens` growing line by line (the
  last is the final count): each count keeps its largest, and a sub-agent message with no line
  after it yet is read again by the next run (OPEN_MESSAGE_WAIT_S).
- The session's lines are written once the message is complete.  The Bash tool starts while the
  message is still streaming, so a `git commit` can run before its own message is in the
  transcript.  PreToolUse therefore writes the tool's id (and the message id, when the
  message is already there) to `<session>.inflight`, which the commit hook reads; ingest holds
  the commit until the message holding that tool id is captured.
- Commands the Bash tool runs see `CLAUDECODE=1` and `CLAUDE_CODE_SESSION_ID` (sub-agents:
  the parent's id).
- There is no per-message cost: records carry `cost: null` and are priced at ingest.

Only ids, model, provider, token counts, times, the worktree, git branch and SHA are read from
a line: never text, thinking, tool input or output.
"""

from __future__ import annotations

import os
import time
from stat import S_ISREG as _S_ISREG

from periscope_hooks.folders import make_private_dir

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Iterable, Mapping
    from typing import Any

NAME = "claude-code"
HOOK_EVENTS = ("PreToolUse", "PostToolBatch", "Stop", "SubagentStop", "SessionEnd")
HOOK_MATCHERS = {"PreToolUse": "Bash"}  # the only tool whose commands can commit
HOOK_TIME_LIMIT_S = 10
# A hook run stops reading transcripts after this long (before a line, its offset saved, what it
# read recorded): the next run reads on from there.  The alarm at HOOK_TIME_LIMIT_S is only for a
# hung filesystem; stopped by it, a run saves nothing and the next one reads the same lines again
# (a 250k-message transcript was never caught up, and its records piled up in the spool).
# A transcript line is read whole up to this size (a Write of a large file puts the file in its
# line); a longer one is skipped as garbage.
MAX_TRANSCRIPT_LINE = 256 << 20
HOOK_READ_BUDGET_S = 6.0  # PERISCOPE_HOOK_READ_BUDGET (envvars.py) may shorten it
_read_until: float | None = None  # set by run_hook: time.monotonic() past which reading stops
RECENT = 500  # message and tool ids remembered per session, to drop the repeated lines of one message
# A sub-agent message that its transcript's last lines hold may still be streaming: it is captured
# once a line follows it, its agent stops (SubagentStop, Stop, SessionEnd), or its transcript has
# not changed for this long (Claude Code gone mid-message).  A row of a long block can take
# minutes to come; waiting only delays the capture.
OPEN_MESSAGE_WAIT_S = 600
SYNTHETIC_MODEL = "<synthetic>"  # Claude Code's own placeholder replies (errors, interrupts): no API call
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _safe_id(value: object) -> str | None:
    """A session or tool id usable as a file name (Claude Code's are UUIDs and toolu_...)."""
    if isinstance(value, str) and 0 < len(value) <= 200 and set(value) <= _ID_CHARS:
        return value
    return None


def _periscope_state_home(env: Mapping[str, str]) -> str:
    """paths.state_home()/periscope, without pathlib (20-50 ms of imports Claude Code would wait for)."""
    state = env.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(state):
        state = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "periscope")


def capture_dir(env: Mapping[str, str] = os.environ) -> str:
    """Per-session capture state: transcript offsets, recent ids, the in-flight tool."""
    return os.path.join(_periscope_state_home(env), "claude-code")


def commit_agent(env: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """A commit made by a command Claude Code ran: its session, and the tool call in flight."""
    if env.get("CLAUDECODE") != "1":
        return None
    session_id = _safe_id(env.get("CLAUDE_CODE_SESSION_ID"))
    block: dict[str, Any] = {"coding_agent": NAME, "session_id": session_id, "message_id": None}
    if session_id:
        try:
            with open(os.path.join(capture_dir(env), session_id + ".inflight"), encoding="utf-8") as f:
                parts = f.read(1024).strip().split("\t")
        except OSError:
            parts = []
        if parts and _safe_id(parts[0]):
            block["tool_use_id"] = parts[0]
        if len(parts) > 1 and parts[1]:
            block["message_id"] = parts[1]
    return block


# --- reading transcripts (not on the commit hook's path) ------------------------------------


class _ScanContext:
    """What the C JSON scanner reads from its context (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity
    memo: dict[str, str] = {}


def loads(data: bytes | str) -> Any:
    """json.loads with the C scanner alone: the json package imports re and enum, ~40 ms that
    Claude Code would wait for on every hook run (the hook parses every new transcript line).
    A byte that is not UTF-8 becomes U+FFFD (in a tool's output, say): the line's usage counts."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        import json

        return json.loads(text)
    try:
        value, end = make_scanner(_ScanContext())(text, 0)  # type: ignore[arg-type]  # duck-typed context
    except StopIteration:
        raise ValueError("not JSON") from None
    except Exception as e:
        # The scanner raises its errors as json.decoder.JSONDecodeError, importing json for them;
        # without json loaded that came out as SystemError ("returned NULL without setting an
        # exception") on 3.11, which no caller expected: one torn transcript line then stopped the
        # session's capture for good.  Nesting past the limit gives RecursionError.
        raise ValueError(f"not JSON ({type(e).__name__})") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def _time_ms(stamp: object) -> int | None:
    from datetime import datetime

    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def provider(env: Mapping[str, str] = os.environ, model: object = None) -> str:
    """Where Claude Code sends its requests (the hook runs with Claude Code's environment).  A
    recovery (a flush reading a transcript no hook read) runs without that environment: the
    model id tells Bedrock's (`us.anthropic.claude-...-v1:0`) and Vertex's (`claude-...@date`)."""
    if env.get("CLAUDE_CODE_USE_BEDROCK") in ("1", "true"):
        return "amazon-bedrock"
    if env.get("CLAUDE_CODE_USE_VERTEX") in ("1", "true"):
        return "google-vertex"
    if isinstance(model, str):
        if "anthropic.claude" in model:
            return "amazon-bedrock"
        if model.startswith("claude") and "@" in model:
            return "google-vertex"
    return "anthropic"


def message_fields(line: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata of one assistant transcript line, or None for anything else.

    Picks fields by name; nothing else of the line (content, thinking, tool input) is kept.
    """
    if line.get("type") != "assistant":
        return None
    message = line.get("message")
    if not isinstance(message, dict):
        return None
    mid, usage, model = message.get("id"), message.get("usage"), message.get("model")
    if not isinstance(mid, str) or not mid or not isinstance(usage, dict) or model == SYNTHETIC_MODEL:
        return None
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    output = _count(usage.get("output_tokens"))
    content = message.get("content")
    tool_ids = [
        b["id"]
        for b in (content if isinstance(content, list) else [])
        if isinstance(b, dict) and b.get("type") == "tool_use" and _safe_id(b.get("id"))
    ]
    return {
        "id": mid,
        "model": model if isinstance(model, str) else None,
        "time": _time_ms(line.get("timestamp")),
        "cwd": line.get("cwd") if isinstance(line.get("cwd"), str) else "",
        "tokens": {
            "input": _count(usage.get("input_tokens")),
            # Anthropic's output count includes thinking; the spool keeps them apart (like OpenCode).
            "output": max(output - thinking, 0),
            "reasoning": min(thinking, output) if output else thinking,
            "cache_read": _count(usage.get("cache_read_input_tokens")),
            "cache_write": _count(usage.get("cache_creation_input_tokens")),
            **_hour_writes(usage),
        },
        "tool_use_ids": tool_ids,
        "agent_id": line.get("agentId") if line.get("isSidechain") and _safe_id(line.get("agentId")) else None,
        "priced_by": _priced_by(usage),
    }


def _priced_by(usage: dict[str, Any]) -> dict[str, Any]:
    """What else the request is billed for, as the record's `web_searches` (server-side searches,
    $10 a thousand) and `speed: "fast"` (fast mode, priced by the table's variant); {} for neither,
    so other records stay as they were.  Web fetches cost only their tokens."""
    tools = usage.get("server_tool_use")
    searches = _count(tools.get("web_search_requests")) if isinstance(tools, dict) else 0
    out: dict[str, Any] = {"web_searches": searches} if searches else {}
    if usage.get("speed") == "fast":
        out["speed"] = "fast"
    return out


def _hour_writes(usage: dict[str, Any]) -> dict[str, int]:
    """{"cache_write_1h": n} when some of the cache writes were kept for an hour, else {}.

    Claude Code asks for one-hour caching, which Anthropic bills at 2x input against 1.25x for
    five minutes; the usage block splits the writes (`cache_creation`).  Left out when there are
    none, so the records (and events) of five-minute writes stay as they were."""
    split = usage.get("cache_creation")
    hour = _count(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    hour = min(hour, _count(usage.get("cache_creation_input_tokens")))
    return {"cache_write_1h": hour} if hour else {}


def _keep_the_largest(held: dict[str, int], row: dict[str, int]) -> None:
    """Another line of a message: each count keeps its largest (a sub-agent's lines come while the
    message streams, `output_tokens` growing; the first one kept was 3 where the last said 640).
    Output and reasoning are one count that lines split differently (only some carry the thinking
    tokens): the largest total, with the largest thinking part any line gave."""
    total = row["output"] + row["reasoning"]
    held_total = held["output"] + held["reasoning"]
    reasoning = min(max(held["reasoning"], row["reasoning"]), max(total, held_total))
    for kind, count in row.items():
        if count > held.get(kind, 0):
            held[kind] = count
    held["reasoning"] = reasoning
    held["output"] = max(total, held_total) - reasoning


class _Capture:
    """One hook run's work for one session, under the session's lock.

    Records are appended as the transcript is read, the newest RECENT to 2 * RECENT messages held
    back: a message's repeated lines (one per content block, written together) still add their
    tool ids to its record, and memory stays bounded however long the transcript (a recovery
    reads a whole session at once: holding every record cost ~1.1 KB a message, 1.2 GB for a
    1M-message session).  The ids and tool ids remembered are bounded the same way.
    """

    def __init__(self, session_id: str, env: Mapping[str, str]) -> None:
        self.session_id = session_id
        self.env = env
        self.dir = capture_dir(env)
        self.state_path = os.path.join(self.dir, session_id + ".json")
        self.state: dict[str, Any] = {}
        self._held: list[tuple[str, dict[str, Any]]] = []  # (spool path, record) not appended yet, in order
        self._held_messages = 0
        self._written: list[str] = []  # spool paths appended to, in order
        self._repos: dict[str, tuple[str, Any]] = {}  # cwd -> (state dir, RepoDirs | None)
        self._agent_types: dict[str, str | None] = {}
        # git dir -> (sha, branch), read once a run: a run reads HEAD as it is now for every
        # message it captures anyway, and a recovered transcript of thousands of messages spent a
        # third of its CPU reading the same HEAD again for each one.
        self._heads: dict[str, tuple[Any, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}  # message id -> its record, while held
        self._seen: set[str] = set()  # state["seen"] as a set
        self._on_disk = False  # load() read a state file
        self._changed = False  # a transcript was read past its offset (or re-read from the start)
        self.finished: set[str] = set()  # transcripts whose agent stopped: nothing in them streams
        self.all_finished = False  # the session ended
        self.unreadable: list[tuple[str, str]] = []  # (transcript, why) skipped by this run

    def load(self) -> None:
        try:
            with open(self.state_path, "rb") as f:
                data = loads(f.read())
            if isinstance(data, dict):
                self.state = data
                self._on_disk = True
        except (OSError, ValueError):
            self.state = {}
        for key in ("files", "tools", "announced"):
            if not isinstance(self.state.get(key), dict):
                self.state[key] = {}
        if not isinstance(self.state.get("seen"), list):
            self.state["seen"] = []
        self._seen = set(self.state["seen"])

    def save(self) -> None:
        """Write the state back, unless nothing was read: a followed session (agents/recovery.py)
        is looked at on every flush, and rewriting its unchanged state cost ~0.8 ms of the ~1 ms
        each took (200 followed sessions: 0.2 s of every flush)."""
        from periscope_hooks.spool import _dumps

        if self._on_disk and not self._changed:
            return
        self.state["seen"] = self.state["seen"][-RECENT:]
        tools = self.state["tools"]
        if len(tools) > RECENT:
            self.state["tools"] = dict(list(tools.items())[-RECENT:])
        tmp = f"{self.state_path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(_dumps(self.state))
        os.replace(tmp, self.state_path)

    def where(self, cwd: str) -> tuple[str, Any]:
        """(state dir, repository dirs or None) for a transcript line's cwd."""
        found = self._repos.get(cwd)
        if found is None:
            from periscope_hooks import git

            dirs = git.find_repo_dirs(cwd, env={}) if cwd and os.path.isdir(cwd) else None
            if dirs is not None:
                found = (os.path.join(dirs.common_dir, "periscope"), dirs)  # paths.state_dir_for_common_dir
            else:
                found = (os.path.join(_periscope_state_home(self.env), "no-repo"), None)  # paths.no_repo_state_dir
            self._repos[cwd] = found
        return found

    def head(self, dirs: Any) -> tuple[Any, Any]:
        head = self._heads.get(dirs.git_dir)
        if head is None:
            from periscope_hooks import git

            head = self._heads[dirs.git_dir] = git.read_head(dirs)
        return head

    def agent_type(self, transcript: str, agent_id: str) -> str | None:
        """The sub-agent's type (general-purpose, Explore, ...) from the meta file beside it."""
        if agent_id not in self._agent_types:
            meta = os.path.join(os.path.dirname(transcript), f"agent-{agent_id}.meta.json")
            try:
                with open(meta, "rb") as f:
                    value = loads(f.read()).get("agentType")
            except (OSError, ValueError, AttributeError):
                value = None
            self._agent_types[agent_id] = value if isinstance(value, str) else None
        return self._agent_types[agent_id]

    def read(self, transcript: str) -> None:
        from periscope_hooks import spool

        offsets = self.state["files"]
        known = offsets.get(transcript)
        offset = known or 0
        try:
            found = os.stat(transcript)
        except OSError:
            return  # not there (yet, or any more)
        if not _S_ISREG(found.st_mode):
            self.unreadable.append((transcript, "not a regular file"))  # a FIFO would hold the run
            return
        if found.st_size < offset:
            offset = 0  # replaced or truncated: re-read (message ids deduplicate)
        seen, tools = self._seen, self.state["tools"]
        subagent = f"{os.sep}subagents{os.sep}" in transcript
        trailing: tuple[str, int] | None = None  # (id, first line's offset) of a message no line follows yet
        while True:
            try:
                lines, end = spool.read_lines(transcript, offset, 8 << 20, max_line=MAX_TRANSCRIPT_LINE)
            except OSError as e:  # unreadable: the session's other transcripts are still read
                self.unreadable.append((transcript, f"{type(e).__name__}: {e.strerror or e}"))
                break
            if end == offset:
                break
            stopped_at = None
            for line_offset, raw in lines:
                if _read_until is not None and time.monotonic() > _read_until:
                    stopped_at = line_offset  # the rest on the next hook run, from this line
                    break
                fields = None
                if b'"assistant"' in raw:  # most lines (attachments, requests, tool results) are not
                    try:
                        line = loads(raw)
                    except (ValueError, RecursionError):
                        line = None
                    fields = message_fields(line) if isinstance(line, dict) else None
                if fields is None:
                    trailing = None  # a line after the message: it is complete
                    continue
                if trailing is None or trailing[0] != fields["id"]:
                    trailing = (fields["id"], line_offset)
                for tool_id in fields["tool_use_ids"]:
                    tools[tool_id] = fields["id"]
                if len(tools) > 2 * RECENT:  # the newest RECENT are kept (save() keeps as many)
                    tools = self.state["tools"] = dict(list(tools.items())[-RECENT:])
                earlier = self._records.get(fields["id"])
                if earlier is not None:  # another content block of a message read in this run
                    earlier["tool_use_ids"].extend(
                        t for t in fields["tool_use_ids"] if t not in earlier["tool_use_ids"]
                    )
                    _keep_the_largest(earlier["tokens"], fields["tokens"])
                    for key, value in fields["priced_by"].items():  # the largest count, fast if any line says so
                        if key != "web_searches" or value > earlier.get(key, 0):
                            earlier[key] = value
                    continue
                if fields["id"] in seen:
                    continue
                seen.add(fields["id"])
                self.state["seen"].append(fields["id"])
                if len(self.state["seen"]) > 2 * RECENT:
                    del self.state["seen"][:-RECENT]
                    seen = self._seen = set(self.state["seen"])
                self.add_message(transcript, fields)
            if stopped_at is not None:
                offset = stopped_at
                if trailing is not None and trailing[0] in self._records:
                    # The budget may have stopped between two lines of one message: it is read
                    # again whole next time (a line read alone then was dropped as seen, with
                    # the tool id and the larger counts it carried).
                    offset = trailing[1]
                    self._forget(trailing[0])
                trailing = None  # not at the end: what follows is read next time
                break
            offset = end
        if subagent and trailing is not None and trailing[0] in self._records and not self._settled(transcript):
            offset = trailing[1]  # read again next run, when more of it (or what follows) is there
            self._forget(trailing[0])
        offsets[transcript] = offset
        if offset != known:
            self._changed = True

    def _settled(self, transcript: str) -> bool:
        """Nothing more will be written to the end of `transcript`: its agent stopped, or it has
        not changed for OPEN_MESSAGE_WAIT_S."""
        if self.all_finished or os.path.realpath(transcript) in self.finished:
            return True
        try:
            return time.time() - os.path.getmtime(transcript) >= OPEN_MESSAGE_WAIT_S
        except OSError:
            return True

    def _forget(self, message_id: str) -> None:
        """Drop a held message, as if not read: the next run reads its lines again."""
        record = self._records.pop(message_id)
        self._held = [(p, r) for p, r in self._held if r is not record]
        self._held_messages -= 1
        self._seen.discard(message_id)
        if message_id in self.state["seen"]:
            self.state["seen"].remove(message_id)

    def add_message(self, transcript: str, fields: dict[str, Any]) -> None:

        state_dir, dirs = self.where(fields["cwd"])
        spool_path = os.path.join(state_dir, "spool.jsonl")
        session_id, agent = self.session_id, None
        if fields["agent_id"]:
            session_id = f"{self.session_id}/agent-{fields['agent_id']}"
            agent = self.agent_type(transcript, fields["agent_id"])
        key = f"{session_id}\t{state_dir}"
        if key not in self.state["announced"]:
            self.state["announced"][key] = 1
            self._held.append(
                (
                    spool_path,
                    {
                        "v": 1,
                        "kind": "session",
                        "session_id": session_id,
                        "title": None,  # Claude Code's titles are drawn from the conversation: not kept
                        "parent_id": self.session_id if fields["agent_id"] else None,
                        "agent": agent,
                        "coding_agent": NAME,
                        "time": fields["time"],
                    },
                )
            )
        sha, branch = self.head(dirs) if dirs is not None else (None, None)
        import time

        record = self._records[fields["id"]] = {
            "v": 1,
            "kind": "message",
            "id": fields["id"],
            "session_id": session_id,
            "time": fields["time"] if fields["time"] is not None else int(time.time() * 1000),
            "provider": provider(self.env, fields["model"]),
            "model": fields["model"],
            "agent": agent,
            "coding_agent": NAME,
            "tokens": fields["tokens"],
            "cost": None,  # Claude Code reports no per-message cost: priced at ingest
            "cwd": dirs.worktree if dirs is not None else "",
            "git": {"branch": branch, "sha": sha},
            "tool_use_ids": list(fields["tool_use_ids"]),
            **fields["priced_by"],
        }
        self._held.append((spool_path, record))
        self._held_messages += 1
        if self._held_messages >= 2 * RECENT:
            self.append(keep=RECENT)

    def write_inflight(self, tool_use_id: str) -> None:
        message_id = self.state["tools"].get(tool_use_id) or ""
        tmp = os.path.join(self.dir, f"{self.session_id}.inflight.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{tool_use_id}\t{message_id}\n")
        os.replace(tmp, os.path.join(self.dir, self.session_id + ".inflight"))

    def append(self, keep: int = 0) -> list[str]:
        """Append the held records but the newest `keep` messages (and what came after the first
        of them); the state dirs written to in this run."""
        from periscope_hooks import spool

        held, cut = self._held, len(self._held)
        if keep:
            messages = 0
            while messages < keep:
                cut -= 1
                if held[cut][1]["kind"] == "message":
                    messages += 1
        for spool_path, record in held[:cut]:
            if spool_path not in self._written:
                make_private_dir(os.path.dirname(spool_path))
                self._written.append(spool_path)
            spool.append(spool_path, record)
            if record["kind"] == "message":
                self._records.pop(record["id"], None)
        del held[:cut]
        self._held_messages = keep
        return [os.path.dirname(p) for p in self._written]


def transcripts_of(transcript: str, extra: Iterable[str] = ()) -> list[str]:
    """The session's transcript and its sub-agents' (`<session>/subagents/agent-*.jsonl`, and in
    folders below it: a workflow's agents are in `subagents/workflows/<run>/`)."""
    files = [transcript]
    sub = os.path.join(transcript[: -len(".jsonl")] if transcript.endswith(".jsonl") else transcript, "subagents")
    found: list[str] = []
    for folder, dirs, names in os.walk(sub):  # nothing when there is no such folder
        dirs.sort()
        found.extend(os.path.join(folder, n) for n in names if n.startswith("agent-") and n.endswith(".jsonl"))
    files.extend(sorted(found))
    files.extend(p for p in extra if p not in files)
    return files


def capture_session(
    session_id: str,
    transcript: str,
    *,
    tool_use_id: str | None = None,
    extra: Iterable[str] = (),
    env: Mapping[str, str] = os.environ,
    finished: bool = False,
) -> list[str]:
    """Capture what is new in a session's transcripts; the state dirs whose spool grew.
    `extra`: a stopped sub-agent's transcript; `finished`: the session ended."""
    import fcntl

    cap = _Capture(session_id, env)
    os.makedirs(cap.dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(cap.dir, session_id + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # parallel tool calls run their hooks at the same time
        cap.load()
        cap.finished.update(os.path.realpath(p) for p in extra)
        cap.all_finished = finished
        for path in transcripts_of(transcript, extra):
            cap.read(path)
        if cap.unreadable:
            from periscope_hooks import logfile

            log = os.path.join(_periscope_state_home(env), "hook.log")  # paths.fallback_log_path
            for path, why in cap.unreadable:
                logfile.log_line(log, f"Claude Code: skipped a transcript it cannot read ({why}): {path}")
        # Records first, offsets second: a crash in between re-reads, and ingest drops the repeat.
        written = cap.append()
        cap.save()
        if tool_use_id:
            cap.write_inflight(tool_use_id)
        return written
    finally:
        os.close(fd)


def capture(hook_input: dict[str, Any], env: Mapping[str, str] = os.environ) -> list[str]:
    """What one Claude Code hook run does, given the JSON Claude Code passed on stdin."""
    session_id = _safe_id(hook_input.get("session_id"))
    transcript = hook_input.get("transcript_path")
    if not session_id or not isinstance(transcript, str) or not os.path.isabs(transcript):
        return []
    extra = [p for p in [hook_input.get("agent_transcript_path")] if isinstance(p, str) and os.path.isabs(p)]
    event = hook_input.get("hook_event_name")
    tool = _safe_id(hook_input.get("tool_use_id")) if event == "PreToolUse" else None
    # Not at Stop: a turn's end does not stop a background sub-agent, whose message may still be
    # streaming (settled by its SubagentStop, a line after it, or 10 quiet minutes).
    finished = event == "SessionEnd"
    return capture_session(session_id, transcript, tool_use_id=tool, extra=extra, env=env, finished=finished)


def config_dir(env: Mapping[str, str] = os.environ) -> str:
    explicit = env.get("CLAUDE_CONFIG_DIR")
    if explicit and os.path.isabs(explicit):
        return explicit
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".claude")


def find_transcript(session_id: str, env: Mapping[str, str] = os.environ) -> str | None:
    """`<config>/projects/<project>/<session_id>.jsonl`, wherever the project folder is."""
    if not _safe_id(session_id):
        return None
    projects = os.path.join(config_dir(env), "projects")
    try:
        folders = os.listdir(projects)
    except OSError:
        return None
    for folder in sorted(folders):
        path = os.path.join(projects, folder, session_id + ".jsonl")
        if os.path.isfile(path):
            return path
    return None


def has_capture_state(session_id: str, env: Mapping[str, str] = os.environ) -> bool:
    return bool(_safe_id(session_id)) and os.path.exists(os.path.join(capture_dir(env), session_id + ".json"))


def recover(session_id: str, env: Mapping[str, str] = os.environ) -> list[str]:
    """For a session whose hooks never ran: find its transcript by id and capture it."""
    transcript = find_transcript(session_id, env)
    if transcript is None:
        return []
    return capture_session(session_id, transcript, env=env)


class HookTimeLimit(BaseException):
    """The alarm's: a BaseException, since TimeoutError is an OSError, which the code it interrupts
    catches (reading HEAD, say) and goes on: runs went on for 14 s and more."""


def _alarm(signum: int, frame: object) -> None:  # pragma: no cover - a hung filesystem
    raise HookTimeLimit(f"the Claude Code hook took longer than {HOOK_TIME_LIMIT_S}s")


def main() -> int:
    """What the installed hook command runs (`python -c`, not `-m`: runpy alone costs ~10 ms)."""
    import _signal  # type: ignore[import-not-found]  # the C module (run_hook)
    import sys

    # The time limit covers reading stdin too: a caller that kept it open held the hook for as
    # long as it liked (run_hook keeps what is left of it).
    _signal.signal(_signal.SIGALRM, _alarm)
    _signal.alarm(HOOK_TIME_LIMIT_S)
    try:
        # All of it: PreToolUse carries the whole Bash command (a heredoc writing a file sends its
        # contents), and a payload cut at 1 MiB could not be read, so its tool call was never
        # marked in flight and the commit it made lost its agent.
        data = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    except (OSError, ValueError):
        data = b""
    except HookTimeLimit:
        _signal.alarm(0)
        return 0  # nothing complete to read: nothing to capture (the next hook run reads it all)
    return run_hook(data)


def run_hook(stdin_data: bytes, env: Mapping[str, str] = os.environ) -> int:
    """`periscope agent-hook claude-code`: always 0, never a word on stdout or stderr."""
    import _signal  # the C module: `signal` imports enum (~15 ms)

    from periscope_hooks import hook, logfile

    global _read_until
    try:
        _signal.signal(_signal.SIGALRM, _alarm)
        left = _signal.alarm(HOOK_TIME_LIMIT_S)
        if left:  # main() started the clock before reading stdin: what is left of it
            _signal.alarm(left)
        from periscope_hooks import envvars  # a bad value: one logged line, nothing read (never a guess)

        _read_until = time.monotonic() + min(envvars.seconds("PERISCOPE_HOOK_READ_BUDGET"), HOOK_READ_BUDGET_S)
        data = loads(stdin_data or b"{}")
        if not isinstance(data, dict):
            return 0
        written = capture(data, env)
        if env.get("PERISCOPE_BACKGROUND", "1") != "0":
            for state_dir in written:
                hook.spawn_background_flush(state_dir)
    except BaseException as e:  # never fail (or block) Claude Code
        log = os.path.join(_periscope_state_home(env), "hook.log")  # paths.fallback_log_path
        logfile.log_line(log, "Claude Code hook failed; Claude Code is unaffected", exc=e)
    finally:
        _signal.alarm(0)
        _read_until = None
    return 0
