"""Delivery throughput to a local receiver: batched (500 per request) against one request per event.

python bench/flush_throughput.py [--events 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(n: int, per_request: int) -> float:
    with tempfile.TemporaryDirectory(prefix="periscope-flush-bench-") as tmp:
        os.environ.update(
            {"HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/c", "XDG_DATA_HOME": f"{tmp}/d", "XDG_STATE_HOME": f"{tmp}/s"}
        )
        from periscope_hooks import delivery
        from periscope_hooks.config import load_user_config
        from periscope_hooks.sinks.http import HttpSink
        from periscope_hooks.state import open_state_db
        from testing.delivery import fill_outbox, make_events, point_config_at
        from testing.receiver import Receiver

        sd = Path(tmp) / "state"
        fill_outbox(sd, make_events(n))
        with Receiver() as receiver:
            point_config_at(receiver.url)
            sink = HttpSink(load_user_config())
            sink.max_batch_events = per_request
            conn = open_state_db(sd)
            start = time.perf_counter()
            result = delivery.deliver(conn, sink, budget_seconds=600)
            elapsed = time.perf_counter() - start
            sink.close()
            conn.close()
            assert result.delivered == n and len(receiver.events) == n, result
        return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3, help="rounds of batched + one-per-request, side by side")
    args = ap.parse_args()
    batched, single = [], []
    for _ in range(args.runs):
        batched.append(run(args.events, 500))
        single.append(run(args.events, 1))
    b, s = statistics.median(batched), statistics.median(single)
    print(
        f"{args.events} events to a local receiver, median of {args.runs} runs: batched {b:,.0f} events/s"
        f" ({', '.join(f'{x:,.0f}' for x in batched)}), one request per event {s:,.0f} events/s"
        f" ({', '.join(f'{x:,.0f}' for x in single)}); ratio {b / s:.0f}x"
    )
    print("target (>= 5,000 events/s batched):", "met" if b >= 5000 else "NOT met")


if __name__ == "__main__":
    main()
