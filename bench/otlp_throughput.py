"""Delivery throughput of the otlp sink (http/protobuf, http/json; gzip) beside the Periscope HTTP sink,
each to its local test receiver, on realistic events (a commit every 25 messages).

python bench/otlp_throughput.py [--events 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def realistic_events(n: int) -> list[dict[str, Any]]:
    from periscope_hooks import events

    url = "https://example.com/acme/widgets.git"
    session = {"parent_id": None, "title": "Fix login", "agent": "build"}
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    i = 0
    while len(out) < n:
        i += 1
        msg = {
            "id": f"msg_{i:07d}",
            "time_ms": 1_767_225_600_000 + i * 1000,
            "session_id": f"ses_{i // 200}",
            "agent": "build",
            "provider": "anthropic",
            "model": "claude-sonnet-4",
            "input": 1200,
            "output": 310,
            "reasoning": 0,
            "cache_read": 8000,
            "cache_write": 400,
            "cost": 0.0123,
            "branch": "main",
            "sha": f"{i:040x}",
            "list_cost_micro": 12300,
            "cost_source": "reported",
            "price_snapshot": None,
        }
        pending.append(msg)
        out.append(events.message_event(msg, session, url))
        if len(pending) == 25:
            out.append(
                events.commit_event(
                    repo_id="r",
                    repo_url=url,
                    branch="main",
                    sha=f"{i:040x}",
                    parents=[f"{i - 25:040x}"],
                    kind="commit",
                    origin="human",
                    time_ms=msg["time_ms"] + 1,
                    messages=[events.event_message(m) for m in pending],
                    sessions={msg["session_id"]: session},
                )
            )
            pending = []
    return out[:n]


def run(evs: list[dict[str, Any]], mode: str) -> tuple[float, float]:
    """(events/s, request bytes per event) for one delivery of `evs` through the real flusher loop."""
    with tempfile.TemporaryDirectory(prefix="periscope-otlp-bench-") as tmp:
        os.environ.update(
            {"HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/c", "XDG_DATA_HOME": f"{tmp}/d", "XDG_STATE_HOME": f"{tmp}/s"}
        )
        from periscope_hooks import delivery
        from periscope_hooks.config import load_user_config
        from periscope_hooks.sinks import get_sink
        from periscope_hooks.state import open_state_db
        from testing.delivery import fill_outbox, point_config_at
        from testing.otlp import point_config_at_collector
        from testing.otlp_receiver import OtlpReceiver
        from testing.receiver import Receiver

        sd = Path(tmp) / "state"
        fill_outbox(sd, evs)
        receiver: Any = Receiver() if mode == "periscope" else OtlpReceiver()
        with receiver:
            if mode == "periscope":
                point_config_at(receiver.url)
            else:
                point_config_at_collector(receiver.url, protocol=mode, compression="gzip")
            load_user_config()
            sink = get_sink()
            conn = open_state_db(sd)
            start = time.perf_counter()
            result = delivery.deliver(conn, sink, budget_seconds=600)
            elapsed = time.perf_counter() - start
            sink.close()
            conn.close()
            got = len(receiver.events) if mode == "periscope" else len(receiver.records)
            assert result.delivered == len(evs) and got == len(evs), result
            size = sum(r["size"] if isinstance(r, dict) else r.size for r in receiver.requests)
        return len(evs) / elapsed, size / len(evs)


def encode_ms(evs: list[dict[str, Any]], mode: str, rounds: int = 7) -> float:
    """The sender's own cost for one 500-event batch (encode + gzip), median: the receivers above
    decode in the same process, so their throughput includes the test receiver's work."""
    import gzip
    import json

    from periscope_hooks.config import OtlpConfig
    from periscope_hooks.sinks.otlp import encode

    batch, times = evs[:500], []
    for _ in range(rounds):
        start = time.perf_counter()
        if mode == "periscope":
            gzip.compress(json.dumps({"events": batch}, separators=(",", ":")).encode())
        else:
            gzip.compress(encode(batch, OtlpConfig(), mode)[0], mtime=0)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3, help="rounds of every mode, side by side")
    args = ap.parse_args()
    evs = realistic_events(args.events)
    modes = ["periscope", "http/protobuf", "http/json"]
    rates: dict[str, list[float]] = {m: [] for m in modes}
    sizes: dict[str, float] = {}
    for _ in range(args.runs):
        for m in modes:
            rate, size = run(evs, m)
            rates[m].append(rate)
            sizes[m] = size
    base = statistics.median(rates["periscope"])
    print(f"{args.events} events (a commit every 25 messages), gzip, median of {args.runs} runs:")
    for m in modes:
        med = statistics.median(rates[m])
        print(
            f"  {m:14s} {med:9,.0f} events/s ({', '.join(f'{x:,.0f}' for x in rates[m])})"
            f"  {sizes[m]:6.0f} bytes/event on the wire  {med / base:.2f}x the Periscope sink"
            f"  sender: {encode_ms(evs, m):.1f} ms per 500-event batch"
        )


if __name__ == "__main__":
    main()
