"""The delivery part of `periscope status`: config, sign-in, port, books, dead letters."""

from __future__ import annotations

import os
import sqlite3
import time

from periscope_hooks import outbox, paths, sinks
from periscope_hooks.config import OtlpConfig
from periscope_hooks.errors import UserError
from periscope_hooks.sinks import OTLP_SINK_NAME
from periscope_hooks.statedb import Meta, get_meta

Line = tuple[str, str]


def otlp_sink_line(otlp: OtlpConfig, config_path: str) -> str:
    """The OTLP sink as `status` shows it: header names only, never their values."""
    import importlib.util

    from periscope_hooks.git import sanitize_url

    headers = ", ".join(f"{name}=<hidden>" for name in sorted(otlp.headers)) or "none"
    if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.proto") is None:
        from periscope_hooks.sinks.otlp import install_hint

        return (
            f"OTLP collector {sanitize_url(otlp.endpoint)}: error: the otlp sink needs the opentelemetry-proto"
            f" package hint: {install_hint()} (events are kept meanwhile)"
        )
    return (
        f"OTLP collector {sanitize_url(otlp.endpoint)} ({otlp.protocol}, compression {otlp.compression or 'none'},"
        f" headers: {headers}; session titles {'sent' if otlp.session_titles else 'not sent'}; config {config_path})"
    )


def status_lines(conn: sqlite3.Connection | None) -> list[Line]:
    from periscope_hooks.auth import port_in_use, redirect_port
    from periscope_hooks.config import load_user_config
    from periscope_hooks.git import sanitize_url

    lines: list[Line] = []
    cfg = None
    try:
        cfg = load_user_config()
        if cfg.sink_kind == "otlp" and cfg.otlp is not None:
            lines.append(("sink", otlp_sink_line(cfg.otlp, cfg.path)))
        elif cfg.sink_kind == "endpoint" and cfg.endpoint:
            lines.append(("sink", f"Periscope endpoint {sanitize_url(cfg.endpoint)} (config {cfg.path})"))
        else:
            lines.append(("sink", f"local store {paths.local_store_path()} (no endpoint in {cfg.path})"))
            from periscope_hooks.sinks.local import damaged_copies

            asides = damaged_copies()
            if asides:
                from periscope_hooks.local_store_refill import stored_again

                here = "done" if conn is not None and stored_again(conn) else "at its next flush (periscope flush)"
                for aside in asides:
                    lines.append(
                        (
                            "local store",
                            f"was damaged and started anew (the damaged copy: {aside}); each repository's"
                            f" events are stored in the new one again (this one's: {here})",
                        )
                    )
    except UserError as e:
        lines.append(("config", f"error: {e.message} hint: {e.hint}"))
    last = get_meta(conn, Meta.LAST_DELIVERY_ERROR) if conn is not None else None
    if cfg is not None and cfg.sink_kind == "endpoint" and cfg.signs_in:
        # This repository's last error, or any repository's flusher (the marker the plugin reads too).
        if (last and "sign in again" in last) or paths.sign_in_required_path().exists():
            lines.append(("sign-in", "sign in again: run periscope login (events are kept meanwhile)"))
        elif not os.path.exists(paths.token_cache_path()):
            lines.append(("sign-in", "not signed in: run periscope login"))
        else:
            try:
                from periscope_hooks.auth import Auth

                who = Auth.cached_username()
                lines.append(("sign-in", f"signed in as {who}" if who else "not signed in: run periscope login"))
            except (OSError, ValueError) as e:
                lines.append(("sign-in", f"token cache unreadable ({type(e).__name__}): run periscope login"))
        try:
            port = redirect_port()
            lines.append(
                (
                    f"port {port}",
                    f"in use by another process (sign-in needs it: find it with 'lsof -i :{port}')"
                    if port_in_use(port)
                    else "free for the sign-in redirect",
                )
            )
        except UserError as e:
            lines.append(("sign-in port", f"error: {e.message} hint: {e.hint}"))
    if conn is None:
        return lines
    until = int(get_meta(conn, Meta.RETRY_AFTER_UNTIL_MS, "0") or 0)
    from periscope_hooks.sinks.http import HttpSink
    from periscope_hooks.sinks.local import LocalStoreSink

    kind = cfg.sink_kind if cfg is not None else "local"
    sink_name = {"endpoint": HttpSink.name, "otlp": OTLP_SINK_NAME}.get(kind, LocalStoreSink.name)
    endpoint = None
    if cfg is not None and kind == "endpoint":
        endpoint = cfg.endpoint
    elif cfg is not None and kind == "otlp" and cfg.otlp is not None:
        endpoint = cfg.otlp.endpoint
    receiver = sinks.identity(sink_name, endpoint)
    # Shown only while this receiver is the one that was told to wait (a switch clears it at the next flush).
    if until > time.time() * 1000 and get_meta(conn, Meta.DELIVERY_SINK, receiver) == receiver:
        lines.append(("retry-after", f"the endpoint asked to wait {int(until / 1000 - time.time()) + 1}s more"))
    for kind, c in outbox.counts(conn).items():
        lines.append(
            (
                f"{kind} events",
                f"created {c['created']} = delivered {c['delivered']} + pending {c['pending']}"
                f" + dead-lettered {c['dead']} + dropped {c['dropped']}",
            )
        )
    rejected = int(get_meta(conn, Meta.PARTIAL_REJECTED_TOTAL, "0") or 0)
    if rejected:
        lines.append(
            (
                "partial success",
                f"the receiver dropped {rejected} log record(s) it was sent (not resent, as OTLP requires);"
                f" last: {get_meta(conn, Meta.PARTIAL_REJECTED_LAST)}",
            )
        )
    dead = outbox.dead_letters(conn)
    if dead:
        for row in dead[:5]:
            lines.append(("dead letter", f"{row['type']} {row['event_id']}: {row['reason']}"))
        lines.append(("dead letters", f"{len(dead)} in all; periscope flush --retry-dead re-queues them"))
    if last:
        lines.append(("delivery", f"last error: {last}"))
    return lines
