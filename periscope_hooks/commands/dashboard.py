"""`periscope dashboard`: the report's figures as one self-contained HTML page (or as JSON)."""

from __future__ import annotations

import contextlib
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
def _writing(path: Path) -> Iterator[None]:
    """A file that cannot be written there (a folder in its place or its parent's, no permission)
    is one line naming it."""
    if path.is_dir():  # `--out .`: the temporary file beside it would have an empty name (ValueError)
        raise UserError(
            f"could not write {path}: it is a folder", "give --out a file path in a folder you can write to"
        )
    try:
        yield
    except OSError as e:
        why = "it is a folder" if path.is_dir() else e.strerror or type(e).__name__
        raise UserError(
            f"could not write {path}: {why}", "give --out a file path in a folder you can write to"
        ) from None


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
    if serve:
        return _serve(sources, window, titles=titles, basis=basis, open_browser=open_browser)
    aggregate = dashboard.build_aggregate(sources, window, titles=titles, basis=basis, on_long_ingest=output.ingesting)
    if fmt == "json":
        # Written as it is made: the whole text at once was ~100 MB more at 50,000 commits.
        if out:
            with _writing(Path(out)), dashboard.private_file(Path(out)) as f:
                write_indented(aggregate, f.write)
                f.write("\n")
            output.out(f"wrote {Path(out).resolve()}")
        else:
            write_indented(aggregate, output.write)
            output.out()
        return 0
    path = Path(out) if out else dashboard.default_output_path()
    with _writing(path):
        dashboard.write_private(path, dashboard.render_html(aggregate))
    output.out(f"dashboard written to {path.resolve()}")
    if open_browser and not dashboard.open_in_browser(path):
        output.info("no browser could be opened; open the file above yourself")
    return 0


def _serve(sources: list[Source], window: Window, *, titles: bool, basis: str, open_browser: bool) -> int:
    from periscope_hooks.dashboard_server import DashboardServer

    server = DashboardServer(
        lambda: dashboard.build_aggregate(sources, window, titles=titles, basis=basis), dashboard.render_html
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
