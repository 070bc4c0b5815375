from __future__ import annotations

from periscope_hooks import notes
from testing.util import commit, init_repo

DATA = {
    "sha": "x",
    "kind": "commit",
    "origin": "agent",
    "branch": "main",
    "usage": {
        "messages": 2,
        "tokens": {"input": 1, "output": 2, "reasoning": 3, "cache_read": 4, "cache_write": 5},
        "cost": 0.25,
    },
    "by_model": [{"provider": "p", "model": "m", "messages": 2}],
    "sessions": [
        {"id": "s1", "title": "Fix login", "is_subagent": False},
        {"id": "s2", "title": None, "is_subagent": True},
    ],
}


def test_note_text_round_trips_and_summarises():
    text = notes.note_text(DATA)
    assert notes.parse_note(text) == DATA
    summary = notes.summary_lines(text)
    assert summary[0] == "AI usage: 2 message(s), $0.2500, origin agent"
    assert "m (2)" in summary[2] and "s2 [sub-agent]" in summary[3]


def test_the_summary_gives_the_list_price_where_the_reported_cost_tells_another_story():
    # Claude Code reports no cost: its notes said $0.0000 for usage whose list price is known.
    estimated = {**DATA, "usage": {**DATA["usage"], "cost": 0.0, "list_cost": 0.0057}}
    assert (
        notes.summary_lines(notes.note_text(estimated))[0]
        == "AI usage: 2 message(s), $0.0000 (list $0.0057), origin agent"
    )
    same = {**DATA, "usage": {**DATA["usage"], "list_cost": 0.25000001}}
    assert notes.summary_lines(notes.note_text(same))[0] == "AI usage: 2 message(s), $0.2500, origin agent"
    unpriced = {**DATA, "usage": {**DATA["usage"], "list_cost": 0}}
    assert notes.summary_lines(notes.note_text(unpriced))[0] == "AI usage: 2 message(s), $0.2500, origin agent"


def test_write_replaces_and_never_raises(tmp_path):
    repo = init_repo(tmp_path / "r")
    sha = commit(repo, "one")
    common = str(repo / ".git")
    notes.write_note(common, sha, DATA)
    notes.write_note(common, sha, {**DATA, "origin": "human"})
    assert notes.parse_note(notes.read_note(common, sha))["origin"] == "human"
    notes.write_note(common, "no-such-ref", DATA)  # cannot be resolved: logged, not raised
    assert "could not write the note" in (repo / ".git" / "periscope" / "hook.log").read_text()
