from __future__ import annotations

import sqlite3

from periscope_hooks import output, paths
from periscope_hooks.errors import UserError
from periscope_hooks.sinks.local import damaged_copies, iter_body_chunks, mark_for_check
from periscope_hooks.state import is_corrupt


def export(event_type: str | None) -> int:
    """Print the local store's events, one JSON object per line (schema 1).

    When the local store is the sink, this repository's pending events are
    delivered first, so what was just committed is in the export.
    """
    from periscope_hooks.config import load_user_config

    if load_user_config().sink_kind == "local":
        from periscope_hooks.flush import StateFolderNotWritable, flush_state_dir
        from periscope_hooks.repo import resolve_state_dir

        try:
            flush_state_dir(resolve_state_dir(None), wait=True, on_refill=output.storing_again)
        except StateFolderNotWritable as e:  # export reads the store: what it holds is still there
            output.info(
                f"note: {e.message}: exporting what the local store holds, without this repository's newest events"
            )
    # The stored bodies are the compact, key-sorted JSON lines export prints: streamed as they are,
    # in constant memory (decoding and re-encoding them cost ~24 s per 1M events), as bytes, a
    # chunk of lines per write (a write per line cost ~1 s per 1M events); a reader that leaves
    # (`| head`) is met at the next write.
    for aside in damaged_copies():
        output.warn(
            f"the local store was damaged and started anew ({aside}): each repository's events are"
            " stored in the new one again at its next flush; repositories not flushed since are"
            " missing here (docs/troubleshooting.md)"
        )
    try:
        for chunk in iter_body_chunks(event_type):
            output.write_bytes(chunk)
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
            store = paths.local_store_path()
            raise UserError(
                f"cannot open the local store {store} ({e})",
                f"SQLite writes its -wal and -shm files beside it: check that {store.parent} can be written",
            ) from None
        if not is_corrupt(e):
            raise
        mark_for_check()  # the next flush checks the whole store, and moves it aside
        raise UserError(
            f"the local store {paths.local_store_path()} is damaged ({e})",
            "run `periscope flush`: it moves it aside, starts a new one and stores this repository's"
            " events in it again (every other repository's at its next flush)",
        )
    output.flush()
    return 0
