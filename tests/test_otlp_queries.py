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


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    try:
        from chdb import session
    except ImportError:
        session = None
    need(session is not None, "chdb-core (pip install chdb-core)")
    evs, answers = team_events()
    # What a collector relays: our protobuf, decoded, flattened as the exporter flattens it.
    body, ctype = encode(evs, OtlpConfig(resource_attributes={"team": "core"}), "http/protobuf")
    rows = [clickhouse_row(r) for r in records_of(decode_request(body, ctype))]
    sess = session.Session(str(tmp_path_factory.mktemp("chdb")))
    sess.query(OTEL_LOGS_DDL)
    data = "\n".join(json.dumps(r) for r in rows + rows)  # every record twice
    columns = (
        "Timestamp Int64, SeverityText String, SeverityNumber UInt8, ServiceName String, Body String,"
        " ResourceAttributes Map(String, String), ScopeName String, ScopeVersion String,"
        " LogAttributes Map(String, String), EventName String"
    )
    sess.query(
        "INSERT INTO otel_logs (Timestamp, SeverityText, SeverityNumber, ServiceName, Body, ResourceAttributes,"
        " ScopeName, ScopeVersion, LogAttributes, EventName)"
        " SELECT fromUnixTimestamp64Nano(Timestamp, 'UTC'), SeverityText, SeverityNumber, ServiceName, Body,"
        " ResourceAttributes, ScopeName, ScopeVersion, LogAttributes, EventName"
        f" FROM format(JSONEachRow, '{columns}', $${data}$$)"
    )
    yield sess, answers, len(evs)
    sess.close()


def run(sess, sql: str) -> list[tuple]:
    result = sess.query(sql, "JSONCompact")
    return [tuple(row) for row in json.loads(result.data())["data"]]


def test_every_record_is_there_twice(clickhouse):
    sess, _, n = clickhouse
    assert run(sess, "SELECT count(), uniqExact(LogAttributes['log.record.uid']) FROM otel_logs") == [(2 * n, n)]


@pytest.mark.parametrize("name", ["cost_per_day_and_model", "cost_per_commit", "cache_hit_rate", "agent_vs_human"])
def test_team_query_gives_the_right_answer(clickhouse, name):
    sess, answers, _ = clickhouse
    queries = doc_queries()
    got = run(sess, queries[name])
    want = answers[name]
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert [str(x) for x in g[:-1]] == [str(x) for x in w[:-1]], (g, w)
        assert float(g[-1]) == pytest.approx(w[-1], rel=1e-9, abs=1e-9), (g, w)


def test_the_doc_holds_the_four_queries():
    assert set(doc_queries()) == {"cost_per_day_and_model", "cost_per_commit", "cache_hit_rate", "agent_vs_human"}
