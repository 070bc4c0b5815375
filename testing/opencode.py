"""Run the real OpenCode binary offline against testing.openai_server.FakeOpenAI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from testing.util import xdg_env

OPENCODE_VERSION = "1.18.33"
# Dollars per million tokens, so OpenCode computes a cost the tests can check.
COST = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}


def find_opencode() -> str | None:
    explicit = os.environ.get("PERISCOPE_TEST_OPENCODE")
    if explicit and os.path.exists(explicit):
        return explicit
    cache = Path(os.environ.get("PERISCOPE_REAL_HOME", os.path.expanduser("~"))) / ".cache" / "periscope-test"
    for candidate in (
        cache / f"opencode-{OPENCODE_VERSION}" / "node_modules" / "opencode-linux-x64" / "bin" / "opencode",
        cache / f"opencode-{OPENCODE_VERSION}" / "node_modules" / "opencode-linux-arm64" / "bin" / "opencode",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("opencode")


def provider_config(base_url: str) -> dict[str, Any]:
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "fakeai": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake AI",
                "options": {"baseURL": base_url, "apiKey": "test-key"},
                "models": {
                    "fake-model": {
                        "name": "Fake Model",
                        "cost": COST,
                        "tool_call": True,
                        "limit": {"context": 100000, "output": 4000},
                    }
                },
            }
        },
        "model": "fakeai/fake-model",
        "small_model": "fakeai/fake-model",
        "permission": {"bash": "allow", "edit": "allow", "read": "allow", "external_directory": "allow"},
        "autoupdate": False,
        "share": "disabled",
    }


def opencode_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE", "PERISCOPE_SESSION", "PERISCOPE_MESSAGE"))
    }
    env.update(
        {
            **xdg_env(home),
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        }
    )
    env.update(extra or {})
    return env


def run_opencode(
    binary: str, cwd: Path, prompt: str, env: dict[str, str], timeout: float = 120, model: str = "fakeai/fake-model"
) -> subprocess.CompletedProcess:
    env = {**env, "PWD": str(cwd)}  # OpenCode takes its directory from PWD, not the process cwd
    return subprocess.run(
        [
            binary,
            "run",
            "--print-logs",
            "--log-level",
            os.environ.get("PERISCOPE_TEST_OPENCODE_LOG", "WARN"),
            "-m",
            model,
            prompt,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def write_config(directory: Path, base_url: str, extra: dict[str, Any] | None = None) -> Path:
    cfg = provider_config(base_url)
    cfg.update(extra or {})
    path = directory / "opencode.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path
