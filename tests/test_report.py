from __future__ import annotations

import csv
import io
import json
import math

from testing.util import append_spool, commit, message_record, periscope, session_record


def test_report_by_commit_adds_up_exactly_to_the_spool(repo):
    costs = [0.1, 0.2, 0.3, 0.0123, 1e-7]
    recs = [message_record(repo.path, tokens=(i + 1, 2 * i, i % 2, 3, 4), cost=c) for i, c in enumerate(costs)]
    append_spool(repo.path, *recs[:3])
    a = commit(repo.path, "a")
    append_spool(repo.path, *recs[3:])
    b = commit(repo.path, "b")
    rows = repo.report()
    assert [r["sha"] for r in rows] == [a, b]
    for r in rows:
        assert set(r) >= {"sha", "branch", "kind", "origin", "messages", "tokens", "cost"}
    assert rows[0]["cost"] == round(math.fsum(costs[:3]), 10)
    assert sum(r["tokens"]["input"] for r in rows) == sum(rec["tokens"]["input"] for rec in recs)
    assert round(math.fsum(r["cost"] for r in rows), 10) == round(math.fsum(costs), 10)


def test_report_other_groupings_and_formats(repo):
    append_spool(repo.path, session_record("s1", "First"), session_record("s2", "Sub", parent_id="s1"))
    append_spool(
        repo.path,
        message_record(repo.path, session_id="s1", model="m-a", provider="p1", cost=1.0),
        message_record(repo.path, session_id="s2", model="m-b", provider="p2", cost=2.0),
        message_record(repo.path, session_id="s1", model="m-a", provider="p1", cost=0.5),
    )
    commit(repo.path, "x")
    by_model = {r["model"]: r for r in repo.report("model")}
    assert by_model["m-a"]["messages"] == 2 and by_model["m-a"]["cost"] == 1.5 and by_model["m-b"]["provider"] == "p2"
    by_session = {r["session"]: r for r in repo.report("session")}
    assert by_session["s2"]["is_subagent"] is True and by_session["s1"]["title"] == "First"
    assert [r["branch"] for r in repo.report("branch")] == ["main"]
    days = repo.report("day")
    assert len(days) == 1 and days[0]["messages"] == 3
    out = periscope("report", "--by", "model", "--format", "csv", cwd=repo.path).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["model"] for r in rows} == {"m-a", "m-b"} and "cache_write" in rows[0]
    table = periscope("report", cwd=repo.path).stdout
    assert "sha" in table.splitlines()[0] and "human" in table


def test_report_outside_a_repository_and_when_empty(tmp_path):
    assert json.loads(periscope("report", "--format", "json", cwd=tmp_path).stdout) == []
    assert "no AI usage" in periscope("report", cwd=tmp_path).stdout


def test_bad_usage_exits_2(tmp_path):
    assert periscope("report", "--by", "planet", cwd=tmp_path, check=False).returncode == 2
