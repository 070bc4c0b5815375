"""The one place that builds events (schema 1; periscope_hooks/schema/events.schema.json, docs/ingest-api.md).

Event ids are deterministic UUIDs, so an event re-created after a crash or a
rebuilt state.db carries the same id and the receiver deduplicates it.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from periscope_hooks import CLIENT_NAME, __version__
from periscope_hooks.jsonout import json_float, json_string, json_value

SCHEMA_VERSION = 1
EVENT_NAMESPACE = uuid.UUID("8a2d3c1e-5b7f-4e0a-9c6d-2f1b0e4a7d93")
TOKEN_FIELDS = ("input", "output", "reasoning", "cache_read", "cache_write")


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


# The RFC 4122 variant digit for each hex digit the hash has there (its top two bits become 10).
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def event_id(*parts: str) -> str:
    """uuid5(EVENT_NAMESPACE, parts joined by US), computed directly: the same string as
    str(uuid.uuid5(...)) at a fifth of the cost (it runs once per message at ingest).  The
    version (5) and variant are set on the hex digits, not on the digest's bytes (1.4 -> 0.8 us)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def rfc3339(ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if ms is None else int(ms)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _base(eid: str, event_type: str, time_ms: int | None) -> dict[str, Any]:
    return {
        "event_id": eid,
        "type": event_type,
        "schema": SCHEMA_VERSION,
        "time": rfc3339(time_ms),
        "client": {"name": CLIENT_NAME, "version": __version__},
    }


def tokens_of(row: Any) -> dict[str, int]:
    return {f: int(row[f] or 0) for f in TOKEN_FIELDS}


def _message_tokens(msg: Any) -> dict[str, int]:
    """A message event's tokens: the five counts, and how many of the cache writes were kept for an
    hour when the agent said some were (only then: every other event's text stays as it was)."""
    tokens = tokens_of(msg)
    hour_writes = int(msg["cache_write_1h"] or 0) if "cache_write_1h" in msg.keys() else 0  # noqa: SIM118
    if hour_writes:
        tokens["cache_write_1h"] = hour_writes
    return tokens


def _coding_agent(row: Any) -> str | None:
    """A message row's coding agent (rows built before there was a column have none)."""
    return row["coding_agent"] if "coding_agent" in row.keys() else None  # noqa: SIM118 (sqlite3.Row: `in` tests values)


def session_info(session_id: str | None, session: Any, agent: str | None, coding_agent: str | None) -> dict[str, Any]:
    parent = session["parent_id"] if session is not None else None
    return {
        "id": session_id,
        "title": session["title"] if session is not None else None,
        "agent": agent or (session["agent"] if session is not None else None),
        "is_subagent": bool(parent),
        "parent_id": parent,
        "coding_agent": coding_agent or "opencode",  # which tool: opencode, claude-code
    }


def message_event(msg: Any, session: Any, repo_url: str | None) -> dict[str, Any]:
    event = _base(event_id("message", msg["id"]), "message", msg["time_ms"])
    event.update(
        {
            "message_id": msg["id"],
            "session": session_info(msg["session_id"], session, msg["agent"], _coding_agent(msg)),
            "provider": msg["provider"],
            "model": msg["model"],
            "tokens": _message_tokens(msg),
            "cost": float(msg["cost"] or 0),
            "repo": {"url": repo_url, "branch": msg["branch"], "sha": msg["sha"]},
            **cost_provenance(msg),
            **_priced_extras(msg),
        }
    )
    return event


def _priced_extras(msg: Any) -> dict[str, Any]:
    """What else the message's list price depends on, only where there is something (every other
    event's text stays as it was): its web searches, and fast mode."""
    keys = msg.keys()
    searches = int(msg["web_searches"] or 0) if "web_searches" in keys else 0
    speed = msg["speed"] if "speed" in keys else None
    out: dict[str, Any] = {}
    if searches:
        out["web_searches"] = searches
    if speed:
        out["speed"] = speed
    return out


# --- message events written straight to their stored JSON (issue 11: first-ingest speed) ---------
# The outbox stores every event as json.dumps(event, separators=(",", ":"), sort_keys=True).  A
# message event is built once per message at ingest, and the dict plus the generic encoder cost
# ~35 us of the ~50 us a message's event took; writing the same text from a template costs ~8 us.
# The text must stay byte-identical to json.dumps of message_event() (event bodies are compared
# across rebuilds): tests/test_events.py checks both on randomised values of every type.
_CLIENT_JSON = json.dumps({"name": CLIENT_NAME, "version": __version__}, separators=(",", ":"), sort_keys=True)


_day_cache: dict[int, str] = {}
_minute_cache: dict[int, str] = {}


def _rfc3339_cached(ms: int) -> str:
    """rfc3339() for whole milliseconds from 1970 on, the text up to the minute remembered per
    minute (messages come seconds apart) and the date per day (a strftime cost ~1 us): 0.87 ->
    0.49 us a message, 1.5 s apart, against one remembered date written out with four divmods."""
    minute, in_minute = divmod(ms, 60000)
    head = _minute_cache.get(minute)
    if head is None:
        head = _minute_head(minute)
    seconds, frac = divmod(in_minute, 1000)
    return f"{head}{seconds:02d}.{frac:03d}Z"


def _minute_head(minute: int) -> str:
    day, in_day = divmod(minute, 1440)
    date = _day_cache.get(day)
    if date is None:
        if len(_day_cache) > 4096:
            _day_cache.clear()
        date = _day_cache[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    if len(_minute_cache) > 4096:
        _minute_cache.clear()
    head = _minute_cache[minute] = f"{date}{in_day // 60:02d}:{in_day % 60:02d}:"
    return head


def _message_context_json(
    model: Any,
    price_snapshot: Any,
    provider: Any,
    branch: Any,
    sha: Any,
    repo_url: Any,
    agent: Any,
    coding_agent: Any,
    session_id: Any,
    session: Any,
) -> str:
    """The keys from "model" to "session" of a stored message event: what the messages of one
    session, model and branch share (written once per such group, see _context_cache)."""
    parent = session["parent_id"] if session is not None else None
    title = session["title"] if session is not None else None
    agent = agent or (session["agent"] if session is not None else None)
    return (
        f'"model":{json_value(model)},"price_snapshot":{json_value(price_snapshot)},"provider":{json_value(provider)}'
        f',"repo":{{"branch":{json_value(branch)},"sha":{json_value(sha)},"url":{json_value(repo_url)}}}'
        f',"schema":{SCHEMA_VERSION},"session":{{"agent":{json_value(agent)},"coding_agent":{json_value(coding_agent or "opencode")}'
        f',"id":{json_value(session_id)},"is_subagent":{"true" if parent else "false"},"parent_id":{json_value(parent)}'
        f',"title":{json_value(title)}}}'
    )


# --- list prices and cost provenance (issue 13; added fields, schema 1 receivers ignore them) -------
COST_SOURCES = ("reported", "estimated", "subscription", "unknown")
_COST_SOURCE_JSON = {source: f'"{source}"' for source in COST_SOURCES}

_context_cache: dict[tuple[Any, ...], str] = {}
_TEXT_TYPES = {str, type(None)}


def message_event_json(
    message_id: str,
    session_id: Any,
    time_ms: Any,
    provider: Any,
    model: Any,
    agent: Any,
    tokens: Sequence[int],
    cost: Any,
    branch: Any,
    sha: Any,
    list_cost_micro: int | None,
    cost_source: str | None,
    price_snapshot: str | None,
    coding_agent: str | None,
    session: Any,
    repo_url: str | None,
    cache_write_1h: int = 0,
    web_searches: int = 0,
    speed: str | None = None,
) -> tuple[str, str, str]:
    """(event id, time, stored JSON) of message_event() for these message values, without the dict."""
    eid = event_id("message", message_id)
    # Whole milliseconds in years 1970-2286 only: rfc3339's float division is exact there.
    when = _rfc3339_cached(time_ms) if type(time_ms) is int and 0 <= time_ms < 10**13 else rfc3339(time_ms)
    shared = (model, price_snapshot, provider, branch, sha, repo_url, agent, coding_agent, session_id)
    key = (
        *shared,
        *((None, None, None) if session is None else (session["parent_id"], session["title"], session["agent"])),
    )
    cacheable = _TEXT_TYPES.issuperset(map(type, key))  # text only: 1, 1.0 and True are equal keys, not equal JSON
    context = _context_cache.get(key) if cacheable else None
    if context is None:
        context = _message_context_json(*shared, session)
        if cacheable:
            if len(_context_cache) > 4096:
                _context_cache.clear()
            _context_cache[key] = context
    t_input, t_output, t_reasoning, t_cache_read, t_cache_write = tokens
    source = _COST_SOURCE_JSON.get(cost_source or "unknown") or json_value(cost_source)
    mid = json_string(message_id) if type(message_id) is str else json_value(message_id)
    list_cost = "null" if list_cost_micro is None else json_float(list_cost_micro / 1_000_000)
    body = (
        f'{{"client":{_CLIENT_JSON},"cost":{json_float(float(cost or 0))},"cost_source":{source}'
        f',"event_id":"{eid}","list_cost":{list_cost}'
        f',"message_id":{mid},{context}{_speed_json(speed) if speed else ""},"time":"{when}","tokens":{{"cache_read":'
        f'{int(t_cache_read or 0)},"cache_write":{int(t_cache_write or 0)}'
        f"{_hour_writes_json(cache_write_1h) if cache_write_1h else ''}"
        f',"input":{int(t_input or 0)},"output":{int(t_output or 0)},"reasoning":{int(t_reasoning or 0)}}}'
        f',"type":"message"{_searches_json(web_searches) if web_searches else ""}}}'
    )  # the extras' calls only when there is one: three calls a message cost ~1 us
    return eid, when, body


def _speed_json(speed: Any) -> str:
    return f',"speed":{json_value(speed)}' if speed else ""


def _searches_json(web_searches: Any) -> str:
    searches = int(web_searches or 0)
    return f',"web_searches":{searches}' if searches else ""


def _hour_writes_json(cache_write_1h: Any) -> str:
    hour_writes = int(cache_write_1h or 0)
    return f',"cache_write_1h":{hour_writes}' if hour_writes else ""


def cost_provenance(msg: Any) -> dict[str, Any]:
    """A message's list price (dollars; None when the model is not in the price table), its cost
    source and the price table's identity (periscope_hooks/pricing.py)."""
    micro = msg["list_cost_micro"]
    return {
        "list_cost": None if micro is None else micro / 1_000_000,
        "cost_source": msg["cost_source"] or "unknown",
        "price_snapshot": msg["price_snapshot"],
    }


# A linked message as a commit event reads it: these fields, in this order (statedb selects them
# so, and ingest/bulk.py takes them from the rows it stores).  Tuples, not mappings: a commit
# event reads a dozen fields of each of its messages, and building a dict per message, then
# looking each field up by name, was most of building the event (~120 us a commit of 20).
EVENT_MESSAGE_FIELDS = (
    "id",
    "session_id",
    "provider",
    "model",
    "agent",
    "coding_agent",
    "input",
    "output",
    "reasoning",
    "cache_read",
    "cache_write",
    "cost",
    "list_cost_micro",
    "cost_source",
)
EventMessage = Sequence[Any]  # EVENT_MESSAGE_FIELDS' values


def event_message(row: Any) -> tuple[Any, ...]:
    """A message row (a mapping or sqlite3.Row with those names) as usage_summary takes it."""
    return tuple(_coding_agent(row) if f == "coding_agent" else row[f] for f in EVENT_MESSAGE_FIELDS)


# A message's figures as usage sums need them: (input, output, reasoning, cache_read, cache_write,
# cost, list_cost_micro, cost_source), read from the row once (not once per block it counts in:
# a commit event sums each message three times, usage, by_model and sessions).
_Figures = tuple[int, int, int, int, int, float, int, str]


def _figures(m: EventMessage) -> _Figures:
    return (
        int(m[6] or 0),
        int(m[7] or 0),
        int(m[8] or 0),
        int(m[9] or 0),
        int(m[10] or 0),
        float(m[11] or 0),
        int(m[12] or 0),
        m[13] or "unknown",
    )


def _sum_figures(figures: Sequence[_Figures]) -> dict[str, Any]:
    columns = tuple(zip(*figures)) if figures else ((),) * 8  # one column per figure: sums run in C
    sources = dict.fromkeys(COST_SOURCES, 0)
    for source in columns[7]:
        sources[source] += 1
    return {
        "messages": len(figures),
        "tokens": dict(zip(TOKEN_FIELDS, map(sum, columns[:5]))),
        "cost": round_cost(columns[5]),
        # Exact: integer micro-dollars summed, divided once.
        "list_cost": sum(columns[6]) / 1_000_000,
        "cost_sources": sources,
    }


def round_cost(costs: Iterable[float]) -> float:
    """Exact-as-possible sum of dollar costs (fsum, then rounded to 10 decimals)."""
    return round(math.fsum(costs), 10)


def usage_summary(messages: Sequence[EventMessage], sessions: dict[str, Any]) -> dict[str, Any]:
    """usage, by_model and sessions blocks for a commit event (and for reports and notes);
    `messages` in EVENT_MESSAGE_FIELDS order (event_message makes one of a row)."""
    by_model: dict[tuple[str, str], list[_Figures]] = {}
    by_session: dict[str, tuple[EventMessage, list[_Figures]]] = {}
    every: list[_Figures] = []
    for m in messages:
        f = _figures(m)
        every.append(f)
        by_model.setdefault((m[2], m[3]), []).append(f)
        by_session.setdefault(m[1], (m, []))[1].append(f)
    usage = _sum_figures(every)

    def sums(figures: list[_Figures]) -> dict[str, Any]:
        # A group of every message (one model, one session: most commits) sums the same figures in
        # the same order: its sums are the usage's (a commit of 20 messages: 31 -> ~20 us).
        if len(figures) != len(every):
            return _sum_figures(figures)
        return {**usage, "tokens": dict(usage["tokens"]), "cost_sources": dict(usage["cost_sources"])}

    return {
        "usage": usage,
        "by_model": [
            {"provider": p, "model": mo, **sums(figures)}
            for (p, mo), figures in sorted(by_model.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))
        ],
        "sessions": [
            {**session_info(sid, sessions.get(sid), first[4], first[5]), **sums(figures)}
            for sid, (first, figures) in sorted(by_session.items(), key=lambda kv: str(kv[0]))
        ],
    }


def commit_event(
    *,
    repo_id: str,
    repo_url: str | None,
    branch: str | None,
    sha: str,
    parents: list[str],
    kind: str,
    origin: str,
    time_ms: int,
    messages: Sequence[EventMessage],
    sessions: dict[str, Any],
    agent: dict[str, Any] | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    event = _base(event_id("commit", repo_id, sha, kind), "commit", time_ms)
    event.update(
        {
            "repo": {"url": repo_url, "branch": branch},
            "commit": {"sha": sha, "parents": parents, "kind": kind},
            "origin": origin,
            **usage_summary(messages, sessions),
        }
    )
    if agent is not None:
        event["agent"] = agent
    if note:
        event["note"] = note
    return event


def rewrite_event(
    *, repo_id: str, repo_url: str | None, command: str, pairs: list[list[str]], time_ms: int
) -> dict[str, Any]:
    key = ";".join(f"{o}>{n}" for o, n in pairs)
    event = _base(event_id("rewrite", repo_id, command, key), "rewrite", time_ms)
    event.update(
        {
            "repo": {"url": repo_url},
            "command": command,
            "mappings": [{"old": o, "new": n} for o, n in pairs],
        }
    )
    return event
