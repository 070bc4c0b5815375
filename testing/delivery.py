"""Helpers for delivery tests: fill an outbox, point the config at a receiver, check the books."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from periscope_hooks import events, outbox
from periscope_hooks.state import open_state_db, transaction


def make_events(n: int, prefix: str = "ev", pad: int = 0) -> List[Dict[str, Any]]:
    out = []
    for i in range(n):
        e = {"event_id": events.event_id("test", prefix, str(i)), "type": "message", "schema": 1,
             "time": events.rfc3339(), "client": {"name": "periscope-hooks", "version": "test"}, "n": i}
        if pad:
            e["pad"] = "x" * pad
        out.append(e)
    return out


def fill_outbox(state_dir: Path, evs: List[Dict[str, Any]]) -> None:
    conn = open_state_db(state_dir)
    with transaction(conn):
        for e in evs:
            outbox.enqueue(conn, e)
    conn.close()


def point_config_at(url: str, **extra: Any) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"endpoint": url, **extra}))
    return path


def books(state_dir: Path) -> Dict[str, Dict[str, int]]:
    conn = open_state_db(state_dir)
    try:
        return outbox.counts(conn)
    finally:
        conn.close()


def assert_books_balance(state_dir: Path, expect_pending: int = 0) -> None:
    for kind, c in books(state_dir).items():
        assert c["created"] == c["delivered"] + c["pending"] + c["dead"] + c["dropped"], (kind, c)
    assert sum(c["pending"] for c in books(state_dir).values()) == expect_pending
