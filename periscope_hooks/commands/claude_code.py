"""`periscope install-claude-code` / `uninstall-claude-code`: the Claude Code capture hooks.

Per repository the hooks go to `<worktree>/.claude/settings.local.json` (Claude Code's
personal, not-committed project settings), and that path is added to the repository's
`info/exclude` unless git already ignores it, so it never shows up as untracked.  With
`--global`, to `~/.claude/settings.json` (or `$CLAUDE_CONFIG_DIR/settings.json`).

Each hook entry runs `<this python> -m periscope_hooks agent-hook claude-code`; that command
is how uninstall recognises our entries, so it removes exactly those, the event lists and the
`hooks` key it created once they are empty, the file and the `.claude` folder it created once
nothing else is in them, and the exclude line it added.  What install created is remembered in
`claude-code-install.json` (beside the spool, or in ~/.config/periscope for `--global`).  The
settings file is rewritten as 2-space JSON; a file holding anything but a JSON object is
refused rather than rewritten.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from periscope_hooks import git, output, paths
from periscope_hooks.agents import claude_code
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_dirs

# `python -c` rather than `-m periscope_hooks agent-hook claude-code` (the same, for people):
# runpy and the CLI module cost Claude Code ~40 ms more per hook run.
MARKER = "from periscope_hooks.agents.claude_code import main"
RECORD_NAME = "claude-code-install.json"
EXCLUDE_LINE = "/.claude/settings.local.json"
HOOK_TIMEOUT_S = 30  # Claude Code's own limit per hook run; ours stops itself after 10 s


def hook_command(python: str | None = None) -> str:
    from periscope_hooks.hook import NO_CWD_IMPORTS  # nothing imported from the project's folder

    return f"{shlex.quote(python or sys.executable)} -c '{NO_CWD_IMPORTS}; {MARKER}; sys.exit(main())'"


def _ours(entry: Any) -> bool:
    hooks = entry.get("hooks") if isinstance(entry, dict) else None
    return isinstance(hooks, list) and any(isinstance(h, dict) and MARKER in str(h.get("command") or "") for h in hooks)


def _entry(event: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"hooks": [{"type": "command", "command": hook_command(), "timeout": HOOK_TIMEOUT_S}]}
    if event in claude_code.HOOK_MATCHERS:
        entry = {"matcher": claude_code.HOOK_MATCHERS[event], **entry}
    return entry


class _Target:
    def __init__(self, global_: bool, repo: str | None) -> None:
        self.global_ = global_
        self.exclude: Path | None = None
        if global_:
            self.settings = Path(claude_code.config_dir()) / "settings.json"
            self.record = paths.periscope_config_dir() / RECORD_NAME
            return
        dirs = resolve_dirs(repo)
        assert dirs is not None
        if not dirs.worktree:
            raise UserError("this repository has no worktree", "run this inside a checkout, or use --global")
        self.top = Path(dirs.worktree)
        self.settings = self.top / ".claude" / "settings.local.json"
        self.record = paths.state_dir_for_common_dir(dirs.common_dir) / RECORD_NAME
        self.exclude = Path(dirs.common_dir) / "info" / "exclude"


def _load(path: Path) -> dict[str, Any] | None:
    """The settings object, None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} ({e})", f"fix {path}, then run this again") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e})", f"fix {path}, then run this again") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object", f"fix {path}, then run this again")
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _strip_ours(data: dict[str, Any]) -> bool:
    """Remove our entries from every event list; whether any were there."""
    hooks = data.get("hooks")
    found = False
    if isinstance(hooks, dict):
        for event, entries in hooks.items():
            if isinstance(entries, list):
                kept = [e for e in entries if not _ours(e)]
                found = found or len(kept) != len(entries)
                hooks[event] = kept
    return found


def _ignored(top: Path, rel: str) -> bool:
    try:
        git.run_git(["check-ignore", "-q", rel], cwd=str(top))
        return True
    except git.GitError:
        return False


def install_claude_code(global_: bool, repo: str | None) -> int:
    target = _Target(global_, repo)
    if not global_:
        from periscope_hooks.state import make_state_dir

        make_state_dir(target.record.parent)  # before anything is written: said, not half installed
    original = _load(target.settings)
    record: dict[str, Any] = {}
    try:
        record = json.loads(target.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    data = original if original is not None else {}
    if not record:
        record = {
            "settings": str(target.settings),
            "created_dir": not target.settings.parent.exists(),
            "created_file": original is None,
            "created_hooks_key": "hooks" not in data,
            "created_events": [e for e in claude_code.HOOK_EVENTS if e not in (data.get("hooks") or {})],
            "exclude_line": None,
        }
    if "hooks" in data and not isinstance(data["hooks"], dict):
        raise UserError(f'"hooks" in {target.settings} is not an object', f"fix {target.settings}, then run this again")
    _strip_ours(data)  # a reinstall replaces our entries (say, for a new Python) rather than adding more
    hooks = data.setdefault("hooks", {})
    for event in claude_code.HOOK_EVENTS:
        entries = hooks.get(event)
        if not isinstance(entries, list):
            entries = hooks[event] = []
        entries.append(_entry(event))
    target.settings.parent.mkdir(parents=True, exist_ok=True)
    _save(target.settings, data)
    if target.exclude is not None and not record.get("exclude_line"):
        rel = str(target.settings.relative_to(target.top))
        if not _ignored(target.top, rel):
            target.exclude.parent.mkdir(parents=True, exist_ok=True)
            existing = target.exclude.read_text(encoding="utf-8") if target.exclude.exists() else ""
            with open(target.exclude, "a", encoding="utf-8") as f:
                f.write(("" if not existing or existing.endswith("\n") else "\n") + EXCLUDE_LINE + "\n")
            record["exclude_line"] = EXCLUDE_LINE
    target.record.parent.mkdir(parents=True, exist_ok=True)  # the global record's folder
    target.record.write_text(json.dumps(record, indent=2), encoding="utf-8")
    from periscope_hooks.commands.install_uninstall import precompile_hook_modules

    precompile_hook_modules()  # the hook's modules, so no run compiles them (PYTHONDONTWRITEBYTECODE)
    output.out(f"Claude Code hooks installed: {target.settings}")
    return 0


def uninstall_claude_code(global_: bool, repo: str | None) -> int:
    target = _Target(global_, repo)
    try:
        record: dict[str, Any] = json.loads(target.record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    data = _load(target.settings)
    if not record and (data is None or not _strip_ours(dict(data))):
        output.out("the Claude Code hooks are not installed here")
        return 0
    if data is not None:
        _strip_ours(data)
        hooks = data.get("hooks")
        if isinstance(hooks, dict):
            for event in record.get("created_events") or []:
                if hooks.get(event) == []:
                    del hooks[event]
            if record.get("created_hooks_key") and not hooks:
                del data["hooks"]
        if record.get("created_file") and not data:
            target.settings.unlink()
        else:
            _save(target.settings, data)
    if record.get("created_dir"):
        try:
            target.settings.parent.rmdir()  # only if we left it empty
        except OSError:
            pass
    line = record.get("exclude_line")
    if target.exclude is not None and line and target.exclude.exists():
        lines = target.exclude.read_text(encoding="utf-8").split("\n")
        if line in lines:
            lines.remove(line)
            target.exclude.write_text("\n".join(lines), encoding="utf-8")
    if target.record.exists():
        target.record.unlink()
    output.out("Claude Code hooks removed")
    return 0


def _installed(settings: Path) -> bool:
    try:
        data = _load(settings)
    except UserError:
        return False
    hooks = (data or {}).get("hooks")
    if not isinstance(hooks, dict):
        return False
    return all(isinstance(hooks.get(e), list) and any(_ours(x) for x in hooks[e]) for e in claude_code.HOOK_EVENTS)


def status_lines(repo_top: str | None) -> list[tuple[str, str]]:
    places = [("Claude Code (user)", Path(claude_code.config_dir()) / "settings.json", "install-claude-code --global")]
    if repo_top:
        places.insert(
            0, ("Claude Code (repo)", Path(repo_top) / ".claude" / "settings.local.json", "install-claude-code")
        )
    lines = []
    for label, settings, command in places:
        if not _installed(settings):
            lines.append((label, f"capture hooks not installed (run periscope {command})"))
            continue
        stale = _stale_commands(settings, f"periscope {command}")
        lines.append((label, f"capture hooks installed in {settings}" + (f", {stale}" if stale else "")))
    return lines


def _stale_commands(settings: Path, install: str) -> str | None:
    """What is wrong with our installed commands, if anything: written by an older periscope-hooks
    (before the fix that keeps the project's folder off sys.path, say: reinstalling is how a user
    gets it) or naming a Python that is gone (a deleted virtualenv: every hook then fails)."""
    current = shlex.split(hook_command("python"))[1:]
    hooks = (_load(settings) or {}).get("hooks") or {}
    for entries in hooks.values():
        for entry in entries if isinstance(entries, list) else []:
            if not _ours(entry):
                continue
            for h in entry["hooks"]:
                command = str(h.get("command") or "") if isinstance(h, dict) else ""
                if MARKER not in command:
                    continue
                try:
                    argv = shlex.split(command)
                except ValueError:
                    argv = []
                if argv[1:] != current:
                    return f"from an older periscope-hooks (run {install} to update)"
                if not os.path.exists(argv[0]):
                    return f"but their Python ({argv[0]}) is gone (run {install} again)"
    return None
