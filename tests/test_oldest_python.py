"""The main job on the oldest Python the project supports (pyproject's requires-python: 3.9).

The suite runs on 3.11 and mypy checks for 3.10 (the oldest it knows), so a call that needs a newer
Python (`zip(strict=...)`, `datetime.fromisoformat` of a `Z` time, a 3.10 `dataclass` option) would
otherwise ship unnoticed to users on 3.9.  Here the wheel, built from this tree, is installed into a
3.9 virtual environment, and that interpreter does the README's main job in a real repository:
hooks installed (and run by git under 3.9), messages, a commit, an amend, a merge, a flush into the
local store, the report, export, the dashboard and status.  List prices need genai-prices, which
needs 3.11: on 3.9 they are unknown, as docs/cost.md says.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from testing.otlp import need
from testing.util import (
    REPO_ROOT,
    append_spool,
    build_wheel,
    commit,
    git,
    init_repo,
    message_record,
    session_record,
    state_dir,
)

OLDEST = "3.9"
# Resolved at import, before the isolated_home fixture changes HOME: pyenv's build (these machines;
# not its shim, which reads the version to run from the HOME the tests replace) or one on PATH.
_CANDIDATES = [
    *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{OLDEST}.*/bin/python{OLDEST}"))),
    shutil.which(f"python{OLDEST}"),
]
OLDEST_PYTHON = next((p for p in _CANDIDATES if p and "/shims/" not in p and os.access(p, os.X_OK)), None)
CACHE = Path(os.path.expanduser("~/.cache/periscope-test"))


def _venv_with_dependencies(wheel: Path) -> Path:
    """A 3.9 venv holding the project's dependencies, made once per pyproject.toml (cached)."""
    assert OLDEST_PYTHON
    key = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = CACHE / f"python{OLDEST}-venv-{key}"
    if (venv / "ready").exists():
        return venv
    building = venv.with_name(venv.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([str(OLDEST_PYTHON), "-m", "venv", str(building)], check=True, capture_output=True)
    # The runtime dependencies alone, as pip resolves the wheel's markers for 3.9 (tomli in,
    # genai-prices out): the wheel installed with them, then taken out again.  Run from inside the
    # venv: from this tree's root pip would take its .egg-info for the installed package.
    for args in (
        ["install", "-q", "--disable-pip-version-check", str(wheel)],
        ["uninstall", "-q", "-y", "periscope-hooks"],
    ):
        subprocess.run(
            [str(building / "bin/python"), "-m", "pip", *args],
            check=True,
            capture_output=True,
            cwd=building,
            env=_env(),
        )
    (building / "ready").write_text("")
    try:
        building.rename(venv)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return venv


def _install_this_tree(tmp_path: Path) -> Path:
    """A venv copy with the wheel of this tree installed: the interpreter a 3.9 user runs."""
    wheel = build_wheel(tmp_path)
    deps = _venv_with_dependencies(wheel)
    venv = tmp_path / "venv"
    subprocess.run([str(OLDEST_PYTHON), "-m", "venv", str(venv)], check=True)
    # The cached dependencies are reached through a .pth (the cache is never written to here).
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "periscope-test-deps.pth").write_text(str(next((deps / "lib").glob("python*/site-packages"))) + "\n")
    subprocess.run(
        [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,  # as above: not this tree's root
        env=_env(),  # nor on PYTHONPATH
    )
    return venv / "bin/python"


def _env() -> dict[str, str]:
    # Without the fixture's PYTHONPATH (this tree): the installed wheel is what runs.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _periscope(python: Path, *args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [str(python), "-m", "periscope_hooks", *args], cwd=cwd, capture_output=True, text=True, env=_env()
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)
    return proc.stdout


def test_the_main_job_runs_on_the_oldest_supported_python(tmp_path):
    need(OLDEST_PYTHON is not None, f"Python {OLDEST} (pyenv's build or python{OLDEST} on PATH)")
    python = _install_this_tree(tmp_path)
    version = subprocess.run(
        [str(python), "-c", "import sys, periscope_hooks; print(sys.version_info[:2], periscope_hooks.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
        cwd=tmp_path,  # not this tree's root, which `-c` would put first on sys.path
    ).stdout
    assert version.startswith("(3, 9)") and str(tmp_path / "venv") in version, version

    # Every module imports on 3.9 (the otlp encoder's dependency is optional and imported lazily).
    imports = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib, pkgutil, periscope_hooks\n"
            "for m in pkgutil.walk_packages(periscope_hooks.__path__, 'periscope_hooks.'):\n"
            "    if not m.name.endswith('__main__'): importlib.import_module(m.name)",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    assert imports.returncode == 0, imports.stderr

    repo = init_repo(tmp_path / "ünïcode repo")
    _periscope(python, "install-hooks", cwd=repo)
    assert str(python) in (state_dir(repo).parent / "hooks" / "post-rewrite").read_text()
    env = _env()
    commit(repo, "base", env=env)
    append_spool(
        repo, session_record("ses_old", "On 3.9"), *[message_record(repo, session_id="ses_old") for _ in range(3)]
    )
    commit(repo, "first", env=env)
    append_spool(repo, message_record(repo, session_id="ses_old", tokens=(100, 10, 0, 0, 0), cost=0.5))
    commit(repo, "amended", "--amend", env=env)  # post-rewrite: the Python hook, under 3.9
    git(repo, "checkout", "-q", "-b", "side", env=env)
    commit(repo, "side work", filename="side.txt", env=env)
    git(repo, "checkout", "-q", "main", env=env)
    git(repo, "merge", "-q", "--no-ff", "-m", "merge side", "side", env=env)  # post-merge
    assert not (state_dir(repo) / "hook.log").exists() or "rror" not in (state_dir(repo) / "hook.log").read_text()

    _periscope(python, "flush", cwd=repo)
    rows = json.loads(_periscope(python, "report", "--format", "json", cwd=repo))
    amended = git(repo, "rev-parse", "HEAD^1")
    by_sha = {r["sha"]: r for r in rows}
    assert by_sha[amended]["messages"] == 4, rows  # the three before the amend and the one after
    assert by_sha[amended]["cost"] == round(3 * 0.0123 + 0.5, 6)
    assert by_sha[amended]["list_cost"] is None  # no price table below 3.11 (docs/cost.md)
    commits = [json.loads(line) for line in _periscope(python, "export", "--type", "commit", cwd=repo).splitlines()]
    # The first commit's event (3 messages) and the amend's (the one after): each message once.
    assert sorted(c["usage"]["messages"] for c in commits) == [0, 0, 1, 3], commits
    assert amended in {c["commit"]["sha"] for c in commits}
    assert json.loads(_periscope(python, "report", "--by", "session", "--format", "json", cwd=repo))[0]["messages"] == 4
    _periscope(python, "dashboard", "--out", str(tmp_path / "dash.html"), cwd=repo)
    assert "ses_old" in (tmp_path / "dash.html").read_text() or "On 3.9" in (tmp_path / "dash.html").read_text()
    status = _periscope(python, "status", cwd=repo)
    assert "git hooks           installed\n" in status and "created 4 = delivered 4" in status, status
    assert "last problem        none" in status, status
    _periscope(python, "uninstall-hooks", cwd=repo)
    assert not (state_dir(repo).parent / "hooks" / "post-rewrite").exists()
