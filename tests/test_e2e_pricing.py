"""List prices against the real OpenCode binary (testing/opencode.py) and a local model server.

Two providers serve the same model name, `claude-sonnet-4`, from the fake server: one configured with
Anthropic's list price for it (so OpenCode's own cost is the list price), one configured at 0 (what
OpenCode reports for GitHub Copilot or a free tier).  Neither provider id is in the price table, so
the list price comes from the model's maker, found by the model name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testing.openai_server import FakeOpenAI
from testing.opencode import find_opencode, opencode_env, provider_config, run_opencode, write_config
from testing.util import cost_at, git, init_repo, periscope

BINARY = find_opencode()
pytestmark = pytest.mark.skipif(
    BINARY is None and not os.environ.get("CI"), reason="OpenCode binary not installed (run scripts/test.sh)"
)
pytest.importorskip("genai_prices")
# Anthropic's published claude-sonnet-4 prices, dollars per million tokens (the table's too).
SONNET_4 = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}


def model_entry(cost):
    return {"name": "Sonnet", "cost": cost, "tool_call": True, "limit": {"context": 100000, "output": 4000}}


def test_list_price_matches_a_configured_price_and_prices_a_zero_cost_provider(tmp_path):
    assert BINARY, "PERISCOPE_TEST_OPENCODE is not set and no OpenCode binary was found"
    with FakeOpenAI(reply_text="Priced reply.") as server:
        project = init_repo(tmp_path / "project")
        providers = provider_config(server.base_url)["provider"]
        base = providers["fakeai"]
        providers["listed"] = {**base, "name": "Listed", "models": {"claude-sonnet-4": model_entry(SONNET_4)}}
        providers["plan"] = {
            **base,
            "name": "Plan",
            "models": {"claude-sonnet-4": model_entry({"input": 0, "output": 0})},
        }
        write_config(project, server.base_url, {"provider": providers})
        git(project, "add", "opencode.json")
        git(project, "commit", "-q", "-m", "config")
        periscope("install-hooks", cwd=project)
        periscope("install-opencode", cwd=project)
        env = opencode_env(Path(os.environ["HOME"]), {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        for model in ("listed/claude-sonnet-4", "plan/claude-sonnet-4"):
            proc = run_opencode(BINARY, project, "Say hello", env, timeout=300, model=model)
            assert proc.returncode == 0, proc.stderr[-3000:]
        (project / "f.txt").write_text("x\n")
        git(project, "add", "f.txt")
        git(project, "commit", "-q", "-m", "human commit")
    periscope("flush", cwd=project)
    out = periscope("export", "--type", "message", cwd=project).stdout
    msgs = {m["provider"]: m for m in map(json.loads, out.splitlines())}
    assert set(msgs) == {"listed", "plan"}
    listed, plan = msgs["listed"], msgs["plan"]
    assert listed["tokens"]["cache_read"] and listed["tokens"]["reasoning"]  # both conventions exercised
    # Same price configured as the table's: our list price is OpenCode's cost, to the micro-dollar.
    assert listed["cost"] > 0 and listed["cost_source"] == "reported"
    assert listed["list_cost"] == pytest.approx(listed["cost"], abs=1e-6)
    assert listed["list_cost"] == pytest.approx(cost_at(SONNET_4, listed["tokens"]), abs=1e-6)
    assert listed["price_snapshot"].startswith("genai-prices ")
    # Configured at 0: a subscription, with the maker's list price for the tokens used.
    assert plan["cost"] == 0 and plan["cost_source"] == "subscription"
    assert plan["list_cost"] == pytest.approx(cost_at(SONNET_4, plan["tokens"]), abs=1e-6) and plan["list_cost"] > 0
    (commit,) = [
        json.loads(x) for x in periscope("export", "--type", "commit", cwd=project).stdout.splitlines() if x.strip()
    ]
    usage = commit["usage"]
    assert usage["cost_sources"] == {"reported": 1, "estimated": 0, "subscription": 1, "unknown": 0}
    assert usage["list_cost"] == pytest.approx(listed["list_cost"] + plan["list_cost"], abs=1e-9)
    rows = json.loads(periscope("report", "--by", "model", "--format", "json", cwd=project).stdout)
    assert {(r["provider"], r["cost_sources"]["subscription"]) for r in rows} == {("listed", 0), ("plan", 1)}
