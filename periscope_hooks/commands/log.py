"""`periscope log`: git log with each commit's AI usage.

The usage comes from the commit's periscope git note when it has one, else from the state
database (what `periscope report` shows): notes are opt-in, and a commit linked before notes
were turned on, or in a clone that has not fetched them, has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from periscope_hooks import output
from periscope_hooks.errors import UserError
from periscope_hooks.git import GitError, read_head, run_git
from periscope_hooks.notes import NOTES_REF, note_text, summary_lines
from periscope_hooks.repo import resolve_dirs

if TYPE_CHECKING:
    from periscope_hooks.git import RepoDirs

SEP, REC, END = "\x1f", "\x1e", "\x1d"  # END closes a commit's fields: what follows is git's diff output


def log(repo: str | None, git_args: list[str]) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    fmt = REC + SEP.join(["%H", "%h", "%s", "%an", "%ad", "%N"]) + END
    try:
        stdout = run_git(
            ["log", f"--notes={NOTES_REF}", "--date=short", f"--format={fmt}", *git_args],
            cwd=dirs.worktree or dirs.git_dir,
            timeout=None,  # a person asked for this history, however long it is
        )
    except GitError as e:
        first = e.stderr.splitlines()[0] if e.stderr else str(e)
        if not git_args and read_head(dirs)[0] is None:  # a new repository: nothing to show, not an error
            output.out("no commits")
            return 0
        raise UserError(f"git log failed: {first}", "check the arguments after --") from None
    fields, diffs = [], False
    for record in stdout.split(REC)[1:]:
        head, ended, rest = record.partition(END)
        diffs = diffs or bool(ended and rest.strip())
        if ended and len(parts := head.split(SEP, 5)) == 6:
            fields.append(parts)
    if stdout.strip() and not fields:
        raise UserError(
            "the arguments after -- replaced the format periscope log reads (--oneline, --format, --pretty)",
            "leave them out: each commit is shown on one line, its AI usage below it",
        )
    if diffs:  # --stat, -p, --name-only...: printed where the usage goes, the usage lost
        raise UserError(
            "the arguments after -- add each commit's changes (--stat, -p, --name-only...), which periscope log"
            " does not show",
            "leave them out, or run git log for the changes",
        )
    records = fields
    from_state = _usage_from_state(dirs, [sha for sha, *_, note in records if not note.strip()])
    for sha, short, subject, author, date, note in records:
        # Escaped: a note fetched from a remote (the team workflow), a title or a model name in it,
        # or a subject could otherwise write to the clipboard or clear the screen (OSC 52, CSI).
        output.out(output.one_line(f"{short} {date} {author}: {subject}"))
        text = note.strip("\n") or (note_text(from_state[sha]) if sha in from_state else "")
        for line in summary_lines(text):
            output.out(f"    {output.one_line(line)}")
    if not records:
        output.out("no commits")
    return 0


def _usage_from_state(dirs: RepoDirs, shas: list[str]) -> dict[str, dict[str, Any]]:
    """The note each of these commits would have, from the state database (ingested first)."""
    if not shas:
        return {}
    from periscope_hooks import paths
    from periscope_hooks.ingest import commit_summary
    from periscope_hooks.state_reader import read_state

    state_dir = paths.state_dir_for_common_dir(dirs.common_dir)
    summaries, note = read_state(
        state_dir, lambda conn: {sha: commit_summary(conn, sha) for sha in shas}, output.ingesting
    )
    if note:
        output.info(f"note: {note}")
    return {sha: s for sha, s in summaries.items() if s is not None}
