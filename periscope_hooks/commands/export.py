from __future__ import annotations

import json

from periscope_hooks import output
from periscope_hooks.sinks.local import iter_events


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
    for event in iter_events(event_type):
        output.out(json.dumps(event, separators=(",", ":"), sort_keys=True))
    return 0
