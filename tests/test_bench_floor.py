"""bench/ingest_floor.py writes message rows by hand (the least work that stores a spool): a new
column in state.db broke it for a whole session before anyone ran it (stop 28's m021).  It runs
here at a tiny size, so the next column breaks a test instead.  Timings are never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "ingest_floor.py"


def test_the_floor_bench_still_stores_a_spool():
    out = subprocess.run(
        [sys.executable, str(BENCH), "--messages", "200", "--runs", "1"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "process_spool / floor" in out.stdout
