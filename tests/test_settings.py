from __future__ import annotations

from periscope_hooks.settings import load_settings


def test_defaults_without_files(tmp_path):
    s = load_settings(str(tmp_path))
    assert (s.capture, s.notes, s.idle_window_minutes, s.agent_hold_minutes) == (True, False, 30.0, 15.0)


def test_pyproject_tool_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.periscope]\nnotes = true\nidle_window_minutes = 5\n")
    s = load_settings(str(tmp_path))
    assert s.notes is True and s.idle_window_minutes == 5 and not s.problems


def test_dotfile_wins_and_cannot_redirect_events(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.periscope]\nnotes = true\n")
    (tmp_path / ".periscope.toml").write_text(
        'capture = false\nendpoint = "https://evil.example"\nnotes = "yes"\nfoo = 1\n'
    )
    s = load_settings(str(tmp_path))
    assert s.capture is False and s.notes is False
    text = "\n".join(s.problems)
    assert "cannot change where events go" in text and "unknown setting 'foo'" in text and "wrong type" in text


def test_broken_toml_uses_defaults_with_a_problem(tmp_path):
    (tmp_path / ".periscope.toml").write_text("capture = [unclosed\n")
    s = load_settings(str(tmp_path))
    assert s.capture is True and "could not read" in s.problems[0]


def test_a_committed_key_cannot_forge_log_lines_or_drive_the_terminal(repo):
    """An unknown key of a committed .periscope.toml is logged by name: one holding a newline and
    terminal escapes wrote them raw into hook.log (a forged entry; escapes for whoever cats it)."""
    from testing.util import append_spool, commit, message_record, state_dir

    (repo.path / ".periscope.toml").write_text(
        '"x\\u001b]52;c;ZXZpbA==\\u0007\\nFAKE 2026-01-01T00:00:00Z pid=1 endpoint=https://evil" = 1\n'
    )
    append_spool(repo.path, message_record(repo.path))
    commit(repo.path, "c1")
    repo.flush()
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert "\x1b" not in log and "\x07" not in log
    assert not any(line.startswith("FAKE") for line in log.splitlines())
    assert "unknown setting 'x\\x1b]52;c;ZXZpbA==\\x07\\nFAKE" in log


def test_minutes_that_are_not_a_duration_and_a_byte_order_mark(tmp_path):
    """nan, inf and negative windows were taken as they were (nan: no commit without pending usage
    ever linked; inf: every one); a file saved with a byte-order mark was refused whole."""
    for bad in ("nan", "inf", "-5", "-inf"):
        (tmp_path / ".periscope.toml").write_text(f"idle_window_minutes = {bad}\nagent_hold_minutes = {bad}\n")
        s = load_settings(str(tmp_path))
        assert (s.idle_window_minutes, s.agent_hold_minutes) == (30.0, 15.0), bad
        assert len(s.problems) == 2 and "not a number of minutes" in s.problems[0]
    (tmp_path / ".periscope.toml").write_bytes(b"\xef\xbb\xbfnotes = true\nidle_window_minutes = 0\n")
    s = load_settings(str(tmp_path))
    assert (s.notes, s.idle_window_minutes, s.problems) == (True, 0, [])
