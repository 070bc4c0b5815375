"""The `periscope` command line: parse arguments, call plain functions.

`periscope hook ...` is what git runs on every commit, so it is dispatched
before argparse (and everything else) is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:  # argparse stays off the commit hook's path
    import argparse

# What `periscope hook NAME` takes (install_uninstall.HOOK_NAMES, spelled here so that the hook's
# start imports no installer).
HOOK_NAMES = ("post-commit", "post-merge", "post-rewrite", "post-checkout")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook"] and args[1:] not in (["-h"], ["--help"]):  # git never asks a hook for help
        from periscope_hooks.hook import run

        return run(args[1:])
    if args[:2] == ["agent-hook", "claude-code"]:  # run by Claude Code's hooks: as lean as the git hook
        from periscope_hooks.agents.claude_code import run_hook

        return run_hook(_stdin_bytes())
    if args[:1] == ["_background-flush"] and len(args) == 2:
        from periscope_hooks.flush import background_child

        return background_child(args[1])
    return _main(args)


def _stdin_bytes() -> bytes:
    try:
        return b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read(1 << 20)
    except (OSError, ValueError):
        return b""


def _build_parser() -> argparse.ArgumentParser:
    import argparse

    from periscope_hooks import __version__

    parser = argparse.ArgumentParser(prog="periscope", description="Link AI coding-assistant usage to git commits.")
    parser.add_argument("--version", action="version", version=f"periscope-hooks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def repo_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo", default=None, help="repository path (default: the current directory)")

    p = sub.add_parser(
        "install-hooks", help="install the post-commit, post-merge, post-rewrite and post-checkout hooks"
    )
    p.add_argument(
        "--global-hooks-path",
        action="store_true",
        help="install into a hooks folder other repositories share (a global core.hooksPath, or a hooks"
        " folder linked elsewhere) on purpose, so every repository using it records",
    )
    repo_arg(p)
    p = sub.add_parser("uninstall-hooks", help="restore the hooks that were there before")
    p.add_argument(
        "--global-hooks-path",
        action="store_true",
        help="remove them from a hooks folder other repositories share, on purpose: every repository"
        " using it stops recording",
    )
    repo_arg(p)

    p = sub.add_parser(
        "install-opencode",
        help="install the OpenCode plugin (per repository: kept out of git; --global: listed in ~/.config/opencode)",
    )
    p.add_argument("--global", dest="global_", action="store_true", help="for the user, not just this repository")
    repo_arg(p)
    p = sub.add_parser("uninstall-opencode", help="remove what install-opencode added")
    p.add_argument("--global", dest="global_", action="store_true")
    repo_arg(p)

    p = sub.add_parser(
        "install-claude-code", help="install the Claude Code capture hooks (.claude/settings.local.json)"
    )
    p.add_argument("--global", dest="global_", action="store_true", help="for the user (~/.claude/settings.json)")
    repo_arg(p)
    p = sub.add_parser("uninstall-claude-code", help="remove what install-claude-code added")
    p.add_argument("--global", dest="global_", action="store_true")
    repo_arg(p)

    p = sub.add_parser("hook", help="run by the git hooks (always exits 0)")
    p.add_argument("name", choices=HOOK_NAMES)
    p.add_argument("args", nargs="*")

    p = sub.add_parser("flush", help="deliver the outbox to the configured sink")
    p.add_argument("--background", action="store_true", help="detach and return at once")
    p.add_argument("--retry-dead", action="store_true", help="re-queue dead-lettered events first")
    repo_arg(p)

    sub.add_parser("login", help="sign in to Periscope in the browser")
    sub.add_parser("logout", help="forget the cached sign-in")
    sub.add_parser("whoami", help="show who is signed in")

    p = sub.add_parser("status", help="diagnose hooks, plugin, config, sign-in and delivery")
    repo_arg(p)

    p = sub.add_parser("report", help="AI usage per commit, model, branch, session, day or agent")
    p.add_argument("--by", choices=("commit", "model", "branch", "session", "day", "agent"), default="commit")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--since",
        metavar="DATE",
        help="only usage from DATE on (YYYY-MM-DD or YYYY-MM-DDTHH:MM, local time; a trailing Z for UTC)",
    )
    p.add_argument("--until", metavar="DATE", help="only usage up to DATE (a date includes that whole day)")
    repo_arg(p)

    p = sub.add_parser("prices", help="the price table in use, its age, and the recorded models it lacks")
    p.add_argument("--update", action="store_true", help="fetch fresh prices (genai-prices' published table)")
    repo_arg(p)

    # --- dashboard (issue 15) ---
    p = sub.add_parser("dashboard", help="write (and open) a local HTML dashboard of the report's figures")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--repo", default=None, help="repository path (default: the current directory)")
    scope.add_argument("--all-repos", action="store_true", help="every repository periscope has read on this machine")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write (default: the user state dir)")
    p.add_argument("--no-open", dest="open_browser", action="store_false", help="do not open a browser")
    p.add_argument("--since", default=None, metavar="WHEN", help="from this date (YYYY-MM-DD, local) or date-time")
    p.add_argument("--until", default=None, metavar="WHEN", help="up to this date (inclusive) or date-time")
    p.add_argument("--no-titles", dest="titles", action="store_false", help="leave session titles out")
    p.add_argument(
        "--basis",
        choices=("auto", "reported", "list"),
        default="auto",
        help="money as the agents reported it, or at list prices (auto: list prices when nothing reported a cost)",
    )
    p.add_argument("--format", choices=("html", "json"), default="html", help="json: print the aggregate")
    p.add_argument(
        "--serve", action="store_true", help="serve it on 127.0.0.1 (random port, secret path), fresh on every load"
    )
    # --- end dashboard ---

    p = sub.add_parser("export", help="print the local store's events as JSON lines")
    p.add_argument("--type", choices=("message", "commit", "rewrite"), default=None)

    p = sub.add_parser("log", help="git log with each commit's AI usage (from its git note, else the state database)")
    repo_arg(p)
    p.add_argument("git_args", nargs="*", help="arguments passed on to git log (after --)")
    return parser


def _dispatch(ns: argparse.Namespace) -> int:
    cmd = ns.command
    if cmd == "install-hooks":
        from periscope_hooks.commands.install_uninstall import install_hooks

        return install_hooks(ns.repo, global_hooks_path=ns.global_hooks_path)
    if cmd == "uninstall-hooks":
        from periscope_hooks.commands.install_uninstall import uninstall_hooks

        return uninstall_hooks(ns.repo, ns.global_hooks_path)
    if cmd == "install-opencode":
        from periscope_hooks.commands.opencode import install_opencode

        return install_opencode(global_=ns.global_, repo=ns.repo)
    if cmd == "uninstall-opencode":
        from periscope_hooks.commands.opencode import uninstall_opencode

        return uninstall_opencode(global_=ns.global_, repo=ns.repo)
    if cmd in ("install-claude-code", "uninstall-claude-code"):
        from periscope_hooks.commands import claude_code

        if cmd == "install-claude-code":
            return claude_code.install_claude_code(global_=ns.global_, repo=ns.repo)
        return claude_code.uninstall_claude_code(global_=ns.global_, repo=ns.repo)
    if cmd == "hook":
        from periscope_hooks.hook import run

        return run([ns.name, *ns.args])
    if cmd == "flush":
        from periscope_hooks.commands.flush import flush

        return flush(repo=ns.repo, background=ns.background, retry_dead=ns.retry_dead)
    if cmd in ("login", "logout", "whoami"):
        from periscope_hooks.commands import login

        result: int = getattr(login, cmd)()
        return result
    if cmd == "status":
        from periscope_hooks.commands.status import status

        return status(ns.repo)
    if cmd == "report":
        from periscope_hooks.commands.report import report

        return report(repo=ns.repo, by=ns.by, fmt=ns.format, since=ns.since, until=ns.until)
    if cmd == "prices":
        from periscope_hooks.commands.prices import prices

        return prices(repo=ns.repo, update=ns.update)
    if cmd == "dashboard":
        from periscope_hooks.commands.dashboard import dashboard_command

        return dashboard_command(
            repo=ns.repo,
            all_repos=ns.all_repos,
            out=ns.out,
            open_browser=ns.open_browser,
            since=ns.since,
            until=ns.until,
            titles=ns.titles,
            fmt=ns.format,
            serve=ns.serve,
            basis=ns.basis,
        )
    if cmd == "export":
        from periscope_hooks.commands.export import export

        return export(event_type=ns.type)
    if cmd == "log":
        from periscope_hooks.commands.log import log

        return log(repo=ns.repo, git_args=ns.git_args)
    raise AssertionError(cmd)


def _check_working_directory() -> None:
    """A shell left in a folder that was deleted (a removed worktree, say): git and every path
    lookup would fail on it."""
    import os

    from periscope_hooks.errors import UserError

    try:
        os.getcwd()
    except FileNotFoundError:
        raise UserError("the current folder no longer exists", "cd into your repository and run it again") from None


def _is_locked(e: BaseException) -> bool:
    import sqlite3

    return isinstance(e, sqlite3.OperationalError) and str(e).startswith(
        ("database is locked", "database table is locked")
    )


def _stdout_to_devnull() -> None:
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(args: list[str]) -> int:
    parser = _build_parser()
    ns = parser.parse_args(args)  # exits 2 on bad usage
    from periscope_hooks import output
    from periscope_hooks.errors import UserError

    try:
        if ns.command != "hook":  # the hook says nothing, whatever happens
            if sys.stdout is None:  # started with its output closed (`>&-`): before any work
                raise UserError("standard output is closed", "send it somewhere, e.g. > /dev/null")
            output.tolerate_the_terminal_encoding()
            _check_working_directory()
        code = _dispatch(ns)
        if ns.command != "hook":
            output.flush()  # a write that fails (a full disk) is told here, not by Python at exit
        return code
    except UserError as e:
        return output.error(e.message, e.hint) if sys.stderr is not None else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`periscope export | head`): stop quietly, as a Unix tool killed by
        # SIGPIPE does (status 128 + 13), and point stdout at /dev/null so that the
        # interpreter's final flush of the buffered rest does not complain either.
        _stdout_to_devnull()
        return 141
    except output.OutputError as e:
        _stdout_to_devnull()  # the buffered rest cannot go either: no second complaint at exit
        return output.error(f"could not write the output: {e}", "free some space, or send it elsewhere")
    except Exception as e:  # the user sees one line; the traceback goes to the log
        from periscope_hooks import logfile, paths
        from periscope_hooks.state import DatabaseUnopenable

        if isinstance(e, DatabaseUnopenable):
            return output.error(
                f"{ns.command}: cannot open {e.path}: {e.why}",
                "it must be a file you can read and write (state.db may be deleted: it is rebuilt from the spool)",
            )

        if _is_locked(e):  # another process writes: the same state when it is done, nothing lost
            return output.error(
                f"{ns.command}: a database of periscope's is locked by another process",
                "nothing is lost: run the command again when that process is done"
                " (a long periscope flush, or a program holding state.db or events.db open)",
            )
        log_path = paths.user_log_path()
        logfile.log_line(log_path, f"periscope {ns.command} failed", exc=e)
        return output.error(f"{ns.command} failed: {type(e).__name__}: {e}", f"details in {log_path}")


if __name__ == "__main__":
    raise SystemExit(main())
