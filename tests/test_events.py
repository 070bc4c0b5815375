"""periscope_hooks/events.py: deterministic ids, schema-valid events, exact totals, metadata only."""

from __future__ import annotations

import json
import math
import random
import uuid

import jsonschema
import pytest

from periscope_hooks import CLIENT_NAME, __version__, events, schemas
from testing.util import append_spool, commit, message_record, session_record

URL = "https://example.com/acme/widgets.git"
SHA1 = "1" * 40
SHA2 = "2" * 40
SHA3 = "3" * 40
SHA4 = "4" * 40
KINDS = ("commit", "merge", "squash", "amend", "cherry-pick", "revert")
EVENT_SCHEMA = schemas.load("events")
VALIDATOR = jsonschema.Draft202012Validator(EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

# The keys each event type may carry: metadata only (see docs/privacy.md).
BASE_KEYS = {"event_id", "type", "schema", "time", "client"}
ALLOWED_KEYS = {
    "message": BASE_KEYS
    | {
        "message_id",
        "session",
        "provider",
        "model",
        "tokens",
        "cost",
        "repo",
        "list_cost",
        "cost_source",
        "price_snapshot",
    },
    "commit": BASE_KEYS | {"repo", "commit", "origin", "usage", "by_model", "sessions", "agent", "note"},
    "rewrite": BASE_KEYS | {"repo", "command", "mappings"},
}


def msg(
    id: str = "msg_01",
    *,
    session_id: str | None = "ses_a",
    provider: str | None = "anthropic",
    model: str | None = "claude-sonnet-4",
    agent: str | None = "build",
    tokens=(1200, 310, 0, 800, 0),
    cost: float | None = 0.0123,
    time_ms: int = 1764000000123,
    branch: str | None = "main",
    sha: str | None = SHA1,
    **extra,
):
    """A message row as state.db holds it (the builders only index it by column name)."""
    row = {
        "id": id,
        "session_id": session_id,
        "provider": provider,
        "model": model,
        "agent": agent,
        "cost": cost,
        "time_ms": time_ms,
        "branch": branch,
        "sha": sha,
        "list_cost_micro": None,
        "cost_source": "reported",
        "price_snapshot": None,
    }
    row.update(zip(events.TOKEN_FIELDS, tokens))
    row.update(extra)
    return row


def session(title: str | None = "Fix login", parent_id: str | None = None, agent: str | None = "build"):
    return {"title": title, "parent_id": parent_id, "agent": agent}


def commit_ev(**kw):
    args = dict(
        repo_id="repo-1",
        repo_url="https://example.com/acme/widgets.git",
        branch="main",
        sha=SHA2,
        parents=[SHA1],
        kind="commit",
        origin="human",
        time_ms=1764000000000,
        messages=[msg()],
        sessions={"ses_a": session()},
    )
    args.update(kw)
    args["messages"] = [events.event_message(m) for m in args["messages"]]
    return events.commit_event(**args)


def rewrite_ev(**kw):
    args = dict(
        repo_id="repo-1",
        repo_url="https://example.com/acme/widgets.git",
        command="amend",
        pairs=[[SHA1, SHA2]],
        time_ms=1764000000000,
    )
    args.update(kw)
    return events.rewrite_event(**args)


def validate(event) -> None:
    VALIDATOR.validate(event)
    assert set(event) <= ALLOWED_KEYS[event["type"]], set(event) - ALLOWED_KEYS[event["type"]]


# --- deterministic ids -------------------------------------------------------------------------


def test_event_ids_are_uuid5_in_the_fixed_namespace():
    eid = events.event_id("message", "msg_01")
    assert uuid.UUID(eid).version == 5
    assert eid == str(uuid.uuid5(events.EVENT_NAMESPACE, "message\x1fmsg_01"))
    # Pinned: a release that changed the namespace or the derivation would make every receiver
    # count events re-sent after an upgrade twice.
    assert eid == "b3ab0db3-3617-5db8-b3ff-0de121a88390"


def test_message_event_id_depends_on_the_message_id_only():
    a = events.message_event(msg("msg_01"), session(), "https://example.com/a.git")
    again = events.message_event(msg("msg_01", cost=9.5, tokens=(1, 2, 3, 4, 5), time_ms=1, branch="other"), None, None)
    other = events.message_event(msg("msg_02"), session(), "https://example.com/a.git")
    assert a["event_id"] == again["event_id"] == events.event_id("message", "msg_01")
    assert other["event_id"] != a["event_id"]


def test_commit_event_id_is_repo_sha_and_kind():
    base = commit_ev()["event_id"]
    # Rebuilt later (another time, more messages, another branch name): the same event.
    assert commit_ev(time_ms=1, messages=[msg(), msg("msg_02")], branch="feature", origin="agent")["event_id"] == base
    assert base == events.event_id("commit", "repo-1", SHA2, "commit")
    different = {
        commit_ev(repo_id="repo-2")["event_id"],
        commit_ev(sha=SHA3)["event_id"],
        *(commit_ev(kind=k)["event_id"] for k in KINDS if k != "commit"),
    }
    assert base not in different and len(different) == 2 + len(KINDS) - 1


def test_message_and_commit_ids_never_collide():
    # The type is part of the name: a message id that looks like a commit's parts gives another id.
    assert events.event_id("message", "repo-1") != events.event_id("commit", "repo-1")
    assert events.message_event(msg(SHA2), None, None)["event_id"] != commit_ev()["event_id"]


def test_rewrite_event_id_is_repo_command_and_mappings():
    base = rewrite_ev()["event_id"]
    assert rewrite_ev(time_ms=5, repo_url=None)["event_id"] == base
    others = {
        rewrite_ev(repo_id="repo-2")["event_id"],
        rewrite_ev(command="rebase")["event_id"],
        rewrite_ev(pairs=[[SHA1, SHA3]])["event_id"],
        rewrite_ev(pairs=[[SHA1, SHA2], [SHA3, SHA4]])["event_id"],
    }
    assert base not in others and len(others) == 4


# --- schema ------------------------------------------------------------------------------------


def test_message_events_match_the_schema():
    cases = [
        events.message_event(msg(), session(), "https://example.com/acme/widgets.git"),
        events.message_event(
            msg(
                session_id=None,
                provider=None,
                model=None,
                agent=None,
                cost=None,
                tokens=(None,) * 5,
                branch=None,
                sha=None,
            ),
            None,
            URL,
        ),
        events.message_event(msg("sub", session_id="ses_child"), session(parent_id="ses_a"), "git.example.com:a/b.git"),
    ]
    for e in cases:
        validate(e)
        assert e["type"] == "message" and e["schema"] == events.SCHEMA_VERSION == 1
        assert e["client"] == {"name": CLIENT_NAME, "version": __version__}
    assert cases[0]["time"] == "2025-11-24T16:00:00.123Z"
    assert cases[0]["session"] == {
        "id": "ses_a",
        "title": "Fix login",
        "agent": "build",
        "is_subagent": False,
        "parent_id": None,
        "coding_agent": "opencode",
    }
    assert cases[0]["tokens"] == {"input": 1200, "output": 310, "reasoning": 0, "cache_read": 800, "cache_write": 0}
    assert cases[0]["repo"] == {"url": "https://example.com/acme/widgets.git", "branch": "main", "sha": SHA1}
    assert cases[1]["cost"] == 0.0 and isinstance(cases[1]["cost"], float)
    assert cases[1]["tokens"] == dict.fromkeys(events.TOKEN_FIELDS, 0)
    assert cases[1]["session"] == {
        "id": None,
        "title": None,
        "agent": None,
        "is_subagent": False,
        "parent_id": None,
        "coding_agent": "opencode",
    }
    assert cases[2]["session"]["is_subagent"] is True and cases[2]["session"]["parent_id"] == "ses_a"


def test_message_agent_falls_back_to_the_session_agent():
    e = events.message_event(msg(agent=None), session(agent="plan"), None)
    assert e["session"]["agent"] == "plan"
    assert events.message_event(msg(agent="build"), session(agent="plan"), None)["session"]["agent"] == "build"


@pytest.mark.parametrize("kind", KINDS)
def test_commit_events_of_every_kind_match_the_schema(kind):
    e = commit_ev(kind=kind, parents=[SHA1, SHA3] if kind == "merge" else [SHA1])
    validate(e)
    assert e["commit"] == {"sha": SHA2, "parents": e["commit"]["parents"], "kind": kind}
    assert e["repo"] == {"url": "https://example.com/acme/widgets.git", "branch": "main"}
    assert "agent" not in e and "note" not in e


def test_commit_event_variants_match_the_schema():
    agent = commit_ev(
        origin="agent",
        agent={"session_id": "ses_a", "message_included": False},
        note="in-flight message msg_9 was not recorded in time; emitted without it",
    )
    validate(agent)
    assert agent["origin"] == "agent" and agent["agent"]["message_included"] is False and agent["note"]
    empty = commit_ev(messages=[], sessions={}, parents=[], branch=None)  # a root commit, no usage
    validate(empty)
    assert empty["usage"] == {
        "messages": 0,
        "tokens": dict.fromkeys(events.TOKEN_FIELDS, 0),
        "cost": 0.0,
        "list_cost": 0.0,
        "cost_sources": dict.fromkeys(events.COST_SOURCES, 0),
    }
    assert empty["by_model"] == [] and empty["sessions"] == []
    odd = commit_ev(messages=[msg(provider=None, model=None), msg("m2", provider="openai", model="gpt-5")])
    validate(odd)  # a message without provider/model still sorts and validates


@pytest.mark.parametrize("command", ["amend", "rebase"])
def test_rewrite_events_match_the_schema(command):
    e = rewrite_ev(command=command, pairs=[[SHA1, SHA2], [SHA3, SHA4]])
    validate(e)
    assert e["command"] == command
    assert e["mappings"] == [{"old": SHA1, "new": SHA2}, {"old": SHA3, "new": SHA4}]
    assert e["repo"] == {"url": "https://example.com/acme/widgets.git"}


def test_events_without_a_repository_url_match_the_schema():
    # ingest.py builds message events with url None outside a repository (the no-repo spool),
    # and git.remote_url() is None for a repository without remotes.
    validate(events.message_event(msg(branch=None, sha=None), None, None))
    validate(commit_ev(repo_url=None))
    validate(rewrite_ev(repo_url=None))


def test_the_schema_rejects_what_the_builders_must_not_produce():
    # The validation above can fail: a broken event does not pass.
    bad = [
        {**commit_ev(), "event_id": str(uuid.uuid4())},  # not a v5 id
        {**commit_ev(), "commit": {"sha": SHA2, "parents": [], "kind": "rebase"}},
        {**commit_ev(), "repo": {"url": "https://user:token@example.com/x.git", "branch": "main"}},
        {**events.message_event(msg(), None, URL), "time": "2025-11-24T16:00:00+01:00"},
        {**events.message_event(msg(), None, URL), "tokens": {**events.tokens_of(msg()), "input": -1}},
        {**rewrite_ev(), "command": "cherry-pick"},
    ]
    for e in bad:
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(e)


def test_rfc3339_is_utc_with_milliseconds():
    assert events.rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert events.rfc3339(1764000000123) == "2025-11-24T16:00:00.123Z"
    assert events.rfc3339(1764000000999.9) == "2025-11-24T16:00:00.999Z"
    now = events.rfc3339()
    assert now.endswith("Z") and len(now) == len("2025-11-24T16:00:00.123Z")


# --- totals ------------------------------------------------------------------------------------


def _messages():
    return [
        msg(
            "m1",
            session_id="ses_a",
            provider="anthropic",
            model="claude-sonnet-4",
            tokens=(100, 10, 0, 50, 0),
            cost=0.1,
        ),
        msg(
            "m2",
            session_id="ses_b",
            provider="openai",
            model="gpt-5",
            tokens=(200, 20, 5, 0, 7),
            cost=0.2,
            agent="plan",
        ),
        msg("m3", session_id="ses_a", provider="anthropic", model="claude-sonnet-4", tokens=(None,) * 5, cost=None),
        msg("m4", session_id="ses_b", provider="anthropic", model="claude-haiku", tokens=(1, 2, 3, 4, 5), cost=1e-10),
    ]


def _add(blocks):
    total = {"messages": 0, "tokens": dict.fromkeys(events.TOKEN_FIELDS, 0), "cost": [], "list_cost": 0.0}
    total["cost_sources"] = dict.fromkeys(events.COST_SOURCES, 0)
    for b in blocks:
        total["messages"] += b["messages"]
        total["list_cost"] += b["list_cost"]
        for k, v in b["cost_sources"].items():
            total["cost_sources"][k] += v
        for f in events.TOKEN_FIELDS:
            total["tokens"][f] += b["tokens"][f]
        total["cost"].append(b["cost"])
    total["cost"] = round(math.fsum(total["cost"]), 10)
    return total


def test_usage_totals_by_model_and_by_session():
    sessions = {"ses_a": session("Fix login"), "ses_child": session("unused")}
    s = events.usage_summary([events.event_message(m) for m in _messages()], sessions)
    assert s["usage"] == {
        "messages": 4,
        "tokens": {"input": 301, "output": 32, "reasoning": 8, "cache_read": 54, "cache_write": 12},
        "cost": 0.3000000001,
        "list_cost": 0.0,
        "cost_sources": {"reported": 4, "estimated": 0, "subscription": 0, "unknown": 0},
    }
    assert [(b["provider"], b["model"]) for b in s["by_model"]] == [
        ("anthropic", "claude-haiku"),
        ("anthropic", "claude-sonnet-4"),
        ("openai", "gpt-5"),
    ]
    sonnet = s["by_model"][1]
    assert sonnet == {
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "messages": 2,
        "tokens": {"input": 100, "output": 10, "reasoning": 0, "cache_read": 50, "cache_write": 0},
        "cost": 0.1,
        "list_cost": 0.0,
        "cost_sources": {"reported": 2, "estimated": 0, "subscription": 0, "unknown": 0},
    }
    assert [x["id"] for x in s["sessions"]] == ["ses_a", "ses_b"]
    a, b = s["sessions"]
    assert (a["title"], a["agent"], a["messages"], a["cost"]) == ("Fix login", "build", 2, 0.1)
    # ses_b has no session record: no title, the agent of its first message.
    assert (b["title"], b["agent"], b["messages"], b["tokens"]["input"]) == (None, "plan", 2, 201)
    # Both breakdowns add up to the total, field by field.
    assert _add(s["by_model"]) == s["usage"]
    assert _add(s["sessions"]) == s["usage"]


def test_commit_event_carries_the_summary_of_its_messages():
    msgs = _messages()
    e = commit_ev(messages=msgs, sessions={"ses_a": session()})
    validate(e)
    s = events.usage_summary([events.event_message(m) for m in msgs], {"ses_a": session()})
    assert (e["usage"], e["by_model"], e["sessions"]) == (s["usage"], s["by_model"], s["sessions"])


# --- cost rounding -----------------------------------------------------------------------------


def test_round_cost_is_exact_to_ten_decimals():
    assert 0.1 + 0.2 != 0.3 and sum([0.1] * 10) != 1.0  # what a plain sum gives
    assert events.round_cost([0.1, 0.2]) == 0.3
    assert events.round_cost([0.1] * 10) == 1.0
    assert events.round_cost(c for c in [0.0123] * 3) == 0.0369  # any iterable
    assert events.round_cost([1.23456789012345]) == 1.2345678901
    assert events.round_cost([1e16, 1.0, -1e16]) == 1.0  # fsum keeps what a running sum loses
    assert events.round_cost([]) == 0.0


def test_event_costs_serialize_as_exact_decimals():
    e = commit_ev(messages=[msg("a", cost=0.1), msg("b", cost=0.2)])
    assert e["usage"]["cost"] == 0.3
    assert json.dumps(e["usage"]["cost"]) == "0.3"
    ten = commit_ev(messages=[msg(f"m{i}", cost=0.1) for i in range(10)])
    assert ten["usage"]["cost"] == 1.0 and ten["by_model"][0]["cost"] == 1.0 and ten["sessions"][0]["cost"] == 1.0


# --- metadata only -----------------------------------------------------------------------------


def test_builders_copy_no_content_from_their_inputs():
    secret = "PROMPT: rewrite auth.py with the password hunter2"
    row = msg(text=secret, content=secret, prompt=secret, parts=[secret], tool_output=secret)
    sess = {**session(), "summary": secret, "prompt": secret}
    built = [events.message_event(row, sess, URL), commit_ev(messages=[row], sessions={"ses_a": sess})]
    for e in built:
        validate(e)
        assert secret not in json.dumps(e)
        assert "hunter2" not in json.dumps(e)


def test_events_from_a_real_repository_carry_no_credentials_or_content(repo):
    # The repo fixture's origin is https://user:secret-token@example.com/acme/widgets.git.
    secret = "PROMPT-TEXT-must-not-leave"
    append_spool(
        repo.path,
        session_record("ses_01", "Fix login"),
        message_record(
            repo.path,
            id="m-secret",
            text=secret,
            content=secret,
            prompt=secret,
            parts=[{"type": "text", "text": secret}],
        ),
    )
    commit(repo.path, "c1")
    repo.git("commit", "-q", "--amend", "-m", "c1 again")
    evs = repo.events()
    assert {e["type"] for e in evs} == {"message", "commit", "rewrite"}
    blob = json.dumps(evs)
    assert "secret-token" not in blob and "user:" not in blob and "@example.com" not in blob
    assert secret not in blob
    for e in evs:
        validate(e)
        assert e["repo"]["url"] == "https://example.com/acme/widgets.git"


def test_message_event_json_writes_exactly_what_json_dumps_of_message_event_writes():
    """Ingest writes message events straight to their stored text (events.message_event_json):
    byte for byte json.dumps(message_event(...)), for values of every type a spool line can hold."""
    import random

    rnd = random.Random(11)
    values = [None, "", "x", 'ü\u2028"\\/<\x00', 0, -5, 2**70, 1.5, 0.1, 1e-05, 1e16, math.nan, math.inf, True, False]
    values += [[1, "a"], {"b": 1, "a": None}]

    def pick():
        return rnd.choice(values)

    for _ in range(3000):
        session = rnd.choice([None, {"title": pick(), "parent_id": pick(), "agent": pick()}])
        tokens = tuple(rnd.choice([0, 1, 1200, 2**40, True, None]) for _ in range(5))
        row = {
            "id": rnd.choice(["msg_1", "ü", "\x1f"]),
            "session_id": pick(),
            "time_ms": rnd.choice([0, 999, 1764000000123, 1764000000123.7, -5, 10**13 + 5, True]),
            "provider": pick(),
            "model": pick(),
            "agent": pick(),
            "cost": rnd.choice([None, 0, 0.0123, 5, 0.00005, math.nan, 1e300]),
            "branch": pick(),
            "sha": pick(),
            "list_cost_micro": rnd.choice([None, 0, 12345, 10**20]),
            "cost_source": rnd.choice([None, "", "reported"]),
            "price_snapshot": pick(),
            "coding_agent": rnd.choice([None, "", "claude-code"]),
            "cache_write_1h": rnd.choice([0, 0, 7, 2**40, None]),
            "web_searches": rnd.choice([0, 0, 3, None]),
            "speed": rnd.choice([None, None, "fast"]),
            **dict(zip(events.TOKEN_FIELDS, tokens)),
        }
        url = rnd.choice([None, URL, "ü"])
        want = events.message_event(row, session, url)
        eid, when, body = events.message_event_json(
            row["id"], row["session_id"], row["time_ms"], row["provider"], row["model"], row["agent"], tokens,
            row["cost"], row["branch"], row["sha"], row["list_cost_micro"], row["cost_source"],
            row["price_snapshot"], row["coding_agent"], session, url, row["cache_write_1h"], row["web_searches"],
            row["speed"],
        )  # fmt: skip
        assert body == json.dumps(want, separators=(",", ":"), sort_keys=True)
        assert (eid, when) == (want["event_id"], want["time"])
    # Equal values of different types (1 == 1.0 == True) are different JSON: never mixed up.
    for model in ("1", 1, 1.0, True, "1", True):
        row = {"id": "m", "session_id": "s", "time_ms": 1, "provider": "p", "model": model, "agent": "a", "cost": 1.0}
        row.update({"branch": None, "sha": None, "list_cost_micro": None, "cost_source": None, "price_snapshot": None})
        args = ("m", "s", 1, "p", model, "a", (0, 0, 0, 0, 0), 1.0, None, None, None, None, None, None, None, None)
        want = events.message_event({**row, **dict.fromkeys(events.TOKEN_FIELDS, 0)}, None, None)
        assert events.message_event_json(*args)[2] == json.dumps(want, separators=(",", ":"), sort_keys=True)


def test_message_event_time_and_id_shortcuts_agree_with_the_general_functions():
    """message_event_json writes its time from per-minute and per-day caches, and event_id sets the
    uuid's version and variant on hex digits: they must equal rfc3339() (leap days, year ends, the
    epoch, the last millisecond, minute and hour edges met again from the cache) and uuid.uuid5."""
    rng = random.Random(7)
    times = [0, 999, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999, 86_400_000, 951_782_400_000]
    times += [1_709_251_199_999, 9_999_999_999_999]
    times += [rng.randrange(10**13) for _ in range(2000)]
    times += range(1_709_251_000_000, 1_709_251_400_000, 1_499)  # across a day's end, minutes met many times
    times += times[::-1]
    for ms in times:
        assert events._rfc3339_cached(ms) == events.rfc3339(ms)
    for mid in ["m", "msg_01", "é", "\x1f", "😀", *(f"{rng.random()}" for _ in range(200))]:
        assert events.event_id("message", mid) == str(uuid.uuid5(events.EVENT_NAMESPACE, f"message\x1f{mid}"))
