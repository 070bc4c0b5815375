"""`periscope hook <name> [args]`: what git (via the shim or pre-commit) runs after a commit,
and after a checkout (post-checkout: no record, only the flusher on a switch to the default branch).

The hot path.  It reads HEAD and the newest reflog entry from files, appends one
`commit` record to the spool, starts a detached background flush and returns 0.
The spool's order decides which messages the commit takes (those recorded
before it), so the hook needs no database, no git subprocess and no network;
the background flusher (or the next `periscope` command) does the linking.
Imports stay at os/sys/json/time: a test checks `sys.modules`.

It always exits 0 and prints nothing; problems go to hook.log.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Callable, Mapping
    from types import FrameType
    from typing import Any

    from periscope_hooks.git import RepoDirs


HOOK_TIME_LIMIT_S = 10  # a hung filesystem must not hang the commit forever
BACKGROUND_DELAY_S = "0.2"  # seconds the detached flusher waits before starting Python


def _log(state_dir: str | None, message: str, exc: BaseException | None = None) -> None:
    from periscope_hooks import logfile, paths

    if state_dir and logfile.log_line(os.path.join(state_dir, paths.HOOK_LOG_NAME), message, exc=exc):
        return
    logfile.log_line(paths.fallback_log_path(), message, exc=exc)


def _read_rewrite_pairs() -> list[list[str]]:
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return []
    try:
        if stdin.isatty():
            return []
        data = stdin.read()
    except (OSError, ValueError):
        return []
    pairs = []
    for line in data.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pairs.append([parts[0], parts[1]])
    return pairs


SQUASH_COMMANDS = ("fixup", "f", "squash", "s")  # rebase -i commands that fold into the commit before
# A rebase's `made` lists fewer than this many commits beyond its pairs' number (those made at its
# stops and breaks), or is left out (a git process per rebase, ~3 ms, not per replayed commit).
MADE_EXTRA_COMMITS = 100


def _first_line(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return None


def rebase_facts(dirs: RepoDirs, pairs: list[list[str]], head: str | None) -> dict[str, Any]:
    """What a rebase's post-rewrite record carries beyond git's pairs, read from the rebase's state
    folder (still there when git runs the hook), so that ingest can tell a commit git maps to a
    commit it did not make (docs/design.md, "What a rebase's pairs do not say"):

    - `onto`: the commit the rebase replays onto (git maps a commit skipped or dropped first to it);
    - `squashed`: only when a pair's new commit is the one before's too (a fixup or squash folds
      commits into one, and git (2.39, 2.47) also maps a skipped or emptied pick to the commit before):
      the old commits among those whose todo line (`done`) was a fixup or a squash;
    - `made`: the commits the rebase made that HEAD holds, `git rev-list HEAD ^onto ^orig-head`
      (newest first; left out when git cannot list them, or when there are as many as the pairs'
      number plus MADE_EXTRA_COMMITS: the list may be cut).  An amend at a `break` is named by no
      pair, and only this says that the amend, not the commit git's pair names, is on the branch;
      and a pair whose new commit the rebase did not make (a pick skipped onto an unchanged one)
      made nothing;
    - `merges`: the merge commits of the branch before the rebase, `git rev-list --merges
      orig-head ^onto` (left out when there are none, or MADE_EXTRA_COMMITS or more, or the
      rebase runs with --rebase-merges): a rebase without --rebase-merges flattens them, and
      git's pairs name none of them.

    The shim writes `onto`, `made` and `merges` in sh and leaves a record with `squashed` to Python."""
    from periscope_hooks import git

    facts: dict[str, Any] = {}
    for name in ("rebase-merge", "rebase-apply"):
        folder = os.path.join(dirs.git_dir, name)
        if os.path.isdir(folder):
            break
    else:
        return facts
    onto = _first_line(os.path.join(folder, "onto"))
    if onto and git.is_sha(onto):
        facts["onto"] = onto
        orig_head = _first_line(os.path.join(folder, "orig-head"))
        if head and git.is_sha(head) and orig_head and git.is_sha(orig_head):
            limit = len(pairs) + MADE_EXTRA_COMMITS
            made = git.commits_only_in(dirs, head, (onto, orig_head), limit)
            if made is not None and len(made) < limit:
                facts["made"] = made
        if orig_head and git.is_sha(orig_head) and not os.path.exists(os.path.join(folder, "refs-to-delete")):
            # The merges of the branch before the rebase: one the rebase flattened (no
            # --rebase-merges) is named by no pair, and its own usage follows to HEAD.  Not with
            # --rebase-merges (its `label`s leave refs-to-delete): a merge it recreates gets a
            # pair, and one without was deleted from the todo, dropped on purpose.
            merges = git.commits_only_in(dirs, orig_head, (onto,), MADE_EXTRA_COMMITS, merges=True)
            if merges and len(merges) < MADE_EXTRA_COMMITS:
                facts["merges"] = merges
    folded = [o for (o, n), (_, before) in zip(pairs[1:], pairs) if n == before]
    if folded:
        squash_olds: list[str] = []
        try:
            with open(os.path.join(folder, "done"), encoding="utf-8", errors="replace") as f:
                for line in f:
                    words = line.split()
                    if len(words) > 1 and words[0] in SQUASH_COMMANDS:
                        sha = words[2] if words[1] in ("-C", "-c") and len(words) > 2 else words[1]
                        squash_olds.append(sha)
        except OSError:
            pass  # the apply backend keeps no todo (and has no fixup or squash)
        facts["squashed"] = [
            o for o in dict.fromkeys(folded) if any(len(s) >= 4 and o.startswith(s) for s in squash_olds)
        ]
    return facts


def rebase_stop(dirs: RepoDirs) -> dict[str, str] | None:
    """A commit made while `rebase -i` stands at an `edit` (or a reword's) stop: the commit it
    stopped at and the commit its pick left at HEAD (`stopped-sha` and `amend` in the rebase's
    folder; a conflicted stop has no `amend`).  git's post-rewrite maps the stopped commit to HEAD
    at `--continue`, which is the last commit made on top when there is one: with this, ingest
    knows the stopped commit lives on as the one its pick left (rules.rebase_moves)."""
    from periscope_hooks import git

    folder = os.path.join(dirs.git_dir, "rebase-merge")
    stopped = _first_line(os.path.join(folder, "stopped-sha"))
    head = _first_line(os.path.join(folder, "amend")) if stopped else None
    if stopped and head and git.is_sha(stopped) and git.is_sha(head):
        return {"commit": stopped, "head": head}
    return None


def rebase_at_break(dirs: RepoDirs) -> bool:
    """Whether `rebase -i` stands at no pick's stop (a `break`, an `exec`, a failed `exec`, or the
    sequencer committing a squash or reword itself): its folder holds no `stopped-sha`, which an
    `edit` or conflicted pick leaves until `--continue`.  git maps a pick skipped or emptied later
    to HEAD, which may be a commit the user made there: no pick's replacement (ingest tells the
    sequencer's commits by their reflog subject; rules.rebase_moves)."""
    folder = os.path.join(dirs.git_dir, "rebase-merge")
    return os.path.isdir(folder) and not os.path.exists(os.path.join(folder, "stopped-sha"))


def build_record(name: str, args: list[str], dirs: RepoDirs, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    from periscope_hooks import git

    sha, branch = git.read_head(dirs)
    # The newest two entries: the one this commit wrote, and the one before it.  Ingest decides
    # from these recorded facts alone (a squash merge is still pending when the entry before the
    # commit is the squash's own), never from the live repository at flush time.
    entries = git.last_reflog_entries(dirs, 2)
    old, new, subject = entries[-1] if entries else (None, None, "")
    now_ms = int(time.time() * 1000)
    if name == "post-commit" and new is not None and new == sha and not env.get("GIT_COMMITTER_DATE"):
        # git's own time for this commit's reflog entry (whole seconds), as the shim writes it
        # (it has the line already; a `date` process would cost it ~1.5-3 ms).  A made-up
        # GIT_COMMITTER_DATE is in that line too: then the clock.
        seconds = git.last_reflog_seconds(dirs)
        if seconds is not None:
            now_ms = seconds * 1000
    record: dict[str, Any] = {
        "v": 1,
        "kind": "commit",
        "hook": name,
        "time": now_ms,
        "worktree": dirs.worktree,
        "sha": sha,
        "branch": branch,
        "reflog": {"old": old, "new": new, "subject": git.reflog_action(subject)[:200]},
        "rebasing": git.rebase_in_progress(dirs),
    }
    if name != "post-rewrite":
        prev = entries[-2] if len(entries) > 1 else None
        record["reflog_prev"] = (
            {"old": prev[0], "new": prev[1], "subject": git.reflog_action(prev[2])[:200]} if prev else None
        )
    if name != "post-rewrite" and record["rebasing"]:
        stop = rebase_stop(dirs)
        if stop:
            record["rebase_stop"] = stop
        elif rebase_at_break(dirs):
            record["rebase_break"] = True
    if name == "post-merge":
        # Plain git passes the flag as an argument; pre-commit in PRE_COMMIT_IS_SQUASH_MERGE
        # (and prek in PRE_COMMIT_SQUASH_MERGE).
        flag = args[0] if args else (env.get("PRE_COMMIT_IS_SQUASH_MERGE") or env.get("PRE_COMMIT_SQUASH_MERGE") or "0")
        record["squash"] = flag.strip() == "1"
    elif name == "post-rewrite":
        record["command"] = (args[0] if args else env.get("PRE_COMMIT_REWRITE_COMMAND", "")).strip() or "rebase"
        pairs = _read_rewrite_pairs()
        if not pairs:
            # pre-commit does not pass git's stdin on: recover the pairs from the reflog.
            from periscope_hooks.rewrite_recovery import recover_mappings

            pairs = [list(p) for p in recover_mappings(dirs.git_dir, dirs.common_dir, record["command"])]
            record["recovered"] = True
        record["pairs"] = pairs
        if record["command"] == "rebase" and record["rebasing"]:
            record.update(rebase_facts(dirs, pairs, sha))
    from periscope_hooks.agents import commit_agent

    agent = commit_agent(env)  # made by a command a coding agent ran (OpenCode, Claude Code)?
    if agent:
        record["agent"] = agent
    return record


# What every `python -c` we start runs first.  `-c` (and `-m`) put the current folder first on
# sys.path (as ""), and hooks, the detached flusher and agent hooks run in the user's repository: a
# `json.py` or a `periscope_hooks/` there was imported in our place, and run (found by a sweep: a
# project's `datetime.py` ran in every Claude Code hook).  This is Python 3.11's `-P` (safe_path),
# for 3.9 too; `-I` would also drop PYTHONPATH and user site-packages.  Only that entry goes: one
# naming the same folder by its path may be where periscope itself is installed from (an editable
# install of a clone you commit in), and an empty PYTHONPATH element is the user's own choice.
NO_CWD_IMPORTS = "import sys;sys.path[:]=[p for p in sys.path if p]"
MAIN_CODE = f"{NO_CWD_IMPORTS};from periscope_hooks.main import main;sys.exit(main(sys.argv[1:]))"


def inherited_fds() -> list[int]:
    """The descriptors above stderr this process was given by its parent (git's caller's `3>&1`,
    say): the inheritable ones, since every file Python opens itself is not (PEP 446)."""
    try:
        names = os.listdir("/proc/self/fd")  # Linux; /dev/fd elsewhere
    except OSError:
        try:
            names = os.listdir("/dev/fd")
        except OSError:
            names = [str(fd) for fd in range(3, 256)]
    found = []
    for name in names:
        fd = int(name)
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return found


def spawn_background_flush(state_dir: str) -> None:
    """Start `periscope flush` for this repository, detached: new session, no terminal, no pipes.

    The child must not inherit git's stdout/stderr, or any other descriptor the caller gave git,
    or a caller that waits for EOF on one (an IDE, a test, `git commit 3>&1 | cat`) would wait for
    the flush too (350 ms against 9 ms for a commit so piped, measured).
    """
    # 35 us (listing /proc/self/fd), once per spawn.
    for fd in inherited_fds():
        os.set_inheritable(fd, False)  # this process exits right after: nothing else needs them
    devnull = os.devnull
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, devnull, os.O_WRONLY, 0),
    ]
    code = MAIN_CODE
    # Through sh, so that the Python start-up (the flusher's main cost) comes after a short sleep:
    # by then git has finished the commit, and the two do not compete for the CPU.
    argv = [
        "/bin/sh",
        "-c",
        'sleep "$0"; exec "$@"',
        BACKGROUND_DELAY_S,
        sys.executable,
        "-c",
        code,
        "_background-flush",
        state_dir,
    ]
    from periscope_hooks.git import no_git_env  # the rule every git we run gets (already imported)

    os.posix_spawn("/bin/sh", argv, no_git_env(), file_actions=actions, setsid=True)


CHECKOUT_SUBJECT = "checkout: moving from "  # `git checkout <branch>`, `git switch`; a rebase writes `rebase ...`


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def default_branch(dirs: RepoDirs) -> str | None:
    """The branch refs/remotes/origin/HEAD names, else the first other remote's HEAD (by name);
    None when no remote names one (then main and master count).  Files only, as the shim reads."""
    remotes = os.path.join(dirs.common_dir, "refs", "remotes")
    try:
        names = sorted(os.listdir(remotes))
    except OSError:
        return None
    for name in ["origin", *names]:
        target = _read_text(os.path.join(remotes, name, "HEAD"))
        if target.startswith("ref: refs/remotes/"):
            branch = target[len("ref: refs/remotes/") :].partition("/")[2]
            if branch:
                return branch
    return None


def switches_to_default_branch(
    args: list[str],
    dirs: RepoDirs,
    env: Mapping[str, str] = os.environ,
    git_above: Callable[[], list[bytes] | None] = lambda: _git_ancestor_argv(),
) -> bool:
    """post-checkout: does this checkout switch to the default branch (so that the flusher should
    reconcile what a `git fetch` brought in)?  Not a file checkout (flag 0), not the first checkout
    of a clone or `worktree add` (old HEAD all zeros), not a rebase's checkouts, not a repository
    periscope never recorded in.  The shim decides the same in sh: both tell a rebase by the
    nearest git above the hook (through pre-commit or a team hook too): `git_above` gives its
    command line, or None where /proc cannot say."""
    if len(args) >= 3:
        old, flag = args[0], args[2]
    else:  # pre-commit passes git's arguments in the environment
        old = env.get("PRE_COMMIT_FROM_REF") or env.get("PRE_COMMIT_ORIGIN") or ""
        flag = env.get("PRE_COMMIT_CHECKOUT_TYPE") or ""
    if flag.strip() != "1" or not old.strip().strip("0"):
        return False
    from periscope_hooks import git

    if git.rebase_in_progress(dirs):
        return False
    if not os.path.isfile(os.path.join(dirs.common_dir, "periscope", "spool.jsonl")):
        return False
    head = _read_text(os.path.join(dirs.git_dir, "HEAD"))
    if not head.startswith("ref: refs/heads/"):
        return False  # detached: a rebase's `onto`, a tag, a commit
    # A rebase switching to the branch it rebases (`git rebase origin/main main`, up to date: an
    # attached checkout, no state folder): told as the shim tells it, by the git running the hook;
    # by the reflog entry the checkout wrote only where /proc cannot say (no reflog, or one a tool
    # named with GIT_REFLOG_ACTION, is then no switch).
    argv = git_above()
    if argv is not None:
        command = git_command_of(argv)
        if command is not None and command.startswith(b"rebase"):
            return False
    else:
        entries = git.last_reflog_entries(dirs, 1)
        if not entries or not entries[-1][2].startswith(CHECKOUT_SUBJECT):
            return False  # `rebase (start): checkout ...`, `rebase: checkout ...`
    branch: str | None = head[len("ref: refs/heads/") :]
    if branch == ".invalid" and git.uses_reftable(dirs):
        branch = git.read_head(dirs)[1]
        out = git.run_git(
            ["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"], git_dir=dirs.git_dir, check=False
        ).strip()
        default = out.partition("/")[2] or None
    else:
        default = default_branch(dirs)
    return branch == default if default else branch in ("main", "master")


def _hook_git_dir(env: Mapping[str, str]) -> str:
    """The git dir as the shim finds it: GIT_DIR, else `.git` in the top directory git runs hooks
    in (a file there, in a linked worktree or submodule, names the real one)."""
    git_dir = env.get("GIT_DIR") or ".git"
    if os.path.isfile(git_dir):
        try:
            with open(git_dir, encoding="utf-8", errors="replace") as f:
                line = f.readline().strip()
        except OSError:
            return git_dir
        if line.startswith("gitdir: "):
            return os.path.join(os.path.dirname(git_dir), line[len("gitdir: ") :])
    return git_dir


def _git_ancestor_argv(max_depth: int = 8) -> list[bytes] | None:
    """The command line of the nearest `git` process above this one (the git that runs the hook:
    our parent through the shim's Python fallback, our grandparent through pre-commit or a team
    hook), from /proc; None when there is none or no /proc."""
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if os.path.basename(argv[0]) == b"git":
                return argv
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 1 :].split()[1])  # "pid (comm) state ppid ..."
        except (OSError, ValueError, IndexError):
            return None
    return None


# git's own options that take their value as the next argument (`git -c k=v rebase`); the others
# are one argument each (`--no-pager`, `--git-dir=x`).
_GIT_OPTIONS_WITH_A_VALUE = (
    b"-c",
    b"-C",
    b"--git-dir",
    b"--work-tree",
    b"--namespace",
    b"--config-env",
    b"--super-prefix",
    b"--attr-source",
)


def git_command_of(argv: list[bytes]) -> bytes | None:
    """The command a git command line runs: the first argument after git's own options
    (`git -c color.ui=never rebase main` runs `rebase`: editors and tools pass such options)."""
    args = iter(argv[1:])
    for arg in args:
        if arg in _GIT_OPTIONS_WITH_A_VALUE:
            next(args, None)
        elif not arg.startswith(b"-"):
            return arg
    return None


def is_rebase_replay(env: Mapping[str, str] = os.environ) -> bool:
    """post-commit run for a commit `git rebase` replays (the shim's test, issue 11): a rebase is
    in progress and the git running the hook is `git rebase` itself (a commit made at a stop runs
    `git commit`).  Ingest gives replays no usage and post-rewrite records the mapping, so such a
    run writes nothing.  Files and /proc only: it runs before any other import."""
    git_dir = _hook_git_dir(env)
    if not (
        os.path.isdir(os.path.join(git_dir, "rebase-merge")) or os.path.isdir(os.path.join(git_dir, "rebase-apply"))
    ):
        return False
    argv = _git_ancestor_argv()
    command = git_command_of(argv) if argv is not None else None
    return command is not None and command.startswith(b"rebase")


def _alarm(signum: int, frame: FrameType | None) -> None:  # pragma: no cover - only on a hung filesystem
    raise TimeoutError(f"hook took longer than {HOOK_TIME_LIMIT_S}s")


def run(argv: list[str]) -> int:
    state_dir: str | None = None
    try:
        if TYPE_CHECKING:
            import signal as _signal
        else:
            import _signal  # the C module: `signal` would import enum on the hot path

        _signal.signal(_signal.SIGALRM, _alarm)
        _signal.alarm(HOOK_TIME_LIMIT_S)
        name, args = (argv[0] if argv else ""), argv[1:]
        if name not in ("post-commit", "post-merge", "post-rewrite", "post-checkout"):
            _log(None, f"hook: unknown hook name {name!r}; skipped")
            return 0
        if name == "post-commit" and is_rebase_replay():
            return 0  # before any import: a 100-commit rebase starts 100 of these
        from periscope_hooks import git, spool

        dirs = git.find_repo_dirs()
        if dirs is None:
            _log(None, f"hook {name}: not inside a git repository ({os.getcwd()}); skipped")
            return 0
        state_dir = os.path.join(dirs.common_dir, "periscope")
        if name == "post-checkout":  # no record: reconciliation decides from git, in the flusher
            if os.environ.get("PERISCOPE_BACKGROUND", "1") != "0" and switches_to_default_branch(args, dirs):
                spawn_background_flush(state_dir)
            return 0
        os.makedirs(state_dir, mode=0o700, exist_ok=True)  # private whatever the umask (000 made it 0777)
        record = build_record(name, args, dirs)
        spool.append(os.path.join(state_dir, "spool.jsonl"), record)
        # A rebase runs post-commit for every replayed commit and post-rewrite at the
        # end: one flusher then is enough, rather than one per replayed commit.
        replaying = name == "post-commit" and record.get("rebasing")
        if os.environ.get("PERISCOPE_BACKGROUND", "1") != "0" and not replaying:
            spawn_background_flush(state_dir)
    except BaseException as e:  # never fail the commit
        _log(state_dir, f"hook {argv[:1]} failed; the commit is unaffected", exc=e)
    finally:
        try:
            if TYPE_CHECKING:
                import signal as _signal
            else:
                import _signal

            _signal.alarm(0)
        except Exception:
            pass
    return 0
