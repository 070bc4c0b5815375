from __future__ import annotations

from periscope_hooks import output
from periscope_hooks.sinks.local import iter_body_chunks


def export(event_type: str | None) -> int:
    """Print the local store's events, one JSON object per line (schema 1).

    When the local store is the sink, this repository's pending events are
    delivered first, so what was just committed is in the export.
    """
    from periscope_hooks.config import load_user_config

    if load_user_config().sink_kind == "local":
        from periscope_hooks.flush import flush_state_dir
        from periscope_hooks.repo import resolve_state_dir

        flush_state_dir(resolve_state_dir(None), wait=True)
    # The stored bodies are the compact, key-sorted JSON lines export prints: streamed as they are,
    # in constant memory (decoding and re-encoding them cost ~24 s per 1M events), as bytes, a
    # chunk of lines per write (a write per line cost ~1 s per 1M events); a reader that leaves
    # (`| head`) is met at the next write.
    for chunk in iter_body_chunks(event_type):
        output.write_bytes(chunk)
    output.flush()
    return 0
