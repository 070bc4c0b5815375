"""The command line (periscope_hooks/main.py) and the one place that prints (periscope_hooks/output.py).

Exit codes (docs/cli.md): 0 success, 1 a user-facing error in one line with a hint,
2 bad usage; `periscope hook` always exits 0 and prints nothing.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import pytest

from periscope_hooks import __version__, output
from periscope_hooks.main import main
from testing.util import init_repo
from testing.util import periscope as _periscope

# This module tests the real command line: every call here is a fresh `python -m periscope_hooks`.
periscope = functools.partial(_periscope, in_process=False)

COMMANDS = (
    "install-hooks",
    "uninstall-hooks",
    "install-opencode",
    "uninstall-opencode",
    "hook",
    "flush",
    "login",
    "logout",
    "whoami",
    "status",
    "report",
    "export",
    "log",
)
ONE_LINE_ERROR = re.compile(r"\Aerror: (?P<message>[^\n]+?) hint: (?P<hint>[^\n]+)\n\Z")


def periscope_log() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "periscope.log"


def hook_log_fallback() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "hook.log"


def assert_one_line_error(proc, *, stdout_allowed: bool = False) -> re.Match:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert stdout_allowed or proc.stdout == ""
    assert "Traceback" not in proc.stderr
    m = ONE_LINE_ERROR.match(proc.stderr)
    assert m, repr(proc.stderr)
    return m


def broken_state_repo(tmp_path: Path) -> Path:
    """A repository whose state.db-wal is a directory: SQLite fails with a disk I/O error (an
    unexpected failure; a state.db that is a folder is named in one line of its own)."""
    repo = init_repo(tmp_path / "broken")
    (repo / ".git" / "periscope" / "state.db-wal").mkdir(parents=True)
    return repo


# --- the real CLI, in subprocesses --------------------------------------------------------------


def test_help_lists_every_command(tmp_path):
    proc = periscope("--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("usage: periscope ")
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", proc.stdout, re.M), name


def test_hook_help_names_every_hook_install_hooks_installs(tmp_path):
    # `periscope hook -h` printed nothing (the hook's own path, silent by design, took it), and the
    # names listed left out post-checkout, which team-hooks.md tells users to add.
    from periscope_hooks import main as main_module
    from periscope_hooks.commands.install_uninstall import HOOK_NAMES

    assert main_module.HOOK_NAMES == HOOK_NAMES
    proc = periscope("hook", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: periscope hook ")
    assert "{post-commit,post-merge,post-rewrite,post-checkout}" in proc.stdout
    silent = periscope("hook", "post-checkout", "0" * 40, "0" * 40, "1", cwd=tmp_path)  # outside a repo
    assert (silent.stdout, silent.stderr) == ("", "")


def test_version(tmp_path):
    proc = periscope("--version", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"periscope-hooks {__version__}\n", "")


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], [], ["report", "--by", "weekday"], ["flush", "--no-such-flag"]],
    ids=["unknown-command", "no-command", "bad-choice", "unknown-option"],
)
def test_bad_usage_exits_2_with_usage_on_stderr(tmp_path, args):
    proc = periscope(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.startswith("usage: periscope")
    assert "Traceback" not in proc.stderr
    if args == ["frobnicate"]:
        assert "invalid choice: 'frobnicate'" in proc.stderr


def test_report_on_a_directory_outside_git_is_one_line_with_a_hint(tmp_path):
    plain = tmp_path / "not a repo"
    plain.mkdir()
    m = assert_one_line_error(periscope("report", "--repo", str(plain), cwd=tmp_path, check=False))
    assert str(plain) in m["message"] and "not inside a git repository" in m["message"]
    assert "--repo" in m["hint"]


def test_report_on_a_missing_directory_is_one_line_with_a_hint(tmp_path):
    m = assert_one_line_error(periscope("report", "--repo", str(tmp_path / "gone"), cwd=tmp_path, check=False))
    assert m["message"] == f"{tmp_path / 'gone'} is not a directory"


@pytest.mark.parametrize("command", ["status", "report", "flush", "export", "log"])
def test_a_deleted_working_folder_is_one_line_with_a_hint(tmp_path, command):
    """A shell left in a removed worktree: os.getcwd() raised FileNotFoundError out of every command."""
    import subprocess
    import sys

    gone = tmp_path / "gone"
    gone.mkdir()
    code = f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); from periscope_hooks.main import main; sys.exit(main([{command!r}]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    m = assert_one_line_error(proc)
    assert (m["message"], m["hint"]) == (
        "the current folder no longer exists",
        "cd into your repository and run it again",
    )


@pytest.mark.parametrize("command", [["report"], ["status"], ["report", "--format", "json"], ["log"]])
def test_output_that_cannot_be_written_is_one_line_and_no_work_for_a_closed_one(tmp_path, command):
    """A full disk under stdout gave Python's two-line 'Exception ignored' and status 120 at exit;
    a closed stdout gave "AttributeError: 'NoneType' object has no attribute 'write'", after the
    command had done its work (install-hooks installed, then said it failed)."""
    import subprocess
    import sys

    repo = init_repo(tmp_path / "r")
    run = [sys.executable, "-m", "periscope_hooks", *command]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(run, cwd=repo, stdout=full, stderr=subprocess.PIPE, text=True, env=os.environ)
    m = assert_one_line_error(proc, stdout_allowed=True)  # went to /dev/full
    assert m["message"] == "could not write the output: No space left on device"
    closed = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "periscope_hooks", "install-hooks"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=os.environ,
    )
    m = assert_one_line_error(closed)
    assert m["message"] == "standard output is closed"
    assert not (repo / ".git" / "hooks" / "post-commit").exists()  # refused before any work


def test_login_without_an_endpoint_is_one_line_with_a_hint(tmp_path):
    m = assert_one_line_error(periscope("login", cwd=tmp_path, check=False))
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    assert "no endpoint configured" in m["message"] and str(cfg) in m["message"]
    assert "endpoint" in m["hint"] and str(cfg) in m["hint"]
    assert not cfg.exists()  # explaining is not configuring


def test_an_authority_msal_refuses_is_one_line_naming_it(tmp_path):
    """msal checks an Entra authority's shape (a tenant segment) when sign-in starts; its
    ValueError ended in the catch-all's `login failed: ValueError`."""
    cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    authority = "https://login.microsoftonline.com/"
    cfg.write_text(json.dumps({"endpoint": "https://127.0.0.1:9/e", "client_id": "c", "authority": authority}))
    m = assert_one_line_error(periscope("login", cwd=tmp_path, check=False, env={"BROWSER": "true"}))
    assert m["message"].startswith(f"sign-in cannot use the authority {authority}: ") and str(cfg) in m["hint"]


def test_a_state_db_that_cannot_be_opened_is_named(tmp_path):
    """Every command said `OperationalError: unable to open database file`, never which file."""
    repo = init_repo(tmp_path / "r")
    db = repo / ".git" / "periscope" / "state.db"
    db.mkdir(parents=True)
    for cmd in ("report", "flush", "export"):
        m = assert_one_line_error(periscope(cmd, cwd=repo, check=False))
        assert m["message"] == f"{cmd}: cannot open {db}: it is a folder"
        assert m["hint"].startswith("it must be a file you can read and write")


def test_whoami_when_not_signed_in(tmp_path):
    m = assert_one_line_error(periscope("whoami", cwd=tmp_path, check=False))
    assert (m["message"], m["hint"]) == ("not signed in", "run periscope login")


def test_unexpected_failure_prints_one_line_and_logs_the_traceback(tmp_path):
    repo = broken_state_repo(tmp_path)
    proc = periscope("report", "--repo", str(repo), cwd=tmp_path, check=False)
    m = assert_one_line_error(proc)
    assert m["message"].startswith("report failed: OperationalError: ")
    log = periscope_log()
    assert m["hint"] == f"details in {log}"
    text = log.read_text()
    assert "periscope report failed" in text
    assert "Traceback (most recent call last):" in text and "sqlite3.OperationalError" in text
    assert f"periscope-hooks {__version__}" in text
    assert (log.stat().st_mode & 0o777) == 0o600


def test_each_unexpected_failure_appends_to_the_log(tmp_path):
    repo = broken_state_repo(tmp_path)
    for cmd in ("status", "flush"):
        # status always runs: its lines come first (the state.db line says what is wrong).
        proc = periscope(cmd, "--repo", str(repo), cwd=tmp_path, check=False)
        m = assert_one_line_error(proc, stdout_allowed=cmd == "status")
        assert m["message"].startswith(f"{cmd} failed: ")
    text = periscope_log().read_text()
    assert text.index("periscope status failed") < text.index("periscope flush failed")
    assert text.count("Traceback (most recent call last):") == 2


@pytest.mark.parametrize(
    "args",
    [
        ["hook"],
        ["hook", "pre-push"],
        ["hook", "post-commit", "--bogus", "x", "y"],
        ["hook", "post-rewrite", "--", "nonsense"],
        ["hook", "post-commit", "--help"],  # only `periscope hook --help` alone, typed by a person, helps
    ],
    ids=["no-name", "unknown-name", "extra-args", "rewrite-junk", "help-after-a-name"],
)
def test_hook_always_exits_0_and_prints_nothing(tmp_path, args):
    proc = periscope(*args, cwd=tmp_path, input="not a rewrite list\n", env={"PERISCOPE_BACKGROUND": "0"}, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_hook_logs_what_it_skipped(tmp_path):
    periscope("hook", "pre-push", cwd=tmp_path, check=False)
    assert "unknown hook name 'pre-push'" in hook_log_fallback().read_text()


def test_hook_exits_0_when_the_state_dir_cannot_be_made(tmp_path):
    repo = init_repo(tmp_path / "r")
    (repo / ".git" / "periscope").write_text("a file where the state dir belongs")
    proc = periscope("hook", "post-commit", cwd=repo, env={"PERISCOPE_BACKGROUND": "0"}, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    text = hook_log_fallback().read_text()
    assert "failed; the commit is unaffected" in text and "Traceback" in text


# --- in process: main() and output.py, captured with capsys --------------------------------------


def test_main_returns_1_for_a_user_error(tmp_path, capsys):
    assert main(["report", "--repo", str(tmp_path / "gone")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"error: {tmp_path / 'gone'} is not a directory hint: pass --repo PATH of a git repository\n"


def test_main_logs_an_unexpected_failure(tmp_path, capsys):
    repo = broken_state_repo(tmp_path)
    assert main(["report", "--repo", str(repo)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("error: report failed: OperationalError: ")
    assert err.endswith(f" hint: details in {periscope_log()}\n")
    assert "Traceback" in periscope_log().read_text()


def test_main_bad_usage_raises_systemexit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: periscope")


def test_main_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"periscope-hooks {__version__}\n"


def test_output_stdout_functions(capsys):
    output.out("a line")
    output.out()
    output.write("no newline")
    out, err = capsys.readouterr()
    assert (out, err) == ("a line\n\nno newline", "")


def test_output_stderr_functions(capsys):
    output.info("opening the browser")
    output.warn("careful")
    out, err = capsys.readouterr()
    assert (out, err) == ("", "opening the browser\nwarning: careful\n")


def test_output_error_is_one_line_and_returns_1(capsys):
    assert output.error("it broke", "fix it") == 1
    assert output.error("no hint") == 1
    assert output.error("empty hint", "") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: it broke hint: fix it\nerror: no hint\nerror: empty hint\n"


def test_output_error_and_warning_are_one_line_whatever_they_quote(capsys):
    """A quoted value (a config key, a path, a URL) can hold a newline or a terminal escape."""
    output.error("unknown key(s): bo\ngus", "remove \x1b[31mit\r")
    output.warn("a\nb")
    assert capsys.readouterr().err == "error: unknown key(s): bo\\ngus hint: remove \\x1b[31mit\\r\nwarning: a\\nb\n"


# --- papercuts: a closed pipe, numeric environment variables ------------------------------------


def test_export_into_a_closed_pipe_exits_quietly(repo):
    """`periscope export | head -1`: the reader leaves early; no traceback, no error line."""
    import subprocess
    import sys

    from testing.util import append_spool, commit, message_record

    append_spool(repo.path, *(message_record(repo.path, id=f"pipe{i:04d}") for i in range(400)))
    commit(repo.path, "many messages")
    periscope("flush", cwd=repo.path)  # then export writes far more than a pipe buffer holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "periscope_hooks", "export"],
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # as `head` does after its first line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert err == b""


@pytest.mark.parametrize(
    "name", ["PERISCOPE_HTTP_TIMEOUT", "PERISCOPE_FLUSH_BUDGET", "PERISCOPE_BACKOFF_BASE", "PERISCOPE_BACKOFF_CAP"]
)
@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_bad_numeric_variable_is_one_line_naming_it(tmp_path, monkeypatch, capsys, name, value):
    repo = init_repo(tmp_path / "r")
    monkeypatch.setenv(name, value)
    assert main(["flush", "--repo", str(repo)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    m = ONE_LINE_ERROR.match(err)
    above = " above 0" if name == "PERISCOPE_HTTP_TIMEOUT" else ""
    assert m and m["message"] == f"{name}={value!r} is not a number of seconds{above}"
    wanted = "number above 0" if above else "non-negative number"
    assert m["hint"].startswith(f"unset it or set a {wanted}, e.g. {name}=")


def test_a_zero_http_timeout_is_refused_and_a_zero_budget_is_not(tmp_path, monkeypatch, capsys):
    """A timeout of 0 made every request fail at once, as if the endpoint could not be reached
    (a sweep); a budget of 0 is a flush without retries."""
    repo = init_repo(tmp_path / "r")
    monkeypatch.setenv("PERISCOPE_HTTP_TIMEOUT", "0")
    assert main(["flush", "--repo", str(repo)]) == 1
    m = ONE_LINE_ERROR.match(capsys.readouterr().err)
    assert m and m["message"] == "PERISCOPE_HTTP_TIMEOUT='0' is not a number of seconds above 0"
    monkeypatch.delenv("PERISCOPE_HTTP_TIMEOUT")
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "0")
    assert main(["flush", "--repo", str(repo)]) == 0


def test_an_empty_numeric_variable_means_the_default(tmp_path, monkeypatch, capsys):
    repo = init_repo(tmp_path / "r")
    monkeypatch.setenv("PERISCOPE_HTTP_TIMEOUT", "")
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", " 5 ")
    assert main(["flush", "--repo", str(repo)]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("value", ["abc", "0", "65536", "14550.5", "\u00b2", "\u0661\u0662", "1" * 5000])
def test_a_bad_login_port_is_one_line_in_login_and_in_status(tmp_path, monkeypatch, capsys, value):
    from testing.delivery import point_config_at

    point_config_at(
        "https://ingest.periscope.example/v1/events", client_id="cli", authority="https://login.periscope.example/t"
    )
    monkeypatch.setenv("PERISCOPE_LOGIN_PORT", value)
    assert main(["login"]) == 1
    out, err = capsys.readouterr()
    m = ONE_LINE_ERROR.match(err)
    assert m and m["message"] == f"PERISCOPE_LOGIN_PORT={value!r} is not a port number", err
    repo = init_repo(tmp_path / "r")
    main(["status", "--repo", str(repo)])
    out, err = capsys.readouterr()
    assert f"PERISCOPE_LOGIN_PORT={value!r} is not a port number" in out + err


def test_a_repository_at_a_path_that_is_not_utf8_gets_one_line(tmp_path):
    """Linux allows any bytes in a folder's name; paths are kept as UTF-8 text, and git's answer
    decoded with replacement named a folder that does not exist: every command said ".git is gone"
    and `status` took the unexpected-failure path (GitError, a traceback in the log)."""
    from testing.util import append_spool, commit, message_record, periscope

    repo = init_repo(Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/r\xff\xfe")))
    append_spool(repo, message_record(repo))
    commit(repo, "c1")  # git and the hook are fine
    for command in (["report"], ["flush"], ["prices"], ["log"], ["report", "--repo", str(repo)]):
        proc = periscope(*command, cwd=repo, check=False, in_process=False)
        assert proc.stderr.count("\n") == 1 and "is not a UTF-8 path" in proc.stderr, (command, proc.stderr)
        assert "hint: periscope-hooks keeps paths as UTF-8 text" in proc.stderr and proc.returncode == 1
    # status says it on its repository line and shows the rest, as for any repository it cannot read
    proc = periscope("status", cwd=repo, check=False, in_process=False)
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("repository")]
    assert "r\\udcff\\udcfe is not a UTF-8 path" in line and proc.returncode == 0 and proc.stderr == ""
