"""install-hooks / uninstall-hooks with real repositories."""

from __future__ import annotations

import json
import os

import pytest

from testing.util import commit, git, hook_records, init_repo, periscope, user_hook


def test_existing_hook_is_kept_chained_and_restored(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    original = b'#!/bin/sh\n# mine\necho "$@" >> "$(git rev-parse --git-dir)/legacy-args"\ncat >> "$(git rev-parse --git-dir)/legacy-stdin"\n'
    for name in ("post-commit", "post-rewrite"):
        (hooks / name).write_bytes(original)
        os.chmod(hooks / name, 0o750)
    periscope("install-hooks", cwd=path)
    periscope("install-hooks", cwd=path)  # idempotent: does not move our shim aside
    assert (hooks / "periscope-kept" / "post-commit").read_bytes() == original
    old = commit(path, "one")
    git(path, "commit", "-q", "--amend", "-m", "amended")
    new = git(path, "rev-parse", "HEAD")
    stdin_seen = (path / ".git" / "legacy-stdin").read_text()
    assert f"{old} {new}" in stdin_seen
    assert "amend" in (path / ".git" / "legacy-args").read_text()
    periscope("uninstall-hooks", cwd=path)
    assert (hooks / "post-commit").read_bytes() == original
    assert oct((hooks / "post-commit").stat().st_mode & 0o777) == oct(0o750)
    assert not (hooks / "post-merge").exists()
    assert not (hooks / "periscope-kept").exists()


def test_relative_core_hooks_path(tmp_path):
    path = init_repo(tmp_path / "r")
    git(path, "config", "core.hooksPath", "../r-hooks")  # outside the work tree: this clone's own
    proc = periscope("install-hooks", cwd=path)
    assert (tmp_path / "r-hooks" / "post-commit").exists()
    assert "relative" in proc.stderr


def test_install_refuses_when_a_kept_hook_would_be_overwritten(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    (hooks / "post-merge").write_text("#!/bin/sh\necho theirs\n")
    (hooks / "post-merge.periscope-legacy").write_text("#!/bin/sh\necho older\n")
    proc = periscope("install-hooks", cwd=path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "hint: " in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (hooks / "post-commit").exists()  # nothing half-installed


def test_outside_a_repository_install_says_what_to_do(tmp_path):
    proc = periscope("install-hooks", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "not inside a git repository" in proc.stderr and "hint:" in proc.stderr
    # Below a GIT_CEILING_DIRECTORIES entry git does not look up into the repository above: we do
    # as git does (we walked up, found .git and said "git cannot read the repository": a docs sweep).
    repo = init_repo(tmp_path / "r")
    (repo / "sub").mkdir()
    proc = periscope("install-hooks", cwd=repo / "sub", check=False, env={"GIT_CEILING_DIRECTORIES": str(repo)})
    assert proc.returncode == 1 and "not inside a git repository" in proc.stderr, proc.stderr
    for ceiling in (tmp_path, repo / "sub"):  # above the repository, or the current folder itself
        env = {"GIT_CEILING_DIRECTORIES": str(ceiling)}
        assert "periscope hooks installed" in periscope("install-hooks", cwd=repo / "sub", env=env).stdout


def test_uninstall_without_install_is_harmless(tmp_path):
    path = init_repo(tmp_path / "r")
    assert "no periscope hooks" in periscope("uninstall-hooks", cwd=path).stdout


def test_shim_bakes_in_the_interpreter_quoted(tmp_path):
    import sys

    path = init_repo(tmp_path / "r")
    periscope("install-hooks", "--repo", str(path))
    text = (path / ".git" / "hooks" / "post-commit").read_text()
    assert "# periscope-hooks-shim" in text and sys.executable in text
    assert os.access(path / ".git" / "hooks" / "post-commit", os.X_OK)


def test_uninstall_removes_the_hooks_directory_install_created(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks_path = tmp_path / "shared" / "git-hooks"  # neither directory exists yet
    git(path, "config", "core.hooksPath", str(hooks_path))
    periscope("install-hooks", cwd=path)
    assert (hooks_path / "post-commit").exists()
    periscope("uninstall-hooks", cwd=path)
    assert not (tmp_path / "shared").exists()  # exactly what was there before: nothing
    assert not (path / ".git" / "periscope").exists()  # nor is the record of it left behind
    assert (path / ".git" / "hooks").is_dir()  # the default hooks directory is never removed


def test_uninstall_keeps_a_hooks_directory_that_existed(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks_path = tmp_path / "git-hooks"
    hooks_path.mkdir()  # the user's own, empty for now
    git(path, "config", "core.hooksPath", str(hooks_path))
    periscope("install-hooks", cwd=path)
    periscope("install-hooks", cwd=path)  # a second install does not claim the directory as created
    periscope("uninstall-hooks", cwd=path)
    assert hooks_path.is_dir() and list(hooks_path.iterdir()) == []


def test_uninstall_keeps_a_created_hooks_directory_that_holds_other_files(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks_path = tmp_path / "git-hooks"
    git(path, "config", "core.hooksPath", str(hooks_path))
    periscope("install-hooks", cwd=path)
    (hooks_path / "pre-push").write_text("#!/bin/sh\nexit 0\n")  # added by the user since
    periscope("uninstall-hooks", cwd=path)
    assert [p.name for p in hooks_path.iterdir()] == ["pre-push"]
    # The record of the created directory is gone with the install: a later uninstall does not act on it.
    (hooks_path / "pre-push").unlink()
    periscope("uninstall-hooks", cwd=path)
    assert hooks_path.is_dir()


def test_default_hooks_directory_is_never_removed(tmp_path):
    path = init_repo(tmp_path / "r")
    import shutil

    shutil.rmtree(path / ".git" / "hooks")  # e.g. `git init` without templates
    periscope("install-hooks", cwd=path)
    periscope("uninstall-hooks", cwd=path)
    assert (path / ".git" / "hooks").is_dir()


def test_a_repository_path_with_a_newline_is_installed_and_linked(tmp_path):
    """`git rev-parse` prints one path a line, so a newline in the path split it in two:
    install-hooks ran git in a folder that does not exist (the catch-all's GitError)."""

    from testing.util import append_spool, message_record

    repo = init_repo(tmp_path / "new\nline")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo, tokens=(5, 0, 0, 0, 0)))
    sha = commit(repo, "c1")
    rows = json.loads(periscope("report", "--format", "json", cwd=repo).stdout)
    assert [(r["sha"], r["tokens"]["input"]) for r in rows] == [(sha, 5)]
    periscope("uninstall-hooks", cwd=repo)
    assert not (repo / ".git" / "hooks" / "post-commit").exists()


def test_uninstall_puts_back_a_kept_hook_whose_shim_is_gone(tmp_path):
    """An install interrupted between moving the user's hook aside and writing the shim (kill -9,
    Ctrl-C), or a shim deleted by hand, left the hook in periscope-kept/: uninstall said "no
    periscope hooks" and left it there, never to run again."""
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    mine = b"#!/bin/sh\necho mine\n"
    (hooks / "post-commit").write_bytes(mine)
    os.chmod(hooks / "post-commit", 0o755)
    periscope("install-hooks", cwd=path)
    for name in ("post-commit", "post-merge", "post-rewrite", "post-checkout"):
        (hooks / name).unlink()  # as if the install had died right after the move
    assert "periscope hooks removed" in periscope("uninstall-hooks", cwd=path).stdout
    assert (hooks / "post-commit").read_bytes() == mine and os.access(hooks / "post-commit", os.X_OK)
    assert not (hooks / "periscope-kept").exists()


def test_installs_and_uninstalls_at_once_end_consistent(tmp_path):
    """Every install wrote its shim through the same temporary name: two at once failed with
    FileNotFoundError (the catch-all) about 1 run in 30; uninstalls at once did the same."""
    import subprocess
    import sys

    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    mine = b"#!/bin/sh\necho mine\n"
    (hooks / "post-merge").write_bytes(mine)
    os.chmod(hooks / "post-merge", 0o755)
    argv = [sys.executable, "-m", "periscope_hooks"]
    for command in ("install-hooks", "uninstall-hooks") * 5:
        procs = [
            subprocess.Popen([*argv, command], cwd=path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and (err == b"" or b"kept your existing" in err), (command, out, err)
        kept = hooks / "periscope-kept" / "post-merge"
        shown = kept if command == "install-hooks" else hooks / "post-merge"
        assert shown.read_bytes() == mine, command  # the user's hook, where it belongs, once
        assert not [p for p in os.listdir(hooks) if "periscope-tmp" in p]


def test_a_folder_where_a_hook_belongs_is_refused_before_anything_changes(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    (hooks / "post-merge").mkdir()
    proc = periscope("install-hooks", cwd=path, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {hooks / 'post-merge'} is a folder, where git looks for a hook hint: ")
    assert not (hooks / "post-commit").exists() and not (hooks / "periscope-kept").exists()


def test_a_bare_repository_is_refused_and_the_git_dir_of_a_clone_is_installed(tmp_path):
    """Both said "not inside a git repository" (git rev-parse --show-toplevel fails without a work tree)."""
    bare = tmp_path / "b.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    proc = periscope("install-hooks", "--repo", str(bare), cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert (
        proc.stderr.startswith(f"error: {bare} is a bare repository") and not (bare / "hooks" / "post-commit").exists()
    )
    path = init_repo(tmp_path / "r")
    assert f"installed in {path / '.git' / 'hooks'}" in periscope("install-hooks", cwd=path / ".git").stdout


def _repo_with_a_hook_script(tmp_path, name):
    """A repository with a hook script in the work tree (scripts/<name>: notes each run in
    .git/mine-ran), as setup scripts that link hooks to it make; (its path, its hooks folder)."""
    path = init_repo(tmp_path / "r")
    (path / "scripts").mkdir()
    script = path / "scripts" / name
    script.write_text('#!/bin/sh\necho ran >> "$(git rev-parse --git-dir)/mine-ran"\n')
    script.chmod(0o755)
    return path, path / ".git" / "hooks"


@pytest.mark.parametrize("left_by", ["a v1 shim (<name>.periscope-legacy)", "a version that moved links as they were"])
def test_a_relative_link_an_older_install_kept_runs_again_after_reinstalling(tmp_path, left_by):
    """The README's upgrade step (install-hooks again) moved a v1 shim's kept hook into
    periscope-kept/ as it was: a relative link then pointed nowhere and the user's hook silently
    stopped running; a version before the relative-link fix had left it so already.  Reinstalling
    now makes the link one `../` longer (listed, so uninstall gives back the original)."""
    path, hooks = _repo_with_a_hook_script(tmp_path, "pc.sh")
    periscope("install-hooks", cwd=path)
    if left_by.startswith("a v1"):
        (hooks / "post-commit.periscope-legacy").symlink_to("../../scripts/pc.sh")
    else:
        (hooks / "periscope-kept").mkdir()
        (hooks / "periscope-kept" / "post-commit").symlink_to("../../scripts/pc.sh")
    periscope("install-hooks", cwd=path)
    assert not (hooks / "post-commit.periscope-legacy").is_symlink()
    commit(path, "one")
    assert (path / ".git" / "mine-ran").read_text() == "ran\n"
    periscope("uninstall-hooks", cwd=path)
    assert os.readlink(hooks / "post-commit") == "../../scripts/pc.sh"
    assert not (hooks / "periscope-kept").exists()


def test_a_relative_symlink_hook_still_runs_when_kept_and_comes_back_as_it_was(tmp_path):
    """Moved one folder down into periscope-kept/, a relative link (what many repositories' setup
    scripts make: `ln -s ../../scripts/post-commit .git/hooks/`) pointed nowhere, and the hook
    silently stopped running."""
    path, hooks = _repo_with_a_hook_script(tmp_path, "post-commit")
    (hooks / "post-commit").symlink_to("../../scripts/post-commit")
    periscope("install-hooks", cwd=path)
    commit(path, "one")
    assert (path / ".git" / "mine-ran").read_text() == "ran\n"
    periscope("install-hooks", cwd=path)  # idempotent
    periscope("uninstall-hooks", cwd=path)
    assert os.readlink(hooks / "post-commit") == "../../scripts/post-commit"
    assert not (hooks / "periscope-kept").exists()
    # An install stopped after keeping the link, before the shim took its place: both uninstall and
    # a new install know the copy for what it is.
    (hooks / "periscope-kept").mkdir()
    (hooks / "periscope-kept" / "post-commit").symlink_to("../../../scripts/post-commit")
    (hooks / "periscope-kept" / ".relative-links").write_text("post-commit\n")
    periscope("install-hooks", cwd=path)
    commit(path, "two")
    assert (path / ".git" / "mine-ran").read_text() == "ran\nran\n"
    periscope("uninstall-hooks", cwd=path)
    assert os.readlink(hooks / "post-commit") == "../../scripts/post-commit" and not (hooks / "periscope-kept").exists()


def test_a_hook_linked_to_its_sibling_keeps_running_and_comes_back(tmp_path):
    """`ln -s post-commit post-merge`, one script for two hooks: the link resolved to our shim once
    post-commit was kept, was taken for ours and overwritten, and uninstall deleted it."""
    path = init_repo(tmp_path / "r")
    log = tmp_path / "ran.log"
    hooks = user_hook(path, "post-commit", f'echo "${{0##*/}}" >> "{log}"')
    (hooks / "post-merge").symlink_to("post-commit")
    periscope("install-hooks", cwd=path)
    commit(path, "base", filename="base.txt")
    git(path, "checkout", "-q", "-b", "side")
    commit(path, "side", filename="side.txt")
    git(path, "checkout", "-q", "main")
    git(path, "merge", "-q", "--no-ff", "--no-edit", "side")
    assert log.read_text().splitlines() == ["post-commit", "post-commit", "post-merge"]
    periscope("install-hooks", cwd=path)  # idempotent
    periscope("uninstall-hooks", cwd=path)
    assert os.readlink(hooks / "post-merge") == "post-commit"
    assert not (hooks / "post-commit").is_symlink() and "ran.log" in (hooks / "post-commit").read_text()
    assert not (hooks / "periscope-kept").exists()


def test_a_hook_linked_to_a_periscope_hook_elsewhere_is_left_alone(tmp_path):
    """A link to a shared folder's periscope shim runs periscope already: install leaves it (a shim
    of ours in its place would record each commit twice, and uninstall deleted the user's link)."""
    shared = init_repo(tmp_path / "shared-owner")
    periscope("install-hooks", cwd=shared)
    target = shared / ".git" / "hooks" / "post-commit"
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    (hooks / "post-commit").symlink_to(target)
    installed = periscope("install-hooks", cwd=path)
    assert "links to a periscope hook" in installed.stderr
    assert os.readlink(hooks / "post-commit") == str(target)
    commit(path, "one")
    from testing.util import spool_path

    assert [r["hook"] for r in hook_records(spool_path(path).read_text())] == ["post-commit"]
    periscope("uninstall-hooks", cwd=path)
    assert os.readlink(hooks / "post-commit") == str(target)
    assert target.read_text() == (shared / ".git" / "hooks" / "post-commit").read_text()


def test_git_dir_in_the_environment_names_the_repository_as_git_takes_it(tmp_path):
    """GIT_DIR/GIT_WORK_TREE naming B, run from inside A: git acts on B, and so does install-hooks
    (it installed into A's hooks, another repository, unasked); --repo still wins."""
    a, b = init_repo(tmp_path / "A"), init_repo(tmp_path / "B")
    (a / "work").mkdir()
    env = {"GIT_DIR": str(b / ".git"), "GIT_WORK_TREE": str(b)}
    periscope("install-hooks", cwd=a / "work", env=env)
    assert (b / ".git" / "hooks" / "post-commit").exists()
    assert not (a / ".git" / "hooks" / "post-commit").exists()
    periscope("install-hooks", "--repo", str(a), cwd=a / "work", env=env)
    assert (a / ".git" / "hooks" / "post-commit").exists()


@pytest.mark.parametrize("where", ["local", "global"])
def test_a_hooks_folder_another_repository_tracks_is_refused(tmp_path, monkeypatch, where):
    """core.hooksPath naming a folder a dotfiles repository tracks: its committed hooks were moved
    aside and replaced (`git status` there showed them modified), with --global-hooks-path too."""
    dotfiles = init_repo(tmp_path / "dotfiles")
    (dotfiles / "githooks").mkdir()
    (dotfiles / "githooks" / "post-commit").write_text("#!/bin/sh\necho team\n")
    (dotfiles / "githooks" / "post-commit").chmod(0o755)
    git(dotfiles, "add", "githooks")
    git(dotfiles, "commit", "-q", "-m", "hooks")
    path = init_repo(tmp_path / "r")
    hooks = str(dotfiles / "githooks")
    if where == "local":
        git(path, "config", "core.hooksPath", hooks)
        refused = periscope("install-hooks", cwd=path, check=False)
    else:
        gitconfig = tmp_path / "global.gitconfig"
        gitconfig.write_text(f"[core]\n\thooksPath = {hooks}\n")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
        refused = periscope("install-hooks", "--global-hooks-path", cwd=path, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: {hooks} holds files the repository at {dotfiles} tracks;")
    assert "hint: add 'periscope hook post-commit" in refused.stderr
    assert git(dotfiles, "status", "--porcelain") == ""
    assert sorted(os.listdir(hooks)) == ["post-commit"]


def test_the_main_work_tree_s_committed_hooks_are_refused_from_a_linked_worktree(tmp_path):
    main = init_repo(tmp_path / "main")
    (main / ".githooks").mkdir()
    (main / ".githooks" / "post-commit").write_text("#!/bin/sh\necho team\n")
    git(main, "add", ".githooks")
    git(main, "commit", "-q", "-m", "hooks")
    git(main, "worktree", "add", "-q", str(tmp_path / "wt"))
    git(main, "config", "core.hooksPath", str(main / ".githooks"))
    refused = periscope("install-hooks", cwd=tmp_path / "wt", check=False)
    assert refused.returncode == 1 and "tracks; periscope will not write there" in refused.stderr
    assert git(main, "status", "--porcelain") == ""


@pytest.mark.parametrize("name", ["hooks dir ", "hooks\ndir"], ids=["trailing-space", "newline"])
def test_a_hooks_path_is_taken_as_git_takes_it(tmp_path, name):
    """Read line by line and stripped, a core.hooksPath ending in a space or holding a newline
    named another folder: the shims went where git never looks (a sweep)."""
    path = init_repo(tmp_path / "r")
    folder = tmp_path / name
    git(path, "config", "core.hooksPath", str(folder))
    periscope("install-hooks", cwd=path)
    assert sorted(os.listdir(folder)) == ["post-checkout", "post-commit", "post-merge", "post-rewrite"]
    commit(path, "recorded")
    from testing.util import spool_path

    assert spool_path(path).exists()


def test_an_empty_or_undecodable_hooks_path_is_refused(tmp_path):
    import subprocess

    path = init_repo(tmp_path / "r")
    git(path, "config", "core.hooksPath", "")
    refused = periscope("install-hooks", cwd=path, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("error: core.hooksPath is set but empty")
    assert not (path / ".git" / "hooks" / "post-commit").exists()
    subprocess.run([b"git", b"config", b"core.hooksPath", str(tmp_path).encode() + b"/h\xff"], cwd=path, check=True)
    refused = periscope("install-hooks", cwd=path, check=False)
    assert refused.returncode == 1 and "is not UTF-8" in refused.stderr and refused.stderr.count("\n") == 1


def test_a_fifo_in_the_hooks_folder_blocks_neither_install_nor_status(tmp_path):
    """Every entry of the hooks folder was opened to look for markers: a FIFO among them blocked
    install-hooks and status for ever (a sweep)."""
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    os.mkfifo(hooks / "post-merge")
    os.mkfifo(hooks / "pre-push")
    import subprocess
    import sys

    def run(*args: str) -> str:  # in a child with a time limit: a hang fails, never blocks the run
        proc = subprocess.run(
            [sys.executable, "-m", "periscope_hooks", *args], cwd=path, capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("install-hooks")
    assert "git hooks" in run("status")
    assert (hooks / "periscope-kept" / "post-merge").is_fifo()  # kept as it was, never opened


def test_a_bare_repository_with_a_newline_in_its_path_is_refused_not_its_neighbour(tmp_path):
    """git's answers about a path with a newline could not be told apart line by line, and a walk
    up looking for `.git` found the repository around the bare one: installed there (a sweep)."""
    outer = init_repo(tmp_path / "outer")
    bare = outer / "new\nline.git"
    git(outer, "init", "-q", "--bare", str(bare))
    refused = periscope("install-hooks", "--repo", str(bare), cwd=outer, check=False)
    assert refused.returncode == 1 and "is a bare repository" in refused.stderr
    assert not (outer / ".git" / "hooks" / "post-commit").exists()


def test_a_full_disk_or_a_file_in_the_way_changes_nothing(tmp_path):
    """Room for two shims, not four: the user's post-rewrite was moved aside with no shim in its
    place (it stopped running) and a half-written temporary file stayed; a file named
    periscope-kept failed the install half way, two shims live (a sweep)."""
    import subprocess
    import sys

    path = init_repo(tmp_path / "r")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    git(path, "config", "core.hooksPath", str(hooks))
    script = (
        f'mount -t tmpfs -o size=60k none "{hooks}" || exit 99\n'
        f'for n in post-commit post-merge post-rewrite; do printf "#!/bin/sh\\necho mine\\n" > "{hooks}/$n"; done\n'
        f'"{sys.executable}" -m periscope_hooks install-hooks; echo "rc=$?"\n'
        f'ls -A "{hooks}"\n'
    )
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    proc = subprocess.run([*unshare, "sh", "-c", script], cwd=path, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["rc=1", "post-commit", "post-merge", "post-rewrite"], proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: could not write the hooks into {hooks} (No space left on device)")
    assert proc.stderr.count("\n") == 1

    (hooks / "post-rewrite").write_text("#!/bin/sh\necho mine\n")
    (hooks / "periscope-kept").write_text("in the way\n")
    refused = periscope("install-hooks", cwd=path, check=False)
    assert refused.returncode == 1 and "periscope-kept is not a folder" in refused.stderr
    assert sorted(os.listdir(hooks)) == ["periscope-kept", "post-rewrite"]


def test_a_hooks_folder_is_not_created_when_its_record_cannot_be_written(tmp_path):
    """The folders install creates for a core.hooksPath are noted in the state folder, for
    uninstall: with that folder unwritable they were created and left unrecorded (a sweep)."""
    path = init_repo(tmp_path / "r")
    wanted = tmp_path / "new" / "hooks"
    git(path, "config", "core.hooksPath", str(wanted))
    (path / ".git" / "periscope").write_text("a file where the state folder goes\n")
    refused = periscope("install-hooks", cwd=path, check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("error: cannot write ") and "nothing was changed" in refused.stderr
    assert not (tmp_path / "new").exists()


def test_a_kept_hook_sees_the_environment_it_was_given(tmp_path):
    """The shim's own variables were named HERE, KEPT, HOOK_NAME and PERISCOPE_STDIN: a user's
    exported variable of one of those names reached the kept hook with the shim's value (a sweep)."""
    path = init_repo(tmp_path / "r")
    seen = tmp_path / "seen"
    user_hook(path, "post-commit", f'echo "$HOOK_NAME $HERE $KEPT $PERISCOPE_STDIN" > "{seen}"')
    periscope("install-hooks", cwd=path)
    env = {"HOOK_NAME": "mine", "HERE": "here", "KEPT": "kept", "PERISCOPE_STDIN": "stdin"}
    commit(path, "one", env=env)
    assert seen.read_text() == "mine here kept stdin\n"
