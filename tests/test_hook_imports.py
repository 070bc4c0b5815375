"""The commit hook's import graph stays tiny: no network, database or git-library modules."""
from __future__ import annotations

import json
import subprocess
import sys

from testing.util import init_repo, spool_path

FORBIDDEN = {"httpx", "msal", "git", "sqlite3", "_sqlite3", "argparse", "subprocess", "jsonschema", "json", "re",
             "typing", "dataclasses", "pathlib", "signal"}


def test_hook_imports_nothing_heavy(tmp_path):
    repo = init_repo(tmp_path / "r")
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=repo, check=True)
    code = ("import sys; before = set(sys.modules); from periscope_hooks.hook import run; rc = run(['post-commit']);"
            "print(rc); print(' '.join(sorted(set(sys.modules) - before)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                          env={**__import__("os").environ, "PERISCOPE_BACKGROUND": "0"})
    rc, loaded = proc.stdout.splitlines()
    assert rc == "0"
    loaded_set = set(loaded.split())
    assert not (loaded_set & FORBIDDEN), sorted(loaded_set & FORBIDDEN)
    rec = json.loads(spool_path(repo).read_text().splitlines()[-1])
    assert rec["kind"] == "commit" and rec["hook"] == "post-commit"
