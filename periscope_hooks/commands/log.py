"""`periscope log`: git log with each commit's AI usage, read from the periscope git notes."""

from __future__ import annotations

from periscope_hooks import output
from periscope_hooks.errors import UserError
from periscope_hooks.git import GitError, run_git
from periscope_hooks.notes import NOTES_REF, summary_lines
from periscope_hooks.repo import resolve_dirs

SEP, REC = "\x1f", "\x1e"


def log(repo: str | None, git_args: list[str]) -> int:
    dirs = resolve_dirs(repo)
    assert dirs is not None
    fmt = REC + SEP.join(["%H", "%h", "%s", "%an", "%ad", "%N"])
    try:
        stdout = run_git(
            ["log", f"--notes={NOTES_REF}", "--date=short", f"--format={fmt}", *git_args],
            cwd=dirs.worktree or dirs.git_dir,
            timeout=None,  # a person asked for this history, however long it is
        )
    except GitError as e:
        first = e.stderr.splitlines()[0] if e.stderr else str(e)
        raise UserError(f"git log failed: {first}", "check the arguments after --") from None
    shown = 0
    for record in stdout.split(REC)[1:]:
        parts = record.split(SEP, 5)
        if len(parts) < 6:
            continue
        _, short, subject, author, date, note = parts
        output.out(f"{short} {date} {author}: {subject}")
        for line in summary_lines(note.strip("\n")):
            output.out(f"    {line}")
        shown += 1
    if not shown:
        output.out("no commits")
    return 0
