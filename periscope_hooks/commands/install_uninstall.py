"""`periscope install-hooks` / `uninstall-hooks`: the git hook shims.

The installed script carries a marker that identifies it (and its older
versions); a user's existing hook is moved aside to `<name>.periscope-legacy`
and still run; uninstall puts it back with an atomic replace, byte for byte.
The shim has the installing interpreter baked in and falls back to
`periscope` on PATH.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from periscope_hooks import git, output, paths
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_dirs

HOOK_NAMES = ("post-commit", "post-merge", "post-rewrite")
MARKER = "# periscope-hooks-shim"
PRIOR_MARKERS: list[str] = []  # markers of older shim versions, still recognised as ours
LEGACY_SUFFIX = ".periscope-legacy"
# Directories install-hooks had to create for the hooks (a core.hooksPath that did not exist),
# recorded in the state dir as {hooks dir: [created dirs, outermost first]}.
CREATED_DIRS_RECORD = "hooks-dirs-created.json"


def shim_text(hook_name: str, python: str) -> str:
    template = (Path(__file__).resolve().parent.parent / "resources" / "hook-shim.sh").read_text()
    return template.replace("__HOOK_NAME__", shlex.quote(hook_name)).replace("__INSTALL_PYTHON__", shlex.quote(python))


def is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return any(m in head for m in (MARKER, *PRIOR_MARKERS))


def hooks_dir(dirs: git.RepoDirs, warn: bool = True) -> Path:
    """The directory git runs hooks from, honouring core.hooksPath (made absolute)."""
    configured = git.run_git(
        ["config", "--get", "core.hooksPath"], cwd=dirs.worktree or dirs.git_dir, check=False
    ).strip()
    if configured:
        configured = os.path.expanduser(configured)
        if not os.path.isabs(configured):
            # Git resolves a relative hooksPath against the worktree running the hook,
            # so it differs per linked worktree; install where this worktree looks.
            configured = os.path.join(dirs.worktree or dirs.git_dir, configured)
            if warn:
                output.warn(
                    f"core.hooksPath is relative ({configured}); linked worktrees will not find these hooks."
                    " hint: set an absolute core.hooksPath"
                )
        return Path(configured)
    return Path(dirs.common_dir) / "hooks"


def _detect_manager(dirs: git.RepoDirs, hdir: Path) -> UserError | None:
    from periscope_hooks.hook_managers import detect

    configured = git.run_git(
        ["config", "--get", "core.hooksPath"], cwd=dirs.worktree or dirs.git_dir, check=False
    ).strip()
    return detect(dirs.worktree, str(hdir), configured or None)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.periscope-tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


HOT_PATH_MODULES = ("__init__", "hook", "git", "spool")


def precompile_hook_modules() -> None:
    """Write the hook's bytecode now: where PYTHONDONTWRITEBYTECODE is set (or the
    package is an editable checkout), every commit would otherwise compile these
    modules from source, which costs more than running them."""
    import py_compile

    package_dir = Path(__file__).resolve().parent.parent
    for name in HOT_PATH_MODULES:
        try:
            py_compile.compile(str(package_dir / f"{name}.py"), doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass  # a read-only install: slower hooks, nothing worse


def _created_dirs_record(dirs: git.RepoDirs) -> Path:
    return paths.state_dir_for_common_dir(dirs.common_dir) / CREATED_DIRS_RECORD


def _read_created_dirs(record: Path) -> dict[str, Any]:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _make_hooks_dir(dirs: git.RepoDirs, hdir: Path) -> None:
    """Create the hooks directory, remembering which directories did not exist before.

    Uninstall restores exactly what was there, so it has to know what install created.  The
    choice: record it at install (in the state dir) rather than remove any hooks directory that
    uninstall leaves empty, which would also take away an empty directory the user made and
    pointed core.hooksPath at.  The default $GIT_DIR/hooks is never recorded (git's own)."""
    created: list[str] = []
    d = hdir.absolute()
    while not os.path.lexists(d) and d != d.parent:
        created.insert(0, str(d))
        d = d.parent
    hdir.mkdir(parents=True, exist_ok=True)
    if not created or hdir.absolute() == (Path(dirs.common_dir) / "hooks").absolute():
        return
    record = _created_dirs_record(dirs)
    data = _read_created_dirs(record)
    data[str(hdir.absolute())] = created
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(data, indent=2))


def _remove_created_hooks_dir(dirs: git.RepoDirs, hdir: Path) -> None:
    """After the shims are gone: remove the directories install created for them, if now empty."""
    record = _created_dirs_record(dirs)
    data = _read_created_dirs(record)
    created = data.pop(str(hdir.absolute()), None)
    if created is None:
        return
    for d in reversed(created):
        try:
            os.rmdir(d)  # only an empty directory: anything added since keeps it
        except OSError:
            break
    try:
        if data:
            record.write_text(json.dumps(data, indent=2))
        else:
            record.unlink()
            record.parent.rmdir()  # the state dir, if the record was all it held
    except OSError:
        pass


def install_hooks(repo: str | None) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    hdir = hooks_dir(dirs)
    refusal = _detect_manager(dirs, hdir)
    if refusal:
        raise refusal
    # Check everything before changing anything, so a refusal leaves no half-install.
    for name in HOOK_NAMES:
        path, legacy = hdir / name, hdir / (name + LEGACY_SUFFIX)
        if (path.exists() or path.is_symlink()) and not is_ours(path) and (legacy.exists() or legacy.is_symlink()):
            raise UserError(
                f"{path} is not ours and {legacy.name} already exists",
                "move one of them away, then run periscope install-hooks again",
            )
    _make_hooks_dir(dirs, hdir)
    for name in HOOK_NAMES:
        path, legacy = hdir / name, hdir / (name + LEGACY_SUFFIX)
        if (path.exists() or path.is_symlink()) and not is_ours(path):
            os.replace(path, legacy)
            output.info(f"kept your existing {name} hook as {legacy.name}; it still runs")
        _write_atomic(path, shim_text(name, sys.executable))
    precompile_hook_modules()
    output.out(f"periscope hooks installed in {hdir}")
    return 0


def uninstall_hooks(repo: str | None) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    hdir = hooks_dir(dirs)
    removed = 0
    for name in HOOK_NAMES:
        path, legacy = hdir / name, hdir / (name + LEGACY_SUFFIX)
        if not is_ours(path):
            continue
        if legacy.exists() or legacy.is_symlink():
            os.replace(legacy, path)
        else:
            path.unlink()
        removed += 1
    if removed:
        _remove_created_hooks_dir(dirs, hdir)
    output.out(f"periscope hooks removed from {hdir}" if removed else f"no periscope hooks in {hdir}")
    return 0


PRE_COMMIT_LEGACY_SUFFIX = ".legacy"  # where `pre-commit install` moves a hook it replaces, and still runs it


def installed_hooks(
    dirs: git.RepoDirs, hdir: Path | None = None, framework: dict[str, Any] | None = None
) -> dict[str, str]:
    """name -> 'installed' | 'pre-commit' | 'pre-commit, not listed' | 'missing' | 'other hook'
    ('pre-commit': pre-commit's script runs this hook type and its config lists our hook id)."""
    from periscope_hooks.hook_managers import pre_commit_hooks

    hdir = hdir or hooks_dir(dirs, warn=False)
    if framework is None:
        framework = pre_commit_hooks(dirs.worktree, str(hdir), HOOK_NAMES)
    state = {}
    for name in HOOK_NAMES:
        path = hdir / name
        pre_commits = bool(framework and framework["scripts"][name])
        legacy = hdir / (name + PRE_COMMIT_LEGACY_SUFFIX)
        if is_ours(path) or (pre_commits and is_ours(legacy) and os.access(legacy, os.X_OK)):
            state[name] = "installed"
        elif pre_commits and framework is not None:
            state[name] = "pre-commit" if framework["listed"][name] else "pre-commit, not listed"
        else:
            state[name] = "other hook" if path.exists() else "missing"
    return state


def hooks_status(dirs: git.RepoDirs) -> str:
    """The `git hooks` line of `periscope status`. Where another tool manages the hooks,
    install-hooks refuses, so the advice is that tool's, never `periscope install-hooks`."""
    from periscope_hooks.hook_managers import hook_id, pre_commit_hooks

    hdir = hooks_dir(dirs, warn=False)
    framework = pre_commit_hooks(dirs.worktree, str(hdir), HOOK_NAMES)
    state = installed_hooks(dirs, hdir, framework)
    if all(s == "installed" for s in state.values()):
        return "installed"
    if framework and all(s in ("installed", "pre-commit") for s in state.values()):
        return f"installed through the pre-commit framework ({framework['config']})"
    missing = [n for n, s in state.items() if s not in ("installed", "pre-commit")]
    if framework:
        steps = []
        unlisted = [n for n in missing if not framework["listed"][n]]
        if unlisted:
            steps.append(f"add the hook ids {', '.join(hook_id(n) for n in unlisted)} to {framework['config']}")
        no_script = [n for n in missing if not framework["scripts"][n]]
        if no_script:
            steps.append("run pre-commit install " + " ".join(f"--hook-type {n}" for n in no_script))
        advice = "pre-commit manages this repository's hooks: " + ", then ".join(steps)
    else:
        refusal = _detect_manager(dirs, hdir)
        advice = refusal.hint if refusal and refusal.hint else "run periscope install-hooks"
    return f"not installed: {', '.join(missing)} ({advice})"
