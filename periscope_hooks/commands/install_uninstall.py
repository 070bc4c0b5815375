"""`periscope install-hooks` / `uninstall-hooks`: the git hook shims.

The installed script carries a marker that identifies it (and its older
versions); a user's existing hook is moved aside to `<name>.periscope-legacy`
and still run; uninstall puts it back with an atomic replace, byte for byte.
The shim has the installing interpreter baked in and falls back to
`periscope` on PATH.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from periscope_hooks import git, output
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_dirs

HOOK_NAMES = ("post-commit", "post-merge", "post-rewrite")
MARKER = "# periscope-hooks-shim"
PRIOR_MARKERS: List[str] = []  # markers of older shim versions, still recognised as ours
LEGACY_SUFFIX = ".periscope-legacy"


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


def hooks_dir(dirs: git.RepoDirs) -> Path:
    """The directory git runs hooks from, honouring core.hooksPath (made absolute)."""
    configured = git.run_git(["config", "--get", "core.hooksPath"], cwd=dirs.worktree or dirs.git_dir, check=False).strip()
    if configured:
        configured = os.path.expanduser(configured)
        if not os.path.isabs(configured):
            # Git resolves a relative hooksPath against the worktree running the hook,
            # so it differs per linked worktree; install where this worktree looks.
            configured = os.path.join(dirs.worktree or dirs.git_dir, configured)
            output.warn(f"core.hooksPath is relative ({configured}); linked worktrees will not find these hooks."
                        " hint: set an absolute core.hooksPath")
        return Path(configured)
    return Path(dirs.common_dir) / "hooks"


def _detect_manager(dirs: git.RepoDirs, hdir: Path) -> Optional[str]:
    try:
        from periscope_hooks.hook_managers import detect
    except ImportError:
        return None
    configured = git.run_git(["config", "--get", "core.hooksPath"], cwd=dirs.worktree or dirs.git_dir, check=False).strip()
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


def install_hooks(repo: Optional[str]) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    hdir = hooks_dir(dirs)
    refusal = _detect_manager(dirs, hdir)
    if refusal:
        raise UserError(refusal.split(" hint: ")[0], refusal.split(" hint: ")[1] if " hint: " in refusal else None)
    hdir.mkdir(parents=True, exist_ok=True)
    # Check everything before changing anything, so a refusal leaves no half-install.
    for name in HOOK_NAMES:
        path, legacy = hdir / name, hdir / (name + LEGACY_SUFFIX)
        if (path.exists() or path.is_symlink()) and not is_ours(path) and (legacy.exists() or legacy.is_symlink()):
            raise UserError(f"{path} is not ours and {legacy.name} already exists",
                            f"move one of them away, then run periscope install-hooks again")
    for name in HOOK_NAMES:
        path, legacy = hdir / name, hdir / (name + LEGACY_SUFFIX)
        if (path.exists() or path.is_symlink()) and not is_ours(path):
            os.replace(path, legacy)
            output.info(f"kept your existing {name} hook as {legacy.name}; it still runs")
        _write_atomic(path, shim_text(name, sys.executable))
    precompile_hook_modules()
    output.out(f"periscope hooks installed in {hdir}")
    return 0


def uninstall_hooks(repo: Optional[str]) -> int:
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
    output.out(f"periscope hooks removed from {hdir}" if removed else f"no periscope hooks in {hdir}")
    return 0


def installed_hooks(dirs: git.RepoDirs) -> dict:
    """name -> 'installed' | 'missing' | 'other hook' (for `periscope status`)."""
    hdir = hooks_dir(dirs)
    state = {}
    for name in HOOK_NAMES:
        path = hdir / name
        state[name] = "installed" if is_ours(path) else ("other hook" if path.exists() else "missing")
    return state
