from __future__ import annotations

from pathlib import Path

from periscope_hooks import output
from periscope_hooks.repo import resolve_state_dir


def flush(repo: str | None, background: bool, retry_dead: bool) -> int:
    from periscope_hooks import envvars

    envvars.check_all()  # a bad tuning variable is one line here, not a logged line in the background
    state_dir = resolve_state_dir(repo)
    if retry_dead:
        from periscope_hooks import outbox
        from periscope_hooks.state import open_state_db

        conn = open_state_db(state_dir)
        try:
            n = outbox.retry_dead(conn)
        finally:
            conn.close()
        if n:
            output.info(f"re-queued {n} dead-lettered event(s)")
    if background:
        from periscope_hooks.hook import spawn_background_flush

        spawn_background_flush(str(state_dir))
        return 0
    from periscope_hooks.flush import backlog, flush_state_dir

    result = flush_state_dir(
        Path(state_dir),
        wait=True,
        retrying=_say_retrying,
        on_long_ingest=output.ingesting,
        on_refill=output.storing_again,
    )
    if result is None:
        return output.error("another flush is still running for this repository", "try again in a minute")
    # A foreground flush drains the backlog; whatever it could not deliver is counted, with why.
    left, why = backlog(Path(state_dir), result)
    if result.error and not left:  # a broken config or sink setting: nothing waits because of it yet
        return output.error(result.error, "nothing waits in the outbox now; new events will, until this is fixed")
    if result.error:
        return output.error(
            f"delivery incomplete: {result.error} ({left} event(s) remain in the outbox)",
            "events stay in the outbox; see periscope status",
        )
    if left:
        output.info(f"{left} event(s) remain in the outbox: {why}")
    return 0


def _say_retrying(error: str, seconds_left: float) -> None:
    output.info(
        f"delivery failed: {error}; retrying for up to {max(1, round(seconds_left))} s (PERISCOPE_FLUSH_BUDGET)."
        " Ctrl-C stops; the events stay in the outbox"
    )
