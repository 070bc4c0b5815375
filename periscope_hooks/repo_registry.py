"""The repositories periscope has worked in on this machine, for `dashboard --all-repos`.

One JSON object a line ({"label": the work tree, "state_dir": its .git/periscope}) in
~/.local/state/periscope/repos.  Written by every flush (the hooks and the agents' plugins start one
after each commit and message), by `dashboard` and by `install-hooks` (`uninstall-hooks` asks
which other repositories run hooks from the same folder).  Best effort: a home that cannot be written only
loses the note.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from periscope_hooks import paths


def registry_path() -> Path:
    return paths.state_home() / "periscope" / "repos"


def label_for(state_dir: Path) -> str:
    """The work tree a state dir belongs to, as far as the path tells (`.git/periscope`: the folder
    holding `.git`; a bare repository's: the repository itself)."""
    common_dir = state_dir.parent
    return str(common_dir.parent if common_dir.name == ".git" else common_dir)


def remember(label: str, state_dir: Path) -> None:
    path = registry_path()
    line = json.dumps({"label": label, "state_dir": str(state_dir)})
    try:
        if path.exists() and line in _lines(path):
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _lines(path: Path) -> list[str]:
    """The registry's lines; one damaged by other bytes (not UTF-8) is skipped, never the whole
    file: it stopped every repository's flush (a UnicodeDecodeError, a ValueError, not OSError)."""
    return path.read_bytes().decode("utf-8", "replace").splitlines()


def noted() -> dict[str, str]:
    """state dir -> label, for every note (a later note's label wins)."""
    found: dict[str, str] = {}
    try:
        lines = _lines(registry_path())
    except OSError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            found[str(Path(entry["state_dir"]))] = str(entry["label"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def remembered() -> dict[str, str]:
    """state dir -> label, for every remembered state dir that still holds a state.db or a spool."""
    return {
        state_dir: label
        for state_dir, label in noted().items()
        if (Path(state_dir) / paths.STATE_DB_NAME).exists() or (Path(state_dir) / paths.SPOOL_NAME).exists()
    }
