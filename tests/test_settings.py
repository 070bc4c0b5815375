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
