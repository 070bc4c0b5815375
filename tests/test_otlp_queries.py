"""docs/otlp.md's team queries, run for real on ClickHouse's engine in-process (chdb) over records
laid out as the collector's ClickHouse exporter writes them (otel_logs), every record inserted
twice (a resend after a crash): the answers must count each event once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from periscope_hooks.config import OtlpConfig
from periscope_hooks.sinks.otlp import encode
from testing.otlp import OTEL_LOGS_DDL, clickhouse_row, need, team_events
from testing.otlp_receiver import decode_request, records_of

pytestmark = pytest.mark.chdb
DOC = Path(__file__).resolve().parent.parent / "docs" / "otlp.md"


def doc_queries() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- query: (\w+) -->\s*```sql\n(.*?)```", text, re.S))


# chdb runs in a child process, never in the test worker's: it carries its own SQLite, and once it
# was loaded a worker's later state.db calls ran in chdb's copy (seen in a native stack) and hung a
# CI run in a busy wait; two SQLite libraries in one process also break each other's POSIX locks.
CHILD = """
import json, sys
from chdb import session
job = json.load(sys.stdin)
sess = session.Session(job["dir"])
sess.query(job["ddl"])
sess.query(job["insert"])
out = {name: json.loads(sess.query(sql, "JSONCompact").data())["data"] for name, sql in job["queries"].items()}
sess.close()
print(json.dumps(out))
"""
COUNT = "SELECT count(), uniqExact(LogAttributes['log.record.uid']) FROM otel_logs"


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    import importlib.util
    import subprocess
    import sys

    need(importlib.util.find_spec("chdb") is not None, "chdb-core (pip install chdb-core)")
    evs, answers = team_events()
    # What a collector relays: our protobuf, decoded, flattened as the exporter flattens it.
    body, ctype = encode(evs, OtlpConfig(resource_attributes={"team": "core"}), "http/protobuf")
    rows = [clickhouse_row(r) for r in records_of(decode_request(body, ctype))]
    data = "\n".join(json.dumps(r) for r in rows + rows)  # every record twice
    columns = (
        "Timestamp Int64, SeverityText String, SeverityNumber UInt8, ServiceName String, Body String,"
        " ResourceAttributes Map(String, String), ScopeName String, ScopeVersion String,"
        " LogAttributes Map(String, String), EventName String"
    )
    insert = (
        "INSERT INTO otel_logs (Timestamp, SeverityText, SeverityNumber, ServiceName, Body, ResourceAttributes,"
        " ScopeName, ScopeVersion, LogAttributes, EventName)"
        " SELECT fromUnixTimestamp64Nano(Timestamp, 'UTC'), SeverityText, SeverityNumber, ServiceName, Body,"
        " ResourceAttributes, ScopeName, ScopeVersion, LogAttributes, EventName"
        f" FROM format(JSONEachRow, '{columns}', $${data}$$)"
    )
    job = {
        "dir": str(tmp_path_factory.mktemp("chdb")),
        "ddl": OTEL_LOGS_DDL,
        "insert": insert,
        "queries": {**doc_queries(), "count": COUNT},
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], input=json.dumps(job), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {name: [tuple(row) for row in data] for name, data in json.loads(proc.stdout).items()}
    return results, answers, len(evs)


def test_every_record_is_there_twice(clickhouse):
    results, _, n = clickhouse
    assert results["count"] == [(2 * n, n)]


@pytest.mark.parametrize("name", ["cost_per_day_and_model", "cost_per_commit", "cache_hit_rate", "agent_vs_human"])
def test_team_query_gives_the_right_answer(clickhouse, name):
    results, answers, _ = clickhouse
    got = results[name]
    want = answers[name]
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert [str(x) for x in g[:-1]] == [str(x) for x in w[:-1]], (g, w)
        assert float(g[-1]) == pytest.approx(w[-1], rel=1e-9, abs=1e-9), (g, w)


def test_the_doc_holds_the_four_queries():
    assert set(doc_queries()) == {"cost_per_day_and_model", "cost_per_commit", "cache_hit_rate", "agent_vs_human"}
