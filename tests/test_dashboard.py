"""`periscope dashboard`: its aggregate is the report's figures (real git, real hooks, the real CLI)."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import pytest

from testing.dashboard import T0_MS, Scenario, build_scenario, isolated_env
from testing.util import append_spool, commit, git, init_repo, message_record, periscope, report_json, session_record

GROUPINGS = ("commit", "model", "branch", "session", "day")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    base = tmp_path_factory.mktemp("dashboard")
    return build_scenario(base / "repo", isolated_env(base / "home"))


def _aggregate(s: Scenario, *args: str, env: dict[str, str] | None = None) -> dict:
    return json.loads(s.periscope("dashboard", "--format", "json", *args, env=env).stdout)


def _report(s: Scenario, by: str, env: dict[str, str] | None = None) -> list[dict]:
    return json.loads(s.periscope("report", "--by", by, "--format", "json", env=env).stdout)


def _fsum(values) -> float:
    return round(math.fsum(values), 10)


def test_every_figure_is_the_reports(scenario):
    agg = _aggregate(scenario)
    report = {by: _report(scenario, by) for by in GROUPINGS}

    def by_key(rows, *key):
        return sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))

    assert by_key(agg["commits"], "sha") == by_key(report["commit"], "sha")
    assert [c["cost"] for c in agg["commits"]] == sorted((c["cost"] for c in report["commit"]), reverse=True)
    strip = ("cache_hit_rate", "cumulative_cost")
    assert by_key([{k: v for k, v in r.items() if k not in strip} for r in agg["models"]], "provider", "model") == (
        by_key(report["model"], "provider", "model")
    )
    assert [{k: v for k, v in r.items() if k not in strip} for r in agg["days"]] == report["day"]
    assert by_key(agg["branches"], "branch") == by_key(report["branch"], "branch")
    assert by_key(agg["sessions"], "session") == by_key(report["session"], "session")

    t = agg["totals"]
    assert t["cost"] == _fsum(d["cost"] for d in report["day"]) == _fsum(m["cost"] for m in report["model"])
    assert t["messages"] == sum(d["messages"] for d in report["day"])
    assert t["commits"] == len(report["commit"])
    assert t["linked"]["cost"] == _fsum(c["cost"] for c in report["commit"])
    assert t["pending"]["messages"] == 2 and t["linked"]["messages"] + 2 == t["messages"]
    for f in ("input", "cache_read"):
        assert t["tokens"][f] == sum(m["tokens"][f] for m in report["model"])
    assert t["cache_hit_rate"] == round(
        t["tokens"]["cache_read"] / (t["tokens"]["input"] + t["tokens"]["cache_read"] + t["tokens"]["cache_write"]), 6
    )
    # The cumulative line ends at the total; the stacked split adds up to the report's days and models.
    assert agg["days"][-1]["cumulative_cost"] == t["cost"]
    for d in report["day"]:
        assert _fsum(c["cost"] for c in agg["day_model"] if c["day"] == d["day"]) == d["cost"]
    for m in report["model"]:
        cells = [c for c in agg["day_model"] if (c["provider"], c["model"]) == (m["provider"], m["model"])]
        assert _fsum(c["cost"] for c in cells) == m["cost"] and sum(c["messages"] for c in cells) == m["messages"]
    # Rewrites followed: the amend, the squash, the dropped and the reset-away commit are each there once.
    assert "amend" in {c["kind"] for c in agg["commits"]}
    assert sum(1 for c in agg["commits"] if c.get("reachable") is False) == 2
    assert len({c["sha"] for c in agg["commits"]}) == len(agg["commits"])
    # Sub-agent sessions: rows of their own, or rolled up into their parent's (subagent_share).
    sub_cost = _fsum(
        [s["cost"] for s in report["session"] if s["is_subagent"]]
        + [s["subagent_share"]["cost"] for s in report["session"] if s.get("subagent_share")]
    )
    assert sub_cost > 0 and agg["subagents"]["subagent"]["cost"] == sub_cost
    assert agg["subagents"]["share"] == round(sub_cost / t["cost"], 6)
    assert sum(o["commits"] for o in agg["by_origin"]) == t["commits"]
    assert sum(b["commits"] for b in agg["commit_cost_histogram"]) == t["commits"]


def test_no_titles_drops_every_session_title(scenario):
    agg = _aggregate(scenario, "--no-titles")
    assert agg["sessions"] and all(s["title"] is None for s in agg["sessions"])
    assert "Fix the login flow" not in json.dumps(agg)


def test_since_until_keep_the_report_days_inside_the_window(scenario):
    days = _report(scenario, "day")
    first, last = days[2]["day"], days[4]["day"]
    agg = _aggregate(scenario, "--since", first, "--until", last)
    assert [{k: v for k, v in d.items() if k != "cumulative_cost"} for d in agg["days"]] == days[2:5]
    assert agg["totals"]["cost"] == _fsum(d["cost"] for d in days[2:5])
    for by, key in (("commit", "sha"), ("model", "model"), ("session", "session"), ("branch", "branch")):
        rows = json.loads(
            scenario.periscope("report", "--by", by, "--format", "json", "--since", first, "--until", last).stdout
        )
        mine = agg[{"commit": "commits", "model": "models", "session": "sessions", "branch": "branches"}[by]]
        strip = ("cache_hit_rate",)
        assert sorted(({k: v for k, v in r.items() if k not in strip} for r in mine), key=lambda r: str(r[key])) == (
            sorted(rows, key=lambda r: str(r[key]))
        ), by


def test_median_cost_per_commit_is_the_mean_of_the_two_middle_ones_for_an_even_count(repo):
    """The nearest-rank rule gave the lower middle commit as the median; p90 keeps it (a real commit's cost)."""
    for cost in (1.0, 2.0, 4.0, 8.0):
        append_spool(repo.path, message_record(repo.path, cost=cost))
        commit(repo.path, f"costs {cost}", filename=f"f{cost}.txt")
    per_commit = json.loads(periscope("dashboard", "--format", "json", cwd=repo.path).stdout)["totals"][
        "cost_per_commit"
    ]
    assert per_commit == {"mean": 3.75, "median": 3.0, "p90": 8.0, "max": 8.0}
    append_spool(repo.path, message_record(repo.path, cost=16.0))
    commit(repo.path, "costs 16", filename="f16.txt")
    per_commit = json.loads(periscope("dashboard", "--format", "json", cwd=repo.path).stdout)["totals"][
        "cost_per_commit"
    ]
    assert per_commit["median"] == 4.0


def test_usage_without_a_reported_cost_is_drawn_at_list_prices(repo):
    """Claude Code reports no cost and plans report $0: every figure of the page read $0 (a note gave
    the list-price total).  With nothing reported, every figure is the list price, the report's
    list_cost, from the same rows; with costs reported, `--basis list` draws the same."""
    claude = dict(cost=None, coding_agent="claude-code", model="claude-sonnet-4-5")
    for i, tokens in enumerate([(100_000, 0, 0, 0, 0), (0, 100_000, 0, 0, 0), (200_000, 0, 0, 0, 0)]):
        append_spool(repo.path, message_record(repo.path, session_id=f"s{i % 2}", tokens=tokens, **claude))
        commit(repo.path, f"by claude {i}", filename=f"c{i}.txt")
    append_spool(repo.path, message_record(repo.path, tokens=(0, 0, 0, 0, 100_000), **claude))  # not linked yet

    def aggregate(*args: str) -> dict:
        return json.loads(periscope("dashboard", "--format", "json", *args, cwd=repo.path).stdout)

    agg = aggregate()
    assert agg["basis"] == "list"
    commits = {r["sha"]: r["list_cost"] for r in report_json(repo.path, by="commit")}
    assert sorted(commits.values()) == [0.3, 0.6, 1.5]  # Sonnet 4.5: $3 a million in, $15 out
    assert {c["sha"]: c["cost"] for c in agg["commits"]} == commits
    assert "list_cost" not in agg["commit_columns"]  # the cost column is the list price
    t = agg["totals"]
    assert t["cost"] == t["list_cost"] == 2.775  # 0.30 + 1.50 + 0.60, and 0.375 of cache writes pending
    assert t["pending"] == {"messages": 1, "cost": 0.375, "list_cost": 0.375}
    assert t["linked"]["cost"] == 2.4 and t["cost_per_commit"]["median"] == 0.6
    assert _fsum(r["cost"] for r in agg["day_model"]) == _fsum(d["cost"] for d in agg["days"]) == 2.775
    assert {s["session"]: s["cost"] for s in agg["sessions"]} == {
        r["session"]: r["list_cost"] for r in report_json(repo.path, by="session")
    }
    assert [o["cost"] for o in agg["by_origin"]] == [2.4]
    at_cost = aggregate("--basis", "reported")
    assert (
        at_cost["basis"] == "reported" and at_cost["totals"]["cost"] == 0.0 and at_cost["totals"]["list_cost"] == 2.775
    )

    append_spool(repo.path, message_record(repo.path, cost=0.25, tokens=(1000, 0, 0, 0, 0)))  # reported: OpenCode
    commit(repo.path, "by opencode", filename="o.txt")
    mixed = aggregate()
    assert mixed["basis"] == "reported" and mixed["totals"]["cost"] == 0.25
    listed = aggregate("--basis", "list")
    assert listed["basis"] == "list" and listed["totals"]["cost"] == listed["totals"]["list_cost"] > 2.775


@pytest.mark.parametrize(("tz", "expected"), [("UTC0", ["2026-03-01"]), ("XYZ+5", ["2026-02-28", "2026-03-01"])])
def test_days_are_local_days_across_midnight_utc(repo, tz, expected):
    # 03:00Z and 06:00Z on 1 March: one UTC day; at UTC-5 the first is 22:00 on 28 February.
    append_spool(repo.path, message_record(repo.path, time=T0_MS + 3 * 3600_000, cost=0.25))
    append_spool(repo.path, message_record(repo.path, time=T0_MS + 6 * 3600_000, cost=0.5))
    env = {"TZ": tz}
    # Subprocesses: TZ is read when a process starts (an in-process run would keep the test's zone).
    report = json.loads(
        periscope("report", "--by", "day", "--format", "json", cwd=repo.path, env=env, in_process=False).stdout
    )
    agg = json.loads(periscope("dashboard", "--format", "json", cwd=repo.path, env=env, in_process=False).stdout)
    assert [d["day"] for d in report] == [d["day"] for d in agg["days"]] == expected
    assert [d["cost"] for d in agg["days"]] == [d["cost"] for d in report]
    assert {c["day"] for c in agg["day_model"]} == set(expected)


def test_writes_a_private_file_where_it_says_and_never_needs_a_browser(repo, tmp_path, isolated_home):
    append_spool(repo.path, message_record(repo.path))
    commit(repo.path, "x")
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > "{opened}"\n')
    browser.chmod(0o755)
    proc = periscope("dashboard", cwd=repo.path, env={"BROWSER": f"{browser} %s"})
    default = isolated_home / ".local/state/periscope/dashboard.html"
    assert proc.stdout == f"dashboard written to {default}\n"
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert opened.read_text().strip() == default.as_uri()
    # No usable browser: still exit 0, the path printed, a note on stderr.
    out = tmp_path / "sub dir" / "d.html"
    proc = periscope("dashboard", "--out", str(out), cwd=repo.path, env={"BROWSER": str(tmp_path / "missing")})
    assert proc.returncode == 0 and str(out) in proc.stdout and stat.S_IMODE(out.stat().st_mode) == 0o600
    opened.unlink()
    proc = periscope("dashboard", "--no-open", "--out", str(out), cwd=repo.path, env={"BROWSER": f"{browser} %s"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert not opened.exists()
    # The aggregate as JSON, written as it is made: the same text as on stdout, private, replacing
    # the file whole (no temporary file left beside it).
    printed = periscope("dashboard", "--format", "json", cwd=repo.path).stdout
    proc = periscope("dashboard", "--format", "json", "--out", str(out), cwd=repo.path)
    assert proc.stdout == f"wrote {out.resolve()}\n"
    written = out.read_text(encoding="utf-8")
    assert _same_but_generated(written, printed) and written.endswith("}\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and os.listdir(out.parent) == [out.name]
    # Where no file can be written: one line (they ended in the catch-all's IsADirectoryError,
    # FileExistsError), nothing left behind.
    for where, why in ((out.parent, "it is a folder"), (out / "d.html", "File exists")):
        for fmt in ("html", "json"):
            proc = periscope("dashboard", "--no-open", "--format", fmt, "--out", str(where), cwd=repo.path, check=False)
            assert proc.returncode == 1 and proc.stdout == "", proc
            assert (
                proc.stderr
                == f"error: could not write {where}: {why} hint: give --out a file path in a folder you can write to\n"
            )
    assert os.listdir(out.parent) == [out.name]
    # Never over anything but a regular file: a device (as root, `--out /dev/full` replaced the
    # system's), a FIFO; through a symbolic link to the file it names, the link kept.
    os.mkfifo(tmp_path / "fifo")
    for special in (tmp_path / "fifo", Path("/dev/null")):
        for fmt in ("html", "json"):
            proc = periscope(
                "dashboard", "--no-open", "--format", fmt, "--out", str(special), cwd=repo.path, check=False
            )
            assert (proc.returncode, proc.stdout) == (1, "")
            assert (
                proc.stderr
                == f"error: could not write {special}: it is not a regular file hint: give --out a file path\n"
            )
    assert stat.S_ISFIFO((tmp_path / "fifo").lstat().st_mode) and stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    link = tmp_path / "link.html"
    link.symlink_to(out)
    proc = periscope("dashboard", "--no-open", "--out", str(link), cwd=repo.path)
    assert proc.stdout == f"dashboard written to {out.resolve()}\n"
    assert link.is_symlink() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # `--out .` (a ValueError from the temporary file's empty name reached the catch-all).
    for fmt in ("html", "json"):
        proc = periscope("dashboard", "--no-open", "--format", fmt, "--out", ".", cwd=out.parent, check=False)
        assert (
            proc.stderr
            == "error: could not write .: it is a folder hint: give --out a file path in a folder you can write to\n"
        )


def _same_but_generated(a: str, b: str) -> bool:
    """Two aggregates' texts alike but for the time each was made (its `generated`)."""
    x, y = json.loads(a), json.loads(b)
    x.pop("generated"), y.pop("generated")
    return x == y and a.count("\n") == b.count("\n")


def test_all_repos_adds_up_every_repository_read_before(tmp_path):
    repos = []
    for name, cost in (("one", 1.25), ("two", 2.5)):
        path = init_repo(tmp_path / name)
        periscope("install-hooks", cwd=path)
        append_spool(path, session_record("s", f"session {name}"), message_record(path, session_id="s", cost=cost))
        commit(path, name)
        periscope("dashboard", "--no-open", cwd=path)
        repos.append(path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    agg = json.loads(periscope("dashboard", "--all-repos", "--format", "json", cwd=outside).stdout)
    assert sorted(agg["filter"]["repos"]) == sorted(os.path.realpath(p) for p in repos)
    reports = {os.path.realpath(p): report_json(p) for p in repos}
    assert agg["totals"]["cost"] == 3.75
    assert agg["totals"]["commits"] == sum(len(r) for r in reports.values()) and agg["totals"]["commits"] >= 1
    assert sorted((c["repo"], c["sha"]) for c in agg["commits"]) == sorted(
        (repo, c["sha"]) for repo, rows in reports.items() for c in rows
    )


def test_all_repos_knows_every_repository_a_flush_ran_in(tmp_path):
    # Only repositories `dashboard` had run in were known: a user with hooks in five repositories
    # got "no repositories known yet" from `--all-repos`.  The flush after each commit notes them.
    repos = []
    for name in ("alpha", "beta"):
        path = init_repo(tmp_path / name)
        periscope("install-hooks", cwd=path)
        append_spool(path, message_record(path, cost=1.0))
        commit(path, name)
        periscope("flush", cwd=path)
        repos.append(path)
    git(repos[1], "worktree", "add", "-q", str(tmp_path / "beta-wt"))
    periscope("flush", cwd=tmp_path / "beta-wt")  # the same repository: listed once
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    agg = json.loads(periscope("dashboard", "--all-repos", "--format", "json", cwd=outside).stdout)
    assert sorted(os.path.realpath(r) for r in agg["filter"]["repos"]) == sorted(os.path.realpath(p) for p in repos)
    assert agg["totals"]["cost"] == 2.0


def test_a_damaged_registry_of_repositories_stops_no_flush_and_all_repos_labels_one(tmp_path):
    """Bytes that are not UTF-8 in ~/.local/state/periscope/repos made every flush (so every
    repository's delivery) and every dashboard fail with a UnicodeDecodeError (a docs sweep)."""
    from periscope_hooks import repo_registry

    path = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=path)
    append_spool(path, message_record(path, cost=1.0))
    commit(path, "c")
    registry = repo_registry.registry_path()
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_bytes(b'\x00\xff garbage\n{"label": "\xff", "state_dir": 1}\n')
    periscope("flush", cwd=path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    agg = json.loads(periscope("dashboard", "--all-repos", "--format", "json", cwd=outside).stdout)
    assert [os.path.realpath(r) for r in agg["filter"]["repos"]] == [os.path.realpath(path)]
    assert agg["totals"]["cost"] == 1.0
    # --all-repos labels its rows with their repository however many it found (dashboard.md;
    # with one, they had none: a docs sweep); the one repository's own dashboard does not.
    assert agg["commits"] and all(os.path.realpath(c["repo"]) == os.path.realpath(path) for c in agg["commits"])
    assert all("repo" in s for s in agg["sessions"])
    own = json.loads(periscope("dashboard", "--format", "json", cwd=path).stdout)
    assert own["commits"] and not any("repo" in c for c in own["commits"])


def test_bad_input_is_one_line(tmp_path):
    proc = periscope("dashboard", "--since", "yesterday", "--format", "json", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "hint:" in proc.stderr
    assert "yesterday" in proc.stderr and len(proc.stderr.splitlines()) == 1
    proc = periscope("dashboard", "--all-repos", "--format", "json", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no repositories known yet" in proc.stderr
    assert periscope("dashboard", "--all-repos", "--repo", ".", cwd=tmp_path, check=False).returncode == 2


def test_outside_a_repository_shows_the_no_repo_state(tmp_path):
    agg = json.loads(periscope("dashboard", "--format", "json", cwd=tmp_path).stdout)
    assert agg["totals"]["cost"] == 0 and agg["commits"] == [] and agg["days"] == []
    assert Path(agg["filter"]["repos"][0]) == Path("(outside any repository)")


def test_serve_answers_only_get_for_its_secret_path_and_host(repo, tmp_path):
    import http.client
    import subprocess
    import sys

    append_spool(repo.path, message_record(repo.path, cost=0.5))
    commit(repo.path, "x")
    proc = subprocess.Popen(
        [sys.executable, "-m", "periscope_hooks", "dashboard", "--serve", "--no-open"],
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("serving the dashboard at http://127.0.0.1:"), (line, proc.stderr)
        url = line.split()[4]
        host, path = url[len("http://") :].split("/", 1)
        port = int(host.split(":")[1])
        path = "/" + path
        assert len(path) > 30

        def request(method: str, target: str, host_header: str = host) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, target, headers={"Host": host_header, "Origin": "http://evil.example"})
            resp = conn.getresponse()
            resp.body = resp.read()  # type: ignore[attr-defined]
            conn.close()
            return resp

        page = request("GET", path)
        assert page.status == 200 and page.getheader("Content-Security-Policy", "").startswith("default-src 'none'")
        assert page.getheader("Access-Control-Allow-Origin") is None and b"periscope-data" in page.body
        data = json.loads(request("GET", path + "data.json").body)
        assert data["totals"]["cost"] == 0.5
        # Regenerated per request: new usage shows on the next load.
        append_spool(repo.path, message_record(repo.path, cost=0.25))
        assert json.loads(request("GET", path + "data.json").body)["totals"]["cost"] == 0.75
        assert request("GET", "/").status == 404
        assert request("GET", path[:-3] + "xx/").status == 404
        assert request("GET", path, host_header="evil.example:80").status == 403
        assert request("GET", path, host_header=f"localhost:{port}").status == 200
        assert request("GET", path, host_header=f"LOCALHOST:{port}").status == 200  # host names ignore case
        # TRACE, PROPFIND...: 405 too (they got http.server's 501 page).
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
            r = request(method, path)
            assert r.status == 405 and r.getheader("Allow") == "GET, HEAD", (method, r.status)
            assert r.getheader("Access-Control-Allow-Origin") is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
