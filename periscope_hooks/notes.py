"""Attribution in git notes (opt-in per repository: `notes = true`).

Each linked commit gets a note under refs/notes/periscope: a short human-readable
summary, then the same data as one line of JSON (`periscope-json: {...}`).  The
note is always rewritten whole from the state database (totals for the commit
including usage carried over from rewritten commits), so writing it again after
an amend or rebase never duplicates anything, whether or not git's own
notes.rewriteRef copied the old note first.
"""

from __future__ import annotations

import json
from typing import Any

from periscope_hooks.jsonout import compact
from periscope_hooks.output import one_line

NOTES_REF = "refs/notes/periscope"
JSON_PREFIX = "periscope-json: "


def note_text(data: dict[str, Any]) -> str:
    usage = data["usage"]
    t = usage["tokens"]
    models = ", ".join(f"{m['model']} ({m['messages']})" for m in data.get("by_model", [])) or "none"
    sessions = (
        ", ".join(
            f"{s.get('title') or s['id']}{' [sub-agent]' if s.get('is_subagent') else ''}"
            for s in data.get("sessions", [])
        )
        or "none"
    )
    cost = f"${usage['cost']:.4f}"
    list_cost = f"${usage.get('list_cost') or 0:.4f}"
    if list_cost not in (cost, "$0.0000"):  # Claude Code reports no cost: its list price is the figure
        cost += f" (list {list_cost})"
    lines = [
        f"AI usage: {usage['messages']} message(s), {cost}, origin {data.get('origin')}",
        f"tokens: input {t['input']}, output {t['output']}, reasoning {t['reasoning']},"
        f" cache read {t['cache_read']}, cache write {t['cache_write']}",
        # One line each: a title (the agent's, from the conversation) with a line break forged
        # note lines, a `periscope-json:` line among them, in the note the team pushes.
        f"models: {one_line(models)}",
        f"sessions: {one_line(sessions)}",
        "",
        JSON_PREFIX + compact(data),
    ]
    return "\n".join(lines) + "\n"


def parse_note(text: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        if line.startswith(JSON_PREFIX):
            try:
                note: dict[str, Any] = json.loads(line[len(JSON_PREFIX) :])
                return note
            except ValueError:
                return None
    return None


def summary_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(JSON_PREFIX):
            break
        out.append(line)
    return out


def write_note(common_dir: str, sha: str, data: dict[str, Any]) -> None:
    """Replace the commit's periscope note.  Never raises (logs instead)."""
    from periscope_hooks.git import run_git

    try:
        run_git(
            ["notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", sha],
            git_dir=common_dir,
            input=note_text(data),
            extra_env=_identity(),
        )
    except Exception as e:
        from periscope_hooks import logfile

        logfile.log_line(f"{common_dir}/periscope/hook.log", f"git notes: could not write the note for {sha[:12]}: {e}")


def remove_notes(common_dir: str, shas: list[str]) -> None:
    """Remove the periscope notes of commits whose usage moved to another (an amend, a rebase, a
    forge's squash): summed, the notes held that usage twice.  One git call a few hundred commits
    (`--ignore-missing`: a commit never noted is no error).  Never raises (logs instead)."""
    from periscope_hooks.git import run_git

    for start in range(0, len(shas), 500):
        try:
            run_git(
                ["notes", f"--ref={NOTES_REF}", "remove", "--ignore-missing", *shas[start : start + 500]],
                git_dir=common_dir,
                extra_env=_identity(),
            )
        except Exception as e:
            from periscope_hooks import logfile

            logfile.log_line(
                f"{common_dir}/periscope/hook.log", f"git notes: could not remove notes of moved usage: {e}"
            )
            return


def _identity() -> dict[str, str]:
    """Notes commits need an identity; fall back to a neutral one rather than fail."""
    import os

    env = dict(os.environ)
    name = env.get("GIT_AUTHOR_NAME") or env.get("GIT_COMMITTER_NAME") or "periscope-hooks"
    email = env.get("GIT_AUTHOR_EMAIL") or env.get("GIT_COMMITTER_EMAIL") or "periscope-hooks@localhost"
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": env.get("GIT_COMMITTER_NAME") or name,
        "GIT_COMMITTER_EMAIL": env.get("GIT_COMMITTER_EMAIL") or email,
    }


def read_note(common_dir: str, sha: str) -> str | None:
    from periscope_hooks.git import run_git

    try:
        return run_git(["notes", f"--ref={NOTES_REF}", "show", sha], git_dir=common_dir, check=True)
    except Exception:
        return None
