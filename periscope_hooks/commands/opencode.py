"""`periscope install-opencode` / `uninstall-opencode`: the OpenCode plugin.

Per repository the plugin goes to `.opencode/plugin/periscope.js`, which OpenCode
loads from there by itself (it scans the folder; checked with opencode-ai 1.18.33),
so the repository's `opencode.json` is not touched: a team that commits it keeps
it as it is.  Nothing machine-specific is in the work tree: that copy names no
interpreter (the plugin reads it from `<git-common-dir>/periscope/opencode-command.json`),
and `.git/info/exclude` lists it, so `git add -A` leaves it out.  With `--global`
the plugin goes to `~/.config/opencode/plugin/periscope.js`, with the interpreter
baked in, listed in `~/.config/opencode/opencode.json` as `./plugin/periscope.js`.

What install changed is remembered in `periscope-install.json` (beside the global
plugin; in the state dir for a repository's, older installs beside it), so uninstall removes exactly that and nothing else: the edit to opencode.json is one
insertion, recorded as its offset and text with a hash of the file after it (never a
copy of the user's file, which may hold provider keys), so an untouched file goes back
byte for byte; a file edited since loses our entry, and the "plugin" key if install
added it and nothing else is left in it.  opencode.json is read and written as bytes
(UTF-8), so line ends survive.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from periscope_hooks import git, jsonc, output, paths
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_dirs
from periscope_hooks.state import make_state_dir

PLUGIN_NAME = "periscope.js"
RECORD_NAME = "periscope-install.json"
REPO_RECORD_NAME = "opencode-install.json"  # in the state dir: a repository's install record
COMMAND_FILE = "opencode-command.json"  # in the state dir: the interpreter a repository's plugin runs
BAKE_MARK = "const BAKED_COMMAND = null;"
EXCLUDE_LINE = f"/.opencode/plugin/{PLUGIN_NAME}"
EXCLUDE_COMMENT = "# periscope-hooks: the OpenCode plugin (machine-specific; periscope uninstall-opencode removes it)"


def plugin_source() -> str:
    return (Path(__file__).resolve().parent.parent / "resources" / "opencode-plugin.js").read_text()


def baked_plugin(python: str) -> str:
    text = plugin_source()
    command = json.dumps(_command(python))
    return text.replace(BAKE_MARK, f"const BAKED_COMMAND = {command};", 1)


def _command(python: str) -> list[str]:
    from periscope_hooks.hook import MAIN_CODE  # not -m: nothing imported from the repository's folder

    return [python, "-c", MAIN_CODE]


def _targets(global_: bool, repo: str | None) -> tuple[Path, Path, str]:
    """(plugin dir, opencode.json, spec as listed)."""
    if global_:
        base = paths.config_home() / "opencode"
        return base / "plugin", base / "opencode.json", f"./plugin/{PLUGIN_NAME}"
    top = Path(_repo_dirs(repo).worktree)
    return top / ".opencode" / "plugin", top / "opencode.json", f"./.opencode/plugin/{PLUGIN_NAME}"


def _repo_dirs(repo: str | None) -> git.RepoDirs:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    if not dirs.worktree:
        raise UserError("this repository has no worktree", "run this inside a checkout, or use --global")
    return dirs


def _exclude_path(dirs: git.RepoDirs) -> Path:
    return Path(dirs.common_dir) / "info" / "exclude"


def _exclude_plugin(dirs: git.RepoDirs) -> None:
    """List the plugin in .git/info/exclude (this clone's own ignore file), once."""
    path = _exclude_path(dirs)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if EXCLUDE_LINE in text.splitlines():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = "" if not text or text.endswith("\n") else "\n"
    path.write_text(f"{text}{sep}{EXCLUDE_COMMENT}\n{EXCLUDE_LINE}\n", encoding="utf-8")


def _unexclude_plugin(dirs: git.RepoDirs) -> None:
    path = _exclude_path(dirs)
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return
    kept = [line for line in lines if line.rstrip("\n") not in (EXCLUDE_LINE, EXCLUDE_COMMENT)]
    if kept != lines:
        path.write_text("".join(kept), encoding="utf-8")


def _install_in_repo(repo: str | None) -> int:
    """The plugin without an interpreter in it, where OpenCode finds it, out of git's way."""
    dirs = _repo_dirs(repo)
    plugin_dir = Path(dirs.worktree) / ".opencode" / "plugin"
    state = paths.state_dir_for_common_dir(dirs.common_dir)
    make_state_dir(state)
    record_path = state / REPO_RECORD_NAME
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    plugin_dir.mkdir(parents=True, exist_ok=True)
    _exclude_plugin(dirs)  # before the file exists: git never sees it untracked
    plugin_path = plugin_dir / PLUGIN_NAME
    tmp = plugin_path.with_name(f".{PLUGIN_NAME}.tmp")
    tmp.write_text(plugin_source())
    os.replace(tmp, plugin_path)
    tmp = state / f".{COMMAND_FILE}.tmp"
    tmp.write_text(json.dumps(_command(sys.executable)) + "\n")
    os.replace(tmp, state / COMMAND_FILE)
    record_path.write_text(json.dumps(record, indent=2))
    output.out(f"OpenCode plugin installed: {plugin_path} (OpenCode loads it from there; kept out of git)")
    return 0


def _listed(config: Path, spec: str) -> bool:
    try:
        data = jsonc.loads(config.read_text())
    except (OSError, ValueError):
        return False
    plugins = data.get("plugin") if isinstance(data, dict) else None
    if not isinstance(plugins, list):
        return False
    absolute = "file://" + str((config.parent / spec).resolve())
    return any(p in (spec, spec[2:], absolute) for p in plugins if isinstance(p, str))


CREATED_CONFIG = '{\n  "$schema": "https://opencode.ai/config.json",\n  "plugin": [SPEC]\n}\n'


def _read(config: Path) -> str:
    return config.read_bytes().decode("utf-8")


def _write(config: Path, text: str) -> None:
    config.write_bytes(text.encode("utf-8"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _unlist(config: Path, record: dict[str, Any]) -> None:
    """Take out of opencode.json what install put in, and only that."""
    text = _read(config)
    if record.get("created_config") and text == record.get("created_config_text"):
        config.unlink()
        return
    at, inserted = record.get("inserted_at"), record.get("inserted")
    if (
        isinstance(at, int)
        and isinstance(inserted, str)
        and _sha256(text) == record.get("config_sha256")
        and text[at : at + len(inserted)] == inserted
    ):
        _write(config, text[:at] + text[at + len(inserted) :])  # untouched since install: exactly as before
        return
    # Edited since install: remove our entry, then the key if install added it and it is now empty.
    text = jsonc.remove_from_array(text, "plugin", record["listed"])
    if record.get("created_config") or record.get("created_key"):
        try:
            data = jsonc.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("plugin") == []:
            text = jsonc.remove_key(text, "plugin")
    if record.get("created_config") and "".join(text.split()) == "".join(
        jsonc.remove_key(record.get("created_config_text") or CREATED_CONFIG, "plugin").split()
    ):
        config.unlink()  # a file install created, holding nothing else (whitespace aside)
        return
    _write(config, text)


def install_opencode(global_: bool, repo: str | None) -> int:
    if not global_:
        return _install_in_repo(repo)
    plugin_dir, config, spec = _targets(global_, repo)
    plugin_dir.mkdir(parents=True, exist_ok=True)
    record_path = plugin_dir / RECORD_NAME
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    try:
        original = _read(config) if config.exists() else None
        if original is not None:
            jsonc.loads(original)
    except ValueError as e:  # UnicodeDecodeError included
        raise UserError(f"{config} is not valid JSON/JSONC ({e})", f"fix {config}, then run install-opencode again")
    plugin_path = plugin_dir / PLUGIN_NAME
    tmp = plugin_path.with_name(f".{PLUGIN_NAME}.tmp")
    tmp.write_text(baked_plugin(sys.executable))
    os.replace(tmp, plugin_path)
    if not _listed(config, spec):
        if original is None:
            updated = CREATED_CONFIG.replace("SPEC", json.dumps(spec))
            at, inserted, created_key = None, None, True
        else:
            at, inserted = jsonc.insertion(original, "plugin", spec)
            updated = original[:at] + inserted + original[at:]
            data = jsonc.loads(original)
            created_key = not (isinstance(data, dict) and "plugin" in data)
        _write(config, updated)
        record.update(
            {
                "listed": spec,
                "created_config": original is None,
                "created_config_text": updated if original is None else None,
                "inserted_at": at,
                "inserted": inserted,
                "config_sha256": _sha256(updated),
                "created_key": created_key,
            }
        )
    record.setdefault("listed", None)
    record_path.write_text(json.dumps(record, indent=2))
    output.out(f"OpenCode plugin installed: {plugin_path} (listed in {config})")
    return 0


def uninstall_opencode(global_: bool, repo: str | None) -> int:
    plugin_dir, config, spec = _targets(global_, repo)
    record_path = plugin_dir / RECORD_NAME  # the global install's, or an older repository install's
    plugin_path = plugin_dir / PLUGIN_NAME
    repo_files: list[Path] = []
    if not global_:
        dirs = _repo_dirs(repo)
        state = paths.state_dir_for_common_dir(dirs.common_dir)
        repo_files = [state / REPO_RECORD_NAME, state / COMMAND_FILE]
        _unexclude_plugin(dirs)
    if not plugin_path.exists() and not record_path.exists() and not any(p.exists() for p in repo_files):
        output.out("the OpenCode plugin is not installed here")
        return 0
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if record.get("listed") and config.exists():
        _unlist(config, record)
    for p in (plugin_path, record_path, *repo_files):
        if p.exists():
            p.unlink()
    for d in (plugin_dir, plugin_dir.parent) if not global_ else (plugin_dir,):
        try:
            d.rmdir()  # only if we left it empty
        except OSError:
            pass
    output.out("OpenCode plugin removed")
    return 0


def status_lines(dirs: git.RepoDirs | None) -> list[tuple[str, str]]:
    """`status`'s OpenCode lines: the user's install, and `dirs`' (a repository with a worktree)."""
    lines = []
    places = [
        (
            "OpenCode (user)",
            paths.config_home() / "opencode" / "plugin",
            paths.config_home() / "opencode" / "opencode.json",
            f"./plugin/{PLUGIN_NAME}",
        )
    ]
    state_dir = None
    if dirs is not None and dirs.worktree:
        top = Path(dirs.worktree)
        state_dir = paths.state_dir_for_common_dir(dirs.common_dir)
        places.insert(
            0,
            (
                "OpenCode (repo)",
                top / ".opencode" / "plugin",
                top / "opencode.json",
                f"./.opencode/plugin/{PLUGIN_NAME}",
            ),
        )
    for label, plugin_dir, config, spec in places:
        installed = (plugin_dir / PLUGIN_NAME).exists()
        # OpenCode loads a repository's .opencode/plugin/ by itself: no listing needed there.
        listed = label.endswith("(repo)") or _listed(config, spec)
        in_repo = label.endswith("(repo)")
        install = "periscope install-opencode" + ("" if in_repo else " --global")
        if installed and in_repo:
            text = f"plugin installed in {plugin_dir}"
        elif installed and listed:
            text = f"plugin installed and listed in {config}"
        elif installed:
            text = f"plugin installed but not listed in {config} (run {install})"
        else:
            text = "plugin not installed" + (f" (run {install})" if in_repo else "")
        stale = _stale_plugin(plugin_dir / PLUGIN_NAME, state_dir if in_repo else None, install) if installed else None
        lines.append((label, text + (f", {stale}" if stale else "")))
    return lines


def _stale_plugin(plugin: Path, state_dir: Path | None, install: str) -> str | None:
    """What is wrong with an installed plugin, if anything: another text than this version's (an
    older periscope-hooks: reinstalling is how a user gets its fixes), or a command to run that is
    an older one or names a Python that is gone.  `state_dir`: a repository's copy reads its
    command there; the global copy has it baked in."""
    try:
        text = plugin.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    baked = re.search(r"^const BAKED_COMMAND = (.*);", text, re.M)
    older = f"from an older periscope-hooks (run {install} to update)"
    if baked is None or text.replace(baked.group(0), BAKE_MARK, 1) != plugin_source():
        return older
    try:
        source = baked.group(1) if state_dir is None else (state_dir / COMMAND_FILE).read_text(encoding="utf-8")
        command = json.loads(source)
    except (OSError, ValueError):
        command = None
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        return f"without the command it runs (run {install} again)"
    if command[1:] != _command("")[1:]:
        return older
    if not os.path.exists(command[0]):
        return f"but its Python ({command[0]}) is gone (run {install} again)"
    return None
