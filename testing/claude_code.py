"""Run the real Claude Code binary offline against testing.anthropic_server.FakeAnthropic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.332"
MODEL = "claude-sonnet-4-5-20250929"


def find_claude_code() -> str | None:
    explicit = os.environ.get("PERISCOPE_TEST_CLAUDE_CODE")
    if explicit and os.path.exists(explicit):
        return explicit
    cache = Path(os.environ.get("PERISCOPE_REAL_HOME", os.path.expanduser("~"))) / ".cache" / "periscope-test"
    for platform in ("linux-x64", "linux-arm64"):
        candidate = (
            cache / f"claude-code-{CLAUDE_CODE_VERSION}" / "node_modules" / "@anthropic-ai" / f"claude-code-{platform}"
        ) / "claude"
        if candidate.exists():
            return str(candidate)
    return shutil.which("claude")


def claude_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Offline, in a temp home: no updater, telemetry or error reports, its temp files in the home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLAUDE", "ANTHROPIC", "PERISCOPE_SESSION", "PERISCOPE_MESSAGE"))
    }
    tmp = home / "claude-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "dummy",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_TMPDIR": str(tmp),
        }
    )
    env.update(extra or {})
    return env


def allow_tools(home: Path) -> None:
    """As root `--dangerously-skip-permissions` is refused: allow the tools in the user settings."""
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(settings.read_text()) if settings.exists() else {}
    data.setdefault("permissions", {})["allow"] = ["Bash", "Read", "Agent", "Task"]
    settings.write_text(json.dumps(data, indent=2))


def run_claude(
    binary: str, cwd: Path, prompt: str, env: dict[str, str], *extra_args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-p", prompt, "--model", MODEL, *extra_args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
