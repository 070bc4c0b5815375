"""`periscope install-hooks` / `uninstall-hooks`: the git hook shims.

The installed script carries a marker that identifies it (and its older
versions); a user's existing hook is kept under its own name in `periscope-kept/`
beside the shim and still run (a dispatcher that branches on `basename "$0"` sees
its name); uninstall puts it back with an atomic replace, byte for byte.  The shim
has the installing interpreter baked in and falls back to `periscope` on PATH.

Never written: a hooks folder inside the work tree (a team's committed `.githooks/`:
the shim holds this machine's paths and would ship to everyone), nor a hooks folder
set in the user's global or system git config without `--global-hooks-path` (every
repository of the user would start recording).  Both refuse with the lines to add.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from periscope_hooks import git, output, paths, repo_registry
from periscope_hooks.errors import UserError
from periscope_hooks.repo import inside, resolve_dirs

HOOK_NAMES = ("post-commit", "post-merge", "post-rewrite", "post-checkout")
MARKER = "# periscope-hooks-shim"
PRIOR_MARKERS: list[str] = []  # markers of older shim versions, still recognised as ours
LEGACY_SUFFIX = ".periscope-legacy"  # where shims before the kept-hooks folder kept a user's hook
KEPT_DIR = "periscope-kept"  # <hooks dir>/periscope-kept/<name>: a user's hook, under its own name
# Directories install-hooks had to create for the hooks (a core.hooksPath that did not exist),
# recorded in the state dir as {hooks dir: [created dirs, outermost first]}.
CREATED_DIRS_RECORD = "hooks-dirs-created.json"


def _shim(hook_name_sh: str, python_sh: str) -> str:
    from periscope_hooks.hook import MAIN_CODE, NO_CWD_IMPORTS

    template = (Path(__file__).resolve().parent.parent / "resources" / "hook-shim.sh").read_text()
    assert "'" not in NO_CWD_IMPORTS  # written inside the shim's single-quoted ps_py_run
    return (
        template.replace("__HOOK_NAME__", hook_name_sh)
        .replace("__INSTALL_PYTHON__", python_sh)
        .replace("__MAIN_CODE__", shlex.quote(MAIN_CODE))
        .replace("__NO_CWD_IMPORTS__", NO_CWD_IMPORTS)
    )


def shim_text(hook_name: str, python: str) -> str:
    return _shim(shlex.quote(hook_name), shlex.quote(python))


def shim_is_current(path: Path, hook_name: str) -> bool:
    """Is the shim at `path` what this version installs (for the interpreter it names)?  An older
    one still works; this version's hot-path work (a record written in sh, say) needs the new one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    python = next(
        (line[len("INSTALL_PYTHON=") :] for line in text.splitlines() if line.startswith("INSTALL_PYTHON=")), None
    )
    return python is not None and text == _shim(shlex.quote(hook_name), python)


def is_ours(path: Path) -> bool:
    from periscope_hooks.hook_managers import read_head

    head = read_head(path, 4096)
    return any(m in head for m in (MARKER, *PRIOR_MARKERS))


def hooks_path_entries(dirs: git.RepoDirs) -> list[tuple[str, str]]:
    """(scope, value) of every core.hooksPath setting, in git's order: the last is in effect."""
    # -z, and no strip: a path may hold a newline or end in a space, and git takes it as it is.
    out = git.run_git(
        ["config", "-z", "--show-scope", "--get-all", "core.hooksPath"], cwd=dirs.worktree or dirs.git_dir, check=False
    )
    fields = out.split("\0")
    return [(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def _unusable_hooks_path(dirs: git.RepoDirs) -> UserError | None:
    """A core.hooksPath in effect that install cannot honour: empty (git then looks for hooks in
    the top folder of the work tree) or not UTF-8 (read back, it names another folder)."""
    entries = hooks_path_entries(dirs)
    if not entries:
        return None
    scope, value = entries[-1]
    if value == "":
        return UserError(
            f"core.hooksPath is set but empty (in your {scope} git config): git then runs hooks from the"
            " top folder of the work tree",
            "unset it (git config --unset core.hooksPath) or set it to a folder, then run periscope install-hooks",
        )
    if "\ufffd" in value:
        return UserError(
            f"core.hooksPath (in your {scope} git config) is not UTF-8",
            "set it to a folder whose path is UTF-8, then run periscope install-hooks",
        )
    return None


def hooks_path_config(dirs: git.RepoDirs) -> tuple[str, str]:
    """(core.hooksPath as configured or "", the scope that sets it: local, worktree, global, system,
    command or "")."""
    scope, value = (hooks_path_entries(dirs) or [("", "")])[-1]
    return value, (scope if value else "")


def kept_hook(hdir: Path, name: str) -> Path:
    return hdir / KEPT_DIR / name


def hooks_dir(dirs: git.RepoDirs, warn: bool = True) -> Path:
    """The directory git runs hooks from, honouring core.hooksPath (made absolute)."""
    configured = hooks_path_config(dirs)[0]
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

    configured = hooks_path_config(dirs)[0]
    return detect(dirs.worktree, str(hdir), configured or None)


def in_work_tree(dirs: git.RepoDirs, hdir: Path) -> bool:
    """Whether the hooks folder is part of the work tree (a team's committed `.githooks/`), not
    of the repository's own git dir (a hooksPath under .git is this clone's alone)."""
    if not dirs.worktree or not inside(hdir, dirs.worktree):
        return False
    return not (inside(hdir, dirs.git_dir) or inside(hdir, dirs.common_dir))


def tracking_work_tree(hdir: Path) -> str | None:
    """The work tree of the repository that tracks files in the hooks folder, if one does: another
    repository's (a dotfiles checkout's `githooks/`), or this one's main work tree seen from a
    linked worktree.  Never inside a git dir (git answers nothing there)."""
    if not hdir.is_dir():
        return None
    # Inside a git dir (a submodule's, with core.worktree) git still names a work tree: not this.
    if git.run_git(["rev-parse", "--is-inside-git-dir"], cwd=str(hdir), check=False).strip() != "false":
        return None
    top = git.run_git(["rev-parse", "--show-toplevel"], cwd=str(hdir), check=False).strip()
    if not top or not git.run_git(["ls-files", "-z", "--", "."], cwd=str(hdir), check=False):
        return None
    return top


def hook_lines_hint(where: str) -> str:
    """The lines a team adds to hooks it manages itself (husky, a committed hooks folder)."""
    lines = "; ".join(f"'periscope hook {n} \"$@\"' to {where}/{n}" for n in HOOK_NAMES)
    return f"add {lines} (each file executable); periscope status then shows them as installed"


def _shared_scope(dirs: git.RepoDirs, hdir: Path) -> str:
    """Where else the hooks folder is chosen: the scope of the core.hooksPath in effect when it is
    global, system or command (`git -c`, GIT_CONFIG_* variables), else the global, system or command
    setting naming the same folder (a local copy of the global value does not make it this
    repository's own), else 'link' when the default hooks folder links out of the repository
    (other repositories may link to the same folder), else ''."""
    shared = ("global", "system", "command")
    entries = hooks_path_entries(dirs)
    if entries and entries[-1][1] and entries[-1][0] in shared:
        return entries[-1][0]
    for scope, value in entries:
        path = os.path.expanduser(value)
        if scope in shared and value and os.path.isabs(path) and os.path.realpath(path) == os.path.realpath(hdir):
            return scope
    default = Path(dirs.common_dir) / "hooks"
    if hdir.absolute() == default.absolute() and default.is_symlink() and not inside(default, dirs.common_dir):
        return "link"
    return ""


def _shared_hooks_refusal(dirs: git.RepoDirs, hdir: Path, global_hooks_path: bool) -> UserError | None:
    """A hooks folder git tracks or every repository shares is not ours to write into."""
    scope = _shared_scope(dirs, hdir)
    if in_work_tree(dirs, hdir):
        shown = os.path.relpath(hdir, dirs.worktree)
        return UserError(
            f"core.hooksPath ({shown}) is inside the work tree, so its hooks are shared through git;"
            " periscope will not write there",
            hook_lines_hint(shown),
        )
    tracking = tracking_work_tree(hdir)
    if tracking is not None:  # whatever the flag: we never write into files git tracks
        return UserError(
            f"{hdir} holds files the repository at {tracking} tracks; periscope will not write there",
            hook_lines_hint(str(hdir)),
        )
    if scope == "link" and not global_hooks_path:
        return UserError(
            f"{Path(dirs.common_dir) / 'hooks'} links to {os.path.realpath(hdir)}, a folder other"
            " repositories may run hooks from too",
            "make it a folder of this repository's own, or run periscope install-hooks --global-hooks-path"
            f" to install into the shared one on purpose, or add the lines instead: {hook_lines_hint(str(hdir))}",
        )
    if scope == "command" and not global_hooks_path:
        return UserError(
            f"core.hooksPath is set for this command (git -c or GIT_CONFIG_* variables: {hdir}), not by"
            " this repository",
            "run periscope install-hooks without it, or with --global-hooks-path to install there on purpose",
        )
    if scope in ("global", "system") and not global_hooks_path:
        return UserError(
            f"core.hooksPath is set in your {scope} git config ({hdir}): hooks installed there run in"
            " every repository of yours",
            "run periscope install-hooks --global-hooks-path to record in every repository that uses that"
            f" folder, or add the lines instead: {hook_lines_hint(str(hdir))}",
        )
    return None


def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.periscope-tmp.{os.getpid()}")  # two installs at once: one each


def _write_atomic(path: Path, text: str, mode: int = 0o755) -> None:
    tmp = _tmp_beside(path)
    try:
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk left it half written


@contextlib.contextmanager
def _shims_written_first(hdir: Path) -> Iterator[dict[str, Path]]:
    """Every shim written beside its place before any user hook is moved: on a full disk the
    user's hook was moved aside with no shim in its place to run it.  A shim not moved in by the
    end is removed."""
    shims = {name: _tmp_beside(hdir / name) for name in HOOK_NAMES}
    try:
        try:
            for name, tmp in shims.items():
                tmp.write_text(shim_text(name, sys.executable))
                os.chmod(tmp, 0o755)
        except OSError as e:
            raise UserError(
                f"could not write the hooks into {hdir} ({e.strerror or type(e).__name__}); nothing was changed",
                "make room or make it writable, then run periscope install-hooks again",
            ) from None
        yield shims
    finally:
        for tmp in shims.values():
            tmp.unlink(missing_ok=True)


HOT_PATH_MODULES = (
    "__init__",
    "hook",
    "git",
    "spool",
    "agents",
    "agents.opencode",
    "agents.claude_code",
    "logfile",
    "folders",
)


def precompile_hook_modules() -> None:
    """Write the hook's bytecode now: where PYTHONDONTWRITEBYTECODE is set (or the
    package is an editable checkout), every commit would otherwise compile these
    modules from source, which costs more than running them."""
    import py_compile

    package_dir = Path(__file__).resolve().parent.parent
    for name in HOT_PATH_MODULES:
        try:
            source = package_dir / name.replace(".", "/")
            source = source / "__init__.py" if source.is_dir() else source.with_suffix(".py")
            py_compile.compile(str(source), doraise=True)
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
    if created and hdir.absolute() != (Path(dirs.common_dir) / "hooks").absolute():
        # Recorded before anything is made: a state folder that cannot be written left a created
        # hooks folder nobody knew of (uninstall then left it behind).
        record = _created_dirs_record(dirs)
        data = _read_created_dirs(record)
        data[str(hdir.absolute())] = created
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(data, indent=2))
        except OSError as e:
            raise UserError(
                f"cannot write {record} ({e.strerror or type(e).__name__}), where install-hooks notes the"
                f" folders it creates for {hdir}; nothing was changed",
                "make the repository's state folder writable, or create the hooks folder yourself",
            ) from None
    hdir.mkdir(parents=True, exist_ok=True)


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


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


# A user's hook that is a relative symlink (`ln -s ../../scripts/post-commit .git/hooks/`, as many
# repositories' setup scripts make them) would point nowhere one folder down in periscope-kept/:
# it is kept as a link one `../` longer, and its name listed here, so that uninstall gives back the
# link it found, byte for byte (a relative link an older version kept as it was is left alone).
RELATIVE_LINKS_KEPT = ".relative-links"


def _relative_link(path: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = os.readlink(path)
    return None if os.path.isabs(target) else target


def _kept_relative_links(hdir: Path) -> set[str]:
    try:
        return set((hdir / KEPT_DIR / RELATIVE_LINKS_KEPT).read_text().split())
    except OSError:
        return set()


def _write_kept_relative_links(hdir: Path, names: set[str]) -> None:
    record = hdir / KEPT_DIR / RELATIVE_LINKS_KEPT
    if names:
        _write_atomic(record, "".join(f"{n}\n" for n in sorted(names)), mode=0o644)
    else:
        record.unlink(missing_ok=True)


def _link_atomic(target: str, path: Path) -> None:
    tmp = _tmp_beside(path)
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _sibling_link(path: Path) -> bool:
    """A link to another of our hooks beside it (`ln -s post-commit post-merge`: one script for
    several hooks): kept as it is, it points at that hook kept beside it in periscope-kept/."""
    target = _relative_link(path)
    return target is not None and target in HOOK_NAMES


def _our_shim(path: Path) -> bool:
    """A shim of ours in its place: a file, never a link (a link is the user's hook, whatever it
    points at: a sibling kept beside it, or a periscope shim in a shared folder)."""
    return not path.is_symlink() and is_ours(path)


def _links_to_a_shim_elsewhere(path: Path) -> bool:
    """The user's hook is a link to a periscope shim in another folder (a shared one): it runs
    periscope already, and a shim of ours in its place would record every commit twice."""
    return path.is_symlink() and not _sibling_link(path) and is_ours(path)


def _keep(hdir: Path, name: str, source: Path | None = None) -> None:
    """Move the user's hook `name` (or `source` beside it: a v1 shim's `<name>.periscope-legacy`)
    to periscope-kept/ (the shim then takes the hook's place)."""
    path, kept = source or hdir / name, kept_hook(hdir, name)
    kept.parent.mkdir(exist_ok=True)
    target = _relative_link(path)
    if target is None or _sibling_link(path):
        os.replace(path, kept)
        return
    _write_kept_relative_links(hdir, _kept_relative_links(hdir) | {name})
    _link_atomic(os.path.join(os.pardir, target), kept)  # the hook itself stays until the shim replaces it
    if source is not None:
        source.unlink()


def _mend_kept_link(hdir: Path, name: str) -> None:
    """A relative link an older version moved into periscope-kept/ as it was points nowhere from
    there (its hook silently stopped running): made one `../` longer and listed, as _keep does now,
    when that is where it pointed from the hook's place.  Uninstall then gives back the original."""
    kept = kept_hook(hdir, name)
    target = _relative_link(kept)
    if target is None or name in _kept_relative_links(hdir) or kept.exists() or not (hdir / target).exists():
        return
    _write_kept_relative_links(hdir, _kept_relative_links(hdir) | {name})
    _link_atomic(os.path.join(os.pardir, target), kept)


def _same_link_kept(hdir: Path, name: str) -> bool:
    """Is the kept hook `name` the relative link still in the hook's place (an install stopped
    between keeping it and writing the shim over it)?"""
    target = _relative_link(hdir / name)
    return (
        target is not None
        and name in _kept_relative_links(hdir)
        and _relative_link(kept_hook(hdir, name)) == os.path.join(os.pardir, target)
    )


def _give_back(hdir: Path, name: str, to: Path | None = None) -> None:
    """Put the kept hook `name` back where it was (uninstall), or at `to` beside it (where
    pre-commit moved our shim: its hook runs what it finds there)."""
    path, kept = to or hdir / name, kept_hook(hdir, name)
    relative = _kept_relative_links(hdir)
    target = _relative_link(kept)
    if name in relative and target is not None and target.startswith(os.pardir + os.sep):
        _link_atomic(target[len(os.pardir + os.sep) :], path)
        kept.unlink()
        _write_kept_relative_links(hdir, relative - {name})
    else:
        os.replace(kept, path)


@contextlib.contextmanager
def _one_at_a_time(dirs: git.RepoDirs) -> Iterator[None]:
    """install-hooks and uninstall-hooks of one repository, one at a time.  Two uninstalls at once
    could each see our shim, and the second delete the user's hook the first had just put back in
    its place (tests/test_install_uninstall.py: 1 run in 5 under load lost it).  The lock is on the
    git dir itself: nothing is created for it, so uninstall still leaves exactly what was there."""
    from periscope_hooks.filelock import FileLock

    try:
        lock = FileLock(Path(dirs.common_dir), folder=True)
    except OSError:  # a git dir that cannot be opened to lock: as before, unlocked
        yield
        return
    try:
        try:
            held = lock.acquire(30)
        except OSError:  # a file system without flock on folders (some NFS setups): as before
            held = True
        if not held:
            raise UserError(
                "another install-hooks or uninstall-hooks has been running in this repository for 30 s",
                "let it finish, then run this again",
            )
        yield
    finally:
        lock.close()


def install_hooks(repo: str | None, global_hooks_path: bool = False) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    with _one_at_a_time(dirs):
        return _install_hooks(dirs, global_hooks_path)


def uninstall_hooks(repo: str | None, global_hooks_path: bool = False) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    with _one_at_a_time(dirs):
        return _uninstall_hooks(dirs, global_hooks_path)


def _install_hooks(dirs: git.RepoDirs, global_hooks_path: bool) -> int:
    if not dirs.worktree and git.run_git(["rev-parse", "--is-bare-repository"], git_dir=dirs.git_dir).strip() == "true":
        raise UserError(
            f"{dirs.git_dir} is a bare repository: nobody commits there, so no hook of ours would run",
            "run periscope install-hooks in a clone you work in",
        )
    unusable = _unusable_hooks_path(dirs)
    if unusable:
        raise unusable
    hdir = hooks_dir(dirs, warn=False)
    refusal = _detect_manager(dirs, hdir) or _shared_hooks_refusal(dirs, hdir, global_hooks_path)
    if refusal:
        tracked = in_work_tree(dirs, hdir) or tracking_work_tree(hdir) is not None
        if tracked and all(calls_periscope(hdir, n) for n in HOOK_NAMES):
            output.out(f"the hooks in {hdir} already run periscope hook; nothing to install")
            return 0
        raise refusal
    hooks_dir(dirs, warn=True)  # the relative-hooksPath warning, only once nothing refused
    # Check everything before changing anything, so a refusal leaves no half-install.
    if _exists(hdir / KEPT_DIR) and not (hdir / KEPT_DIR).is_dir():
        raise UserError(
            f"{hdir / KEPT_DIR} is not a folder, where periscope keeps the hooks it finds",
            "move it away, then run periscope install-hooks again",
        )
    for name in HOOK_NAMES:
        path, kept, legacy = hdir / name, kept_hook(hdir, name), hdir / (name + LEGACY_SUFFIX)
        if path.is_dir() and not path.is_symlink():
            raise UserError(
                f"{path} is a folder, where git looks for a hook",
                "move it away, then run periscope install-hooks again",
            )
        if (
            _exists(path)
            and not _our_shim(path)
            and not _links_to_a_shim_elsewhere(path)
            and (_exists(kept) or _exists(legacy))
            and not _same_link_kept(hdir, name)
        ):
            raise UserError(
                f"{path} is not ours and {kept if _exists(kept) else legacy} already exists",
                "move one of them away, then run periscope install-hooks again",
            )
    _make_hooks_dir(dirs, hdir)
    with _shims_written_first(hdir) as shims:
        for name in HOOK_NAMES:
            path, kept, legacy = hdir / name, kept_hook(hdir, name), hdir / (name + LEGACY_SUFFIX)
            if _links_to_a_shim_elsewhere(path):
                output.info(f"your {name} hook links to a periscope hook ({os.readlink(path)}); left as it is")
                continue
            if _exists(path) and not _our_shim(path):
                _keep(hdir, name)
                output.info(f"kept your existing {name} hook as {KEPT_DIR}/{name}; it still runs, under its own name")
            elif _exists(legacy) and not _exists(kept):
                _keep(hdir, name, source=legacy)  # an older install's kept hook: now under its own name
            else:
                _mend_kept_link(hdir, name)
            os.replace(shims[name], path)
    precompile_hook_modules()
    state_dir = paths.state_dir_for_common_dir(dirs.common_dir)
    repo_registry.remember(repo_registry.label_for(state_dir), state_dir)  # for _others_using
    output.out(f"periscope hooks installed in {hdir}")
    return 0


def _others_using(dirs: git.RepoDirs, hdir: Path) -> list[str]:
    """The work trees of other repositories periscope knows (repo_registry: every install and
    flush) whose own core.hooksPath names this hooks folder too: two local settings naming one
    folder share its shims, and removing them from one stopped the other recording, unsaid.
    A git call or two a known repository, once an uninstall, and only for a folder outside this
    repository's git dir (no other repository's setting names that by accident)."""
    if inside(hdir, dirs.common_dir):
        return []
    here, ours = os.path.realpath(hdir), os.path.realpath(dirs.common_dir)
    found = []
    for state_dir, label in repo_registry.noted().items():
        common_dir = os.path.realpath(Path(state_dir).parent)
        if common_dir == ours or not os.path.isdir(label):
            continue
        other = git.rev_parse_dirs(label)
        if other is None or os.path.realpath(other.common_dir) != common_dir or _unusable_hooks_path(other):
            continue
        if os.path.realpath(hooks_dir(other, warn=False)) == here:
            found.append(label)
    return found


def _uninstall_hooks(dirs: git.RepoDirs, global_hooks_path: bool = False) -> int:
    hdir = hooks_dir(dirs)
    scope = _shared_scope(dirs, hdir)
    if scope and not global_hooks_path and any(is_ours(hdir / n) for n in HOOK_NAMES):
        # As install asks for the flag there: from one repository, every repository using the
        # folder would silently stop recording.
        where = "a linked hooks folder" if scope == "link" else f"core.hooksPath in your {scope} git config"
        raise UserError(
            f"the hooks in {hdir} ({where}) serve every repository that uses that folder",
            "run periscope uninstall-hooks --global-hooks-path to remove them for all of them",
        )
    others = (
        []
        if scope or global_hooks_path or not any(is_ours(hdir / n) for n in HOOK_NAMES)
        else _others_using(dirs, hdir)
    )
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise UserError(
            f"the hooks in {hdir} serve other repositories too (their core.hooksPath names it: {shown})",
            "run periscope uninstall-hooks --global-hooks-path to remove them for all of them, or give this"
            " repository a hooks folder of its own first (git config core.hooksPath)",
        )
    removed = 0
    for name in HOOK_NAMES:
        path, kept, legacy = hdir / name, kept_hook(hdir, name), hdir / (name + LEGACY_SUFFIX)
        moved_by_pre_commit = hdir / (name + PRE_COMMIT_LEGACY_SUFFIX)
        if _exists(path) and _our_shim(moved_by_pre_commit):
            # `pre-commit install` after ours moved our shim aside and runs it from there: the
            # user's hook goes back in its place (pre-commit runs it as it ran ours), or nothing.
            if _exists(kept):
                _give_back(hdir, name, to=moved_by_pre_commit)
            else:
                moved_by_pre_commit.unlink()
            removed += 1
            continue
        if _exists(path) and not _our_shim(path):
            if _same_link_kept(hdir, name):  # the user's link never left: drop the copy
                kept.unlink()
                _write_kept_relative_links(hdir, _kept_relative_links(hdir) - {name})
            continue
        # Ours, or missing: a kept hook without its shim (an install interrupted between the two
        # moves, or the shim deleted by hand) is put back too, never left stranded.
        try:
            if _exists(kept):
                _give_back(hdir, name)
            elif _exists(legacy):
                os.replace(legacy, path)
            elif _exists(path):
                path.unlink()
            else:
                continue
        except FileNotFoundError:  # another uninstall running at the same time moved it first
            continue
        removed += 1
    try:
        (hdir / KEPT_DIR).rmdir()  # only if we left it empty
    except OSError:
        pass
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
        if (
            is_ours(path)
            or (pre_commits and is_ours(legacy) and os.access(legacy, os.X_OK))
            or not pre_commits
            and calls_periscope(hdir, name)
        ):
            state[name] = "installed"
        elif pre_commits and framework is not None:
            state[name] = "pre-commit" if framework["listed"][name] else "pre-commit, not listed"
        else:
            state[name] = "other hook" if path.exists() else "missing"
    return state


def calls_periscope(hdir: Path, name: str) -> bool:
    """A hook the team wrote (a committed hooks folder, husky's `.husky/<name>` behind its
    `.husky/_` stubs) that runs `periscope hook <name>`, and git can run."""
    from periscope_hooks.hook_managers import runs_periscope_hook

    candidates = [hdir / name]
    if hdir.name == "_" and hdir.parent.name == ".husky":
        candidates.append(hdir.parent / name)  # husky 9: .husky/_/<name> runs .husky/<name>
    return os.access(hdir / name, os.X_OK) and any(runs_periscope_hook(p, name) for p in candidates)


def _global_hooks_path_shadows(dirs: git.RepoDirs, hdir: Path, scope: str) -> str | None:
    """Why hooks installed in this repository do not run: a global or system core.hooksPath
    that appeared after install makes git look elsewhere."""
    default = Path(dirs.common_dir) / "hooks"
    if scope not in ("global", "system") or hdir.absolute() == default.absolute():
        return None
    if not any(is_ours(default / n) for n in HOOK_NAMES):
        return None
    return (
        f"not running: core.hooksPath in your {scope} git config ({hdir}) makes git run hooks from there,"
        f" not from {default} where periscope's are (hint: add 'periscope hook <name> \"$@\"' lines to the"
        " hooks there, or run periscope install-hooks --global-hooks-path to install into that folder)"
    )


def hooks_status(dirs: git.RepoDirs) -> str:
    """The `git hooks` line of `periscope status`. Where another tool manages the hooks,
    install-hooks refuses, so the advice is that tool's, never `periscope install-hooks`."""
    from periscope_hooks.hook_managers import hook_id, pre_commit_hooks

    hdir = hooks_dir(dirs, warn=False)
    framework = pre_commit_hooks(dirs.worktree, str(hdir), HOOK_NAMES)
    state = installed_hooks(dirs, hdir, framework)
    older = [n for n in HOOK_NAMES if is_ours(hdir / n) and not shim_is_current(hdir / n, n)]
    if all(s == "installed" for s in state.values()):
        if any(not is_ours(hdir / n) and calls_periscope(hdir, n) for n in HOOK_NAMES):
            return f"installed (the hooks in {hdir} run periscope hook)"
        if older:
            return (
                f"installed, {', '.join(older)} from an older periscope-hooks (run periscope install-hooks to update)"
            )
        return "installed"
    shadowed = _global_hooks_path_shadows(dirs, hdir, hooks_path_config(dirs)[1])
    if shadowed:
        return shadowed
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
        refusal = _detect_manager(dirs, hdir) or _shared_hooks_refusal(dirs, hdir, False)
        advice = refusal.hint if refusal and refusal.hint else "run periscope install-hooks"
    # Shims from before a hook was added (post-checkout) are older ones too: said here as well,
    # since they lack fixes (the security fix among them) that only reinstalling brings.
    stale = f"; {', '.join(older)} from an older periscope-hooks" if older else ""
    return f"not installed: {', '.join(missing)} ({advice}){stale}"
