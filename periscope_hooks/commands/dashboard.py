"""`periscope dashboard`: the report's figures as one self-contained HTML page (or as JSON)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from periscope_hooks import dashboard, output
from periscope_hooks.dashboard import Source, Window
from periscope_hooks.errors import UserError
from periscope_hooks.jsonout import write_indented


def _sources(repo: str | None, all_repos: bool) -> list[Source]:
    from periscope_hooks import paths
    from periscope_hooks.repo import resolve_dirs

    if all_repos:
        found = dashboard.known_sources()
        if not found:
            raise UserError(
                "no repositories known yet",
                "run `periscope flush` (or `periscope dashboard`) once inside each repository",
            )
        return found
    dirs = resolve_dirs(repo, required=bool(repo))
    if dirs is None:
        return [Source("(outside any repository)", paths.no_repo_state_dir())]
    source = Source(dirs.worktree or dirs.common_dir, paths.state_dir_for_common_dir(dirs.common_dir))
    dashboard.remember(source)
    return [source]


@contextlib.contextmanager
def _writing(path: Path, shown: str | None = None) -> Iterator[None]:
    """A file that cannot be written there (a folder in its place or its parent's, no permission)
    is one line naming it (as the user wrote it: `shown`)."""
    name = shown or path
    if path.is_dir():  # `--out .`: the temporary file beside it would have an empty name (ValueError)
        raise UserError(
            f"could not write {name}: it is a folder", "give --out a file path in a folder you can write to"
        )
    try:
        yield
    except OSError as e:
        why = "it is a folder" if path.is_dir() else e.strerror or type(e).__name__
        raise UserError(
            f"could not write {name}: {why}", "give --out a file path in a folder you can write to"
        ) from None


def _out_path(out: str) -> Path:
    """Where `--out` writes: through a symbolic link to the file it names, and never over anything
    but a regular file.  The page is written beside the target and renamed over it, so a device
    (`--out /dev/null`, as root), a FIFO or a link itself would have been replaced by the page."""
    path = Path(os.path.realpath(out))
    try:
        mode = path.stat().st_mode
    except OSError:
        return path  # not there yet (or unreachable: _writing names the error)
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a folder: _writing's own line
        raise UserError(f"could not write {out}: it is not a regular file", "give --out a file path")
    return path


def dashboard_command(
    *,
    repo: str | None,
    all_repos: bool,
    out: str | None,
    open_browser: bool,
    since: str | None,
    until: str | None,
    titles: bool,
    fmt: str,
    serve: bool = False,
    basis: str = "auto",
) -> int:
    from periscope_hooks.commands.report import parse_window

    window = Window(*parse_window(since, until))  # read as `report --since/--until` reads them
    sources = _sources(repo, all_repos)
    target = _out_path(out) if out else None  # refused before the work, not after it
    if serve:
        return _serve(sources, window, titles=titles, basis=basis, open_browser=open_browser, label_rows=all_repos)
    aggregate = dashboard.build_aggregate(
        sources,
        window,
        titles=titles,
        basis=basis,
        on_long_ingest=output.ingesting,
        on_note=lambda note: output.info(f"note: {note}"),
        label_rows=all_repos,
    )
    if fmt == "json":
        # Written as it is made: the whole text at once was ~100 MB more at 50,000 commits.
        if target is not None:
            with _writing(target, out), dashboard.private_file(target) as f:
                write_indented(aggregate, f.write)
                f.write("\n")
            output.out(f"wrote {target}")
        else:
            write_indented(aggregate, output.write)
            output.out()
        return 0
    path = target or dashboard.default_output_path()
    with _writing(path, out):
        dashboard.write_private(path, dashboard.render_html(aggregate))
    output.out(f"dashboard written to {path.resolve()}")
    if open_browser and not dashboard.open_in_browser(path):
        output.info("no browser could be opened; open the file above yourself")
    return 0


def _serve(
    sources: list[Source], window: Window, *, titles: bool, basis: str, open_browser: bool, label_rows: bool
) -> int:
    from periscope_hooks.dashboard_server import DashboardServer

    server = DashboardServer(
        lambda: dashboard.build_aggregate(sources, window, titles=titles, basis=basis, label_rows=label_rows),
        dashboard.render_html,
    )
    output.out(f"serving the dashboard at {server.url} (Ctrl-C stops)")
    import sys

    sys.stdout.flush()
    if open_browser and not dashboard.open_in_browser_url(server.url):
        output.info("no browser could be opened; open the address above yourself")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
