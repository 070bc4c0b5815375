"""Git facts.

Two halves: `read_*` functions read the repository's files directly (HEAD, refs,
the HEAD reflog) for the commit hook's hot path, which must not pay for a git
subprocess; `run_git` and friends use the git binary for everything else
(background processing, install, report).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # never true when run: typing stays off the commit hook's hot path
    from collections.abc import Mapping, Sequence


# Only `os` at import time: this module is on the commit hook's hot path, and
# with `from __future__ import annotations` the typing names below are never
# evaluated, so typing, re, subprocess and dataclasses are not imported here.


class RepoDirs:
    __slots__ = ("git_dir", "common_dir", "worktree")

    def __init__(self, git_dir: str, common_dir: str, worktree: str) -> None:
        self.git_dir = git_dir  # this worktree's git dir (.git, or .git/worktrees/<name>)
        self.common_dir = common_dir  # shared by all worktrees: refs, objects and our state
        self.worktree = worktree  # the worktree's top directory (realpath), "" for a bare repo

    def __repr__(self) -> str:
        return f"RepoDirs({self.git_dir!r}, {self.common_dir!r}, {self.worktree!r})"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _read_names(path: str) -> str | None:
    """A file of ref names (HEAD, a symref, packed-refs, head-name), decoded as the file system
    decodes names (os.fsdecode): a name then opens the ref file it names, whatever its bytes.  Read
    as UTF-8 with replacement, a branch named with bytes that are not UTF-8 (or any non-ASCII name
    under a Latin-1 locale) pointed at no file, and its commits were never recorded."""
    try:
        with open(path, "rb") as f:
            return os.fsdecode(f.read())
    except OSError:
        return None


def _shown(name: str) -> str:
    """A ref name read by _read_names as text to record: git's names are bytes, UTF-8 by custom."""
    return os.fsencode(name).decode("utf-8", "replace")


def _gitfile_target(dotgit: str) -> str | None:
    """A `.git` file (linked worktree, submodule) says `gitdir: <path>`."""
    text = _read(dotgit)
    if text and text.startswith("gitdir:"):
        target = text[len("gitdir:") :].strip()
        return os.path.normpath(os.path.join(os.path.dirname(dotgit), target))
    return None


def find_repo_dirs(cwd: str | None = None, env: Mapping[str, str] | None = None) -> RepoDirs | None:
    """Locate the git dirs from the environment git gives hooks, or by walking up from cwd."""
    environ = os.environ if env is None else env
    cwd = os.path.realpath(cwd or os.getcwd())
    git_dir = environ.get("GIT_DIR")
    worktree = environ.get("GIT_WORK_TREE")
    if git_dir:
        git_dir = os.path.normpath(os.path.join(cwd, git_dir))
        if os.path.isfile(git_dir):
            git_dir = _gitfile_target(git_dir) or git_dir
        if not worktree:
            worktree = cwd  # git runs hooks at the worktree's top
    else:
        d = cwd
        while True:
            dotgit = os.path.join(d, ".git")
            if os.path.isdir(dotgit):
                git_dir = dotgit
                break
            if os.path.isfile(dotgit):
                git_dir = _gitfile_target(dotgit)
                break
            parent = os.path.dirname(d)
            if parent == d:
                return None
            d = parent
        if not git_dir:
            return None
        worktree = worktree or d
    if not os.path.isfile(os.path.join(git_dir, "HEAD")):
        return None
    common = _read(os.path.join(git_dir, "commondir"))
    common_dir = os.path.normpath(os.path.join(git_dir, common.strip())) if common else git_dir
    return RepoDirs(
        os.path.realpath(git_dir), os.path.realpath(common_dir), os.path.realpath(worktree) if worktree else ""
    )


_HEX = frozenset("0123456789abcdef")


def is_sha(text: str) -> bool:
    return len(text) in (40, 64) and _HEX.issuperset(text)


def _resolve_ref(common_dir: str, git_dir: str, ref: str) -> str | None:
    for base in (git_dir, common_dir):
        text = _read_names(os.path.join(base, ref))
        if text is not None:
            text = text.strip()
            if text.startswith("ref: "):
                return _resolve_ref(common_dir, git_dir, text[5:].strip())
            return text if is_sha(text) else None
    packed = _read_names(os.path.join(common_dir, "packed-refs")) or ""
    for line in packed.splitlines():
        if line.endswith(" " + ref) and not line.startswith(("#", "^")):
            return line.split(" ", 1)[0]
    return None


def read_head(dirs: RepoDirs) -> tuple[str | None, str | None]:
    """(HEAD's SHA, branch name or None when detached), read from files.

    During a rebase HEAD is detached; the branch being rebased is reported.  A reftable
    repository (see uses_reftable) is asked through git instead.
    """
    head = (_read_names(os.path.join(dirs.git_dir, "HEAD")) or "").strip()
    branch: str | None = None
    if head.startswith("ref: "):
        ref = head[5:].strip()
        branch = _shown(ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else ref)
        sha = _resolve_ref(dirs.common_dir, dirs.git_dir, ref)
        if sha is None and uses_reftable(dirs):
            return _reftable_head(dirs)
    else:
        sha = head if is_sha(head) else None
        branch = _rebase_branch(dirs)
    return sha, branch


def _rebase_branch(dirs: RepoDirs) -> str | None:
    for d in ("rebase-merge", "rebase-apply"):
        name = _read_names(os.path.join(dirs.git_dir, d, "head-name"))
        if name and name.strip().startswith("refs/heads/"):
            return _shown(name.strip()[len("refs/heads/") :])
    return None


# --- reftable (git 2.45+, `git init --ref-format=reftable`) ------------------------------
# Refs and reflogs live in binary tables there; HEAD is a stub naming `refs/heads/.invalid`.
# The files backend never gets here: read_head only asks once a ref file did not resolve
# (an unborn branch costs one extra read of the config), so its hook pays nothing.


def uses_reftable(dirs: RepoDirs) -> bool:
    """Whether the repository keeps its refs in reftable (`extensions.refStorage = reftable`)."""
    config = (_read(os.path.join(dirs.common_dir, "config")) or "").lower()
    return "refstorage" in config and "reftable" in config


def _git_out(dirs: RepoDirs, args: list[str]) -> str | None:
    try:
        return run_git(args, git_dir=dirs.git_dir, check=True, timeout=5)
    except GitError:
        return None


def _reftable_head(dirs: RepoDirs) -> tuple[str | None, str | None]:
    out = (_git_out(dirs, ["rev-parse", "--symbolic-full-name", "HEAD"]) or "").strip()
    branch = out[len("refs/heads/") :] if out.startswith("refs/heads/") else (out if out != "HEAD" else None)
    if branch is None:
        branch = _rebase_branch(dirs)
    sha = (_git_out(dirs, ["rev-parse", "-q", "--verify", "HEAD"]) or "").strip()
    return (sha if is_sha(sha) else None), branch


def _reftable_reflog(dirs: RepoDirs, count: int) -> list[tuple[str | None, str | None, str]]:
    """HEAD's newest `count` reflog entries, oldest first, through `git log -g`.  git prints
    each entry's new SHA; the old SHA is the next older entry's new one (zeros for the first)."""
    out = _git_out(dirs, ["log", "-g", f"-n{count + 1}", "--format=%H%x09%gs", "HEAD", "--"]) or ""
    newest_first = [line.partition("\t") for line in out.split("\n") if line]
    entries: list[tuple[str | None, str | None, str]] = []
    for i, (new, _, subject) in enumerate(newest_first[:count]):
        old = newest_first[i + 1][0] if i + 1 < len(newest_first) else "0" * len(new)
        entries.append((old, new, subject))
    entries.reverse()
    return entries


# --- HEAD's reflog (files backend) ---------------------------------------------------------

REFLOG_WINDOW = 8192  # one read from the end holds the newest lines, unless a message is longer


def _reflog_tail(dirs: RepoDirs, max_bytes: int, min_lines: int = 0) -> list[bytes]:
    """The complete lines among the last `max_bytes` of HEAD's reflog, oldest first; the window
    grows (x8) until it holds `min_lines` complete lines or the whole file: a one-line commit
    message over 8 KiB (agents write them) must not hide the entry that describes the commit."""
    try:
        with open(os.path.join(dirs.git_dir, "logs", "HEAD"), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            while True:
                start = max(0, size - max_bytes)
                f.seek(start)
                data = f.read()
                lines = data.rstrip(b"\n").split(b"\n")
                if start:
                    lines = lines[1:]  # after a seek the first line may be cut
                if not start or len(lines) >= min_lines:
                    return lines
                max_bytes *= 8
    except OSError:
        return []


def _reflog_entry(raw: bytes) -> tuple[str | None, str | None, str]:
    head, _, subject = raw.decode("utf-8", "replace").partition("\t")
    parts = head.split(" ")
    return (parts[0], parts[1], subject) if len(parts) >= 2 else (None, None, subject)


def last_reflog_entries(dirs: RepoDirs, count: int) -> list[tuple[str | None, str | None, str]]:
    """HEAD's newest `count` reflog entries (old SHA, new SHA, subject), oldest first."""
    lines = [raw for raw in _reflog_tail(dirs, REFLOG_WINDOW, min_lines=count) if raw]
    if not lines and uses_reftable(dirs) and not os.path.exists(os.path.join(dirs.git_dir, "logs", "HEAD")):
        return _reftable_reflog(dirs, count)
    return [_reflog_entry(raw) for raw in lines[-count:]]


def last_reflog_seconds(dirs: RepoDirs) -> int | None:
    """The time git wrote HEAD's newest reflog entry (epoch seconds, from the line itself: the
    committer date, GIT_COMMITTER_DATE if set); None when unreadable (reftable, no reflog)."""
    lines = [raw for raw in _reflog_tail(dirs, REFLOG_WINDOW, min_lines=1) if raw]
    if not lines:
        return None
    head = lines[-1].partition(b"\t")[0].split(b" ")
    stamp = head[-2] if len(head) >= 4 else b""
    # As the shim reads it: digits, no leading zero (JSON would not take it as written).
    if not stamp.isdigit() or stamp.startswith(b"0"):
        return None
    return int(stamp)


def read_last_reflog(dirs: RepoDirs) -> tuple[str | None, str | None, str]:
    """(old SHA, new SHA, subject) of HEAD's newest reflog entry; Nones when there is none."""
    entries = last_reflog_entries(dirs, 1)
    return entries[-1] if entries else (None, None, "")


def reflog_action(subject: str) -> str:
    """What git did, without the commit message: `commit (amend): Fix login` -> `commit (amend)`.

    The message is the user's text and is never recorded.  Merges and pulls keep git's own
    description (`merge topic: Fast-forward`), which tells a fast-forward from a merge commit.
    """
    action, sep, description = subject.partition(": ")
    if sep and action.startswith(("merge", "pull")) and not action.startswith("pull --rebase"):
        return subject
    return action


def read_reflog(dirs: RepoDirs, max_bytes: int = 1 << 16) -> list[tuple[str, str, str]]:
    """HEAD's recent reflog entries, oldest first: (old SHA, new SHA, subject)."""
    lines = _reflog_tail(dirs, max_bytes)
    if not lines and uses_reftable(dirs):
        return [(o, n, s) for o, n, s in _reftable_reflog(dirs, 200) if o and n]
    entries = [_reflog_entry(raw) for raw in lines]
    return [(o, n, s) for o, n, s in entries if o and n]


def rebase_in_progress(dirs: RepoDirs) -> bool:
    return any(os.path.isdir(os.path.join(dirs.git_dir, d)) for d in ("rebase-merge", "rebase-apply"))


# --- the one way git is run (never on the commit hook's hot path) -------------------------

# The variables that tie git to one repository, worktree or index: `git rev-parse
# --local-env-vars` (git 2.39), the list git itself clears when it moves to another repository.
# Git exports several of them to hooks (GIT_DIR, GIT_INDEX_FILE, GIT_PREFIX, ...), and whatever we
# start from a hook (the background flusher and the git it runs) must find its repository from
# --git-dir or its working directory instead: an inherited GIT_INDEX_FILE or GIT_DIR would point
# git at the wrong index or repository.  Like pre-commit's `no_git_env`, the `git -c` settings
# (GIT_CONFIG_PARAMETERS, GIT_CONFIG_COUNT/KEY_n/VALUE_n) and everything else (GIT_SSH_COMMAND,
# GIT_CONFIG_GLOBAL, the author identity) are kept: they are the user's, not the repository's.
REPOSITORY_ENV = frozenset(
    (
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_INTERNAL_SUPER_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
        "GIT_QUARANTINE_PATH",  # set for pre-receive hooks: objects not yet in the repository
    )
)


def no_git_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment (os.environ by default) without REPOSITORY_ENV."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in REPOSITORY_ENV}


class GitError(Exception):
    """git could not be started, timed out, or exited non-zero (`check`).  `stderr` is git's own
    message (first 200 characters), for a one-line error."""

    def __init__(self, message: str, stderr: str = "", returncode: int | None = None) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


def run_git(
    args: list[str],
    *,
    cwd: str | None = None,
    git_dir: str | None = None,
    input: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = 30,
) -> str:
    """Run git and return its stdout: the one wrapper every git call outside the hook goes through.

    The repository comes from `git_dir` (--git-dir) or `cwd`, never from inherited variables
    (no_git_env); `extra_env` adds variables on top.  Output is decoded as UTF-8 with
    replacement: diffs and notes carry whatever bytes the repository holds, and a decoding error
    must not end a background run.  `timeout` (seconds, None for none) bounds a hung git.
    """
    import subprocess

    cmd = ["git", f"--git-dir={git_dir}", *args] if git_dir else ["git", *args]
    env = no_git_env()
    if extra_env:
        env.update(extra_env)
    what = f"git {' '.join(args[:2])}"
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            input=input,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"{what}: no answer within {timeout:g} s") from None
    except OSError as e:
        raise GitError(f"{what}: {e}") from None
    if check and proc.returncode != 0:
        stderr = proc.stderr.strip()[:200]
        raise GitError(f"{what} failed: {stderr}", stderr=stderr, returncode=proc.returncode)
    return proc.stdout


def rev_parse_dirs(path: str, located: Mapping[str, str] | None = None) -> RepoDirs | None:
    """Like find_repo_dirs, but asks git (for commands run by people, where cost does not matter).
    `located`: GIT_DIR and GIT_WORK_TREE as the person set them, which git then follows too."""
    args = ["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"]
    try:
        try:
            out = run_git([*args, "--show-toplevel"], cwd=path, extra_env=located).splitlines()
        except GitError:  # no work tree here: a bare repository, or inside .git
            out = run_git(args, cwd=path, extra_env=located).splitlines()
    except (GitError, NotADirectoryError, FileNotFoundError):
        return None
    if len(out) > 3:  # a path with a newline in it: the lines cannot say which is which
        return _rev_parse_dirs_one_at_a_time(path, located)
    if len(out) < 2:
        return None
    top = out[2] if len(out) > 2 else ""
    return RepoDirs(os.path.realpath(out[0]), os.path.realpath(out[1]), os.path.realpath(top) if top else "")


def _rev_parse_dirs_one_at_a_time(path: str, located: Mapping[str, str] | None) -> RepoDirs | None:
    """rev_parse_dirs for a path holding a newline: one question a git call, each answer whole (a
    walk up looking for `.git` found the repository around a bare one instead)."""

    def ask(option: str) -> str:
        out = run_git(["rev-parse", "--path-format=absolute", option], cwd=path, extra_env=located, check=False)
        return out[:-1] if out.endswith("\n") else out

    git_dir, common_dir = ask("--git-dir"), ask("--git-common-dir")
    if not git_dir or not common_dir:
        return None
    top = ask("--show-toplevel")
    return RepoDirs(os.path.realpath(git_dir), os.path.realpath(common_dir), os.path.realpath(top) if top else "")


def commits_only_in(
    dirs: RepoDirs, head: str, others: Sequence[str], limit: int, *, merges: bool = False
) -> list[str] | None:
    """`git rev-list --max-count=limit head ^other...`: the commits of head's history that no
    other's holds, newest first (`merges`: only the merge commits); None when git cannot tell (an
    object missing, a shallow clone)."""
    only = ["--merges"] if merges else []
    out = _git_out(dirs, ["rev-list", *only, f"--max-count={limit}", head, *(f"^{o}" for o in others)])
    if out is None:
        return None
    shas = out.split()
    return shas if all(is_sha(s) for s in shas) else None


def commit_parents(common_dir: str, sha: str) -> list[str]:
    out = run_git(["rev-list", "--parents", "-n", "1", sha], git_dir=common_dir).split()
    return out[1:]


def remote_url(common_dir: str) -> str | None:
    """origin's URL (else the first remote's), without credentials."""
    try:
        out = run_git(["config", "--get-regexp", r"^remote\..*\.url$"], git_dir=common_dir, check=False)
    except GitError:
        return None
    urls = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        urls[key[len("remote.") : -len(".url")]] = value.strip()
    url = urls.get("origin") or next(iter(urls.values()), None)
    return sanitize_url(url) if url else None


_SCHEME_RE = r"^([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#]*)(.*)$"
_SCP_RE = r"^([^/]*@)?([^@/:]+):(?!//)(.*)$"  # user info may hold a ":password"


def sanitize_url(url: str) -> str:
    """Drop user names, passwords and tokens from a remote URL.

    https://user:tok@host/x.git -> https://host/x.git; ssh://git@host/x -> ssh://host/x;
    git@host:org/x.git -> host:org/x.git; query strings and fragments are dropped too.
    """
    import re

    url = url.strip()
    m = re.match(_SCHEME_RE, url)
    if m:
        scheme, authority, rest = m.groups()
        before_at, at, after_at = (authority + rest).partition("@")
        if "@" not in authority and at and any(c in before_at for c in ":?#"):
            # A password holding an unencoded `/`, `?` or `#` ends the authority early
            # (https://alice:tok/en@host/x): what comes before the `@` is still user info.
            end = next((i for i, c in enumerate(after_at) if c in "/?#"), len(after_at))
            authority, rest = after_at[:end], after_at[end:]
        host = authority.rpartition("@")[2]
        rest = rest.split("?", 1)[0].split("#", 1)[0]
        return f"{scheme}://{host}{rest}"
    m = re.match(_SCP_RE, url)
    if m and not os.path.isabs(url):
        return f"{m.group(2)}:{m.group(3)}"
    return url
