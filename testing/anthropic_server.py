"""A local Anthropic Messages API server for driving the real Claude Code offline.

`POST /v1/messages` streams server-sent events the way the real API does: `message_start`
(with input and cache usage, the 5m/1h cache-creation split, and a placeholder output count),
the content blocks, `message_delta` with the final output count, `message_stop`.  What it
answers is scripted by directives in the latest user message:

    [[bash: <command>]]      call the Bash tool with <command>
    [[task: <prompt>]]       call the Task tool (a sub-agent) with <prompt>
anything else                reply with text (`reply_text`)

After a tool result the model replies with text.  Requests that offer no tools (Claude Code's
side requests: titles, topics) get a short text and are not recorded as responses.  Every
response carries distinct, known usage numbers and a known message id, recorded in
`self.responses` so tests can check exact per-message figures.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from testing.server import LocalServer, QuietHandler

DIRECTIVE = re.compile(r"\[\[(bash|task):\s*(.+?)\]\]", re.S)
MODEL = "claude-sonnet-4-5-20250929"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _is_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "tool_result" for p in content)


class FakeAnthropic(LocalServer):
    def __init__(
        self, reply_text: str = "All done.", delta_delay: float = 0.0, extra_usage: dict[str, Any] | None = None
    ) -> None:
        self.reply_text = reply_text
        self.delta_delay = delta_delay  # seconds between the last content block and message_delta
        # usage fields every response adds, at its start and its end as the API sends them
        # (server_tool_use's web searches, speed "fast")
        self.extra_usage = extra_usage or {}
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        # {"id", "kind", "model", "usage", "subagent"} per recorded (tool-offering) response
        self.responses: list[dict[str, Any]] = []
        self._counter = 0
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                server.paths.append("GET " + self.path)
                self.reply_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = json.loads(self.rfile.read(length) or b"{}")
                server.paths.append("POST " + self.path)
                path = self.path.split("?", 1)[0]
                if path.endswith("/count_tokens"):
                    self.reply_json(200, {"input_tokens": 1000})
                    return
                if not path.endswith("/v1/messages"):
                    self.reply_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}})
                    return
                events = server.respond(req)
                if not req.get("stream"):
                    self.reply_json(200, server.as_message(events))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for event in events:
                    if event["type"] == "message_delta" and server.delta_delay:
                        time.sleep(server.delta_delay)
                    self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    # --- scripting -------------------------------------------------------------------
    def _next(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    @staticmethod
    def usage_for(n: int) -> dict[str, Any]:
        """Distinct numbers per response: input, output, cache read, cache creation (5m + 1h)."""
        five, hour = 200 + n, 50 + n
        return {
            "input_tokens": 1000 + 10 * n,
            "output_tokens": 40 + n,
            "cache_read_input_tokens": 3000 + 100 * n,
            "cache_creation_input_tokens": five + hour,
            "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
        }

    def respond(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        self.requests.append(req)
        n = self._next()
        model = str(req.get("model") or MODEL)
        usage = {**self.usage_for(n), **self.extra_usage}
        mid = f"msg_fake{n:04d}"
        messages = req.get("messages") or []
        last = messages[-1] if messages else {}
        tools = {t.get("name") for t in req.get("tools") or [] if isinstance(t, dict)}
        if not tools:
            return self._events(mid, model, usage, [{"type": "text", "text": "Periscope test"}])
        system = json.dumps(req.get("system") or "")
        subagent = "Task" not in tools and "Agent" not in tools
        if last.get("role") == "user" and _is_tool_result(last):
            kind, blocks = "text", [{"type": "text", "text": self.reply_text}]
        else:
            users = [m for m in messages if m.get("role") == "user"]
            prompt = _text_of(users[-1].get("content")) if users else ""
            m = DIRECTIVE.search(prompt)
            if m and m.group(1) == "bash" and "Bash" in tools:
                kind = "tool:Bash"
                blocks = [
                    {"type": "text", "text": "Running it."},
                    {
                        "type": "tool_use",
                        "id": f"toolu_fake{n:04d}",
                        "name": "Bash",
                        "input": {"command": m.group(2).strip(), "description": "Run a command"},
                    },
                ]
            elif m and m.group(1) == "task" and tools & {"Task", "Agent"}:
                kind = "tool:Task"
                name = "Task" if "Task" in tools else "Agent"
                blocks = [
                    {
                        "type": "tool_use",
                        "id": f"toolu_fake{n:04d}",
                        "name": name,
                        "input": {
                            "description": "Sub task",
                            "prompt": m.group(2).strip(),
                            "subagent_type": "general-purpose",
                        },
                    }
                ]
            else:
                kind, blocks = "text", [{"type": "text", "text": self.reply_text}]
        del system
        self.responses.append({"id": mid, "kind": kind, "model": model, "usage": usage, "subagent": subagent})
        return self._events(mid, model, usage, blocks)

    @staticmethod
    def _events(mid: str, model: str, usage: dict[str, Any], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        start_usage = {**usage, "output_tokens": 1}  # the real API sends a placeholder here
        out: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            }
        ]
        stop = "end_turn"
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                out.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
                out.append(
                    {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": block["text"]}}
                )
            else:
                stop = "tool_use"
                out.append(
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                    }
                )
                out.append(
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    }
                )
            out.append({"type": "content_block_stop", "index": i})
        out.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {
                    "output_tokens": usage["output_tokens"],
                    **{k: v for k, v in usage.items() if k in ("server_tool_use", "speed")},
                },
            }
        )
        out.append({"type": "message_stop"})
        return out

    @staticmethod
    def as_message(events: list[dict[str, Any]]) -> dict[str, Any]:
        """The non-streaming form of the same response."""
        message = dict(events[0]["message"])
        content: list[dict[str, Any]] = []
        for e in events:
            if e["type"] == "content_block_start":
                content.append(dict(e["content_block"]))
            elif e["type"] == "content_block_delta":
                d = e["delta"]
                if d["type"] == "text_delta":
                    content[-1]["text"] += d["text"]
                else:
                    content[-1]["input"] = json.loads(d["partial_json"])
            elif e["type"] == "message_delta":
                message["stop_reason"] = e["delta"]["stop_reason"]
                message["usage"] = {**message["usage"], **e["usage"]}
        message["content"] = content
        return message


if __name__ == "__main__":  # manual use: python -m testing.anthropic_server
    with FakeAnthropic() as s:
        print(s.base_url, flush=True)
        while True:
            time.sleep(3600)
