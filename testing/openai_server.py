"""A local OpenAI-compatible chat-completions server for driving the real OpenCode offline.

Streams chat-completion chunks with a final `usage` chunk.  What it answers is
scripted by directives in the latest user message:

    [[bash: <command>]]      call the bash tool with <command>
    [[read: <path>]]         call the read tool
    [[task: <prompt>]]       call the task tool (a sub-agent session)
anything else                reply with text (REPLY_TEXT, then the prompt's SENTINEL echo if any)

After a tool result the model replies with text.  Title-generation requests get a
fixed title.  Every response carries distinct, known usage numbers, recorded in
`self.responses` so tests can check exact totals.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from testing.server import LocalServer, QuietHandler

TITLE = "Periscope test session"
TITLE_WAIT_S = 3.0
DIRECTIVE = re.compile(r"\[\[(bash|read|task):\s*(.+?)\]\]", re.S)


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class FakeOpenAI(LocalServer):
    def __init__(self, reply_text: str = "All done.") -> None:
        self.reply_text = reply_text
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # {"kind", "usage"} per main-agent response
        self._counter = 0
        self._lock = threading.Lock()
        # OpenCode asks for a session's title beside its first answer; `opencode run` may exit as
        # soon as the answer is in, before the title is, and the session keeps its default title
        # (test_one_plain_prompt failed once so in about ten full runs).  The first answer waits
        # for the title to have been sent (at most TITLE_WAIT_S), as a slower model would make it.
        # In 8 runs measured the title request had always been answered first (no wait at all):
        # the race needs the other order, which this removes.
        self.title_sent = threading.Event()
        self._answered = False
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                self.reply_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = json.loads(self.rfile.read(length) or b"{}")
                title = server.is_title(req)
                if not title and not server._answered:
                    server.title_sent.wait(TITLE_WAIT_S)
                    server._answered = True
                chunks = server.respond(req)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True
                if title:
                    server.title_sent.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    # --- scripting -------------------------------------------------------------------
    def _usage(self) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        prompt, cached, completion, reasoning = 1000 + 10 * n, 100 + n, 40 + n, 5 + n
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }

    @staticmethod
    def is_title(req: dict[str, Any]) -> bool:
        """A title-generation request (no tools, a system prompt asking for a title)."""
        messages = req.get("messages") or []
        system = " ".join(_text_of(m) for m in messages if m.get("role") == "system").lower()
        return "title" in system and ("generate" in system or "thread" in system) and not req.get("tools")

    def respond(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        self.requests.append(req)
        messages = req.get("messages") or []
        model = req.get("model", "fake-model")
        if self.is_title(req):
            return self._text_chunks(model, TITLE, self._usage(), record=None)
        last = messages[-1] if messages else {}
        usage = self._usage()
        if last.get("role") == "tool":
            return self._text_chunks(model, self.reply_text, usage, record="text")
        users = [m for m in messages if m.get("role") == "user"]
        prompt = _text_of(users[-1]) if users else ""
        m = DIRECTIVE.search(prompt)
        if m and req.get("tools"):
            kind, arg = m.group(1), m.group(2).strip()
            if kind == "bash":
                args = {"command": arg, "description": "Run a command"}
            elif kind == "read":
                args = {"filePath": arg}
            else:
                args = {"description": "Sub task", "prompt": arg, "subagent_type": "general"}
            return self._tool_chunks(model, kind, args, usage)
        return self._text_chunks(model, self.reply_text, usage, record="text")

    def _base(self, model: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self._counter}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def _text_chunks(self, model: str, text: str, usage: dict[str, Any], record: str | None) -> list[dict[str, Any]]:
        if record:
            self.responses.append({"kind": record, "usage": usage})
        b = self._base(model)
        return [
            {**b, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {**b, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
            {**b, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**b, "choices": [], "usage": usage},
        ]

    def _tool_chunks(self, model: str, name: str, args: dict[str, Any], usage: dict[str, Any]) -> list[dict[str, Any]]:
        self.responses.append({"kind": f"tool:{name}", "usage": usage})
        b = self._base(model)
        call = {
            "index": 0,
            "id": f"call_{self._counter}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return [
            {
                **b,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": None, "tool_calls": [call]},
                        "finish_reason": None,
                    }
                ],
            },
            {**b, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {**b, "choices": [], "usage": usage},
        ]


if __name__ == "__main__":  # manual use: python -m testing.openai_server
    with FakeOpenAI() as s:
        print(s.base_url, flush=True)
        while True:
            time.sleep(3600)
