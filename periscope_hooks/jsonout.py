"""`json.dumps(rows, indent=2)`, byte for byte, at the speed report rows need.

With an indent, the json package leaves its C encoder for the pure-Python one: 1.3-1.8 s of CPU
for the 50,000 commit rows of a 1M-message history, more than everything else `report` does.
Report rows are dicts of scalars and of dicts of scalars; this writes those with the C string
escaper and one f-string per value (~6x faster), and hands anything else (a list inside a row,
a key that is not a string) to json.dumps, indented to its place.  tests/test_jsonout.py checks
the output against json.dumps on every kind of value it meets.
"""

from __future__ import annotations

import json
import re
from _json import encode_basestring_ascii
from collections.abc import Sequence
from typing import Any, Callable

try:
    import orjson
except ImportError:  # a dependency (pyproject.toml); compact() writes the same text without it, slower
    orjson = None  # type: ignore[assignment]


def json_string(value: str) -> str:
    """A string as json.dumps writes it (ASCII, escaped by json's own C function)."""
    return encode_basestring_ascii(value)


_NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_float(value: float) -> str:
    """A float as json.dumps writes it.  A finite float's repr ends in a digit: one test instead
    of comparing with NaN and both infinities (0.39 -> 0.29 us; twice a message event)."""
    text = float.__repr__(value)
    return text if text[-1] in "0123456789" else _NOT_FINITE[text]


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: json_float,
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
}


def json_value(value: Any) -> str:
    """One value as json.dumps(value, separators=(",", ":"), sort_keys=True) writes it: a scalar
    by json's own C escaper or repr, anything else by json.dumps itself.  Stored events are
    written with these separators; events.message_event_json builds its text from this."""
    writer = _SCALARS.get(type(value))
    return writer(value) if writer is not None else json.dumps(value, separators=(",", ":"), sort_keys=True)


# orjson writes what json.dumps(..., separators=(",", ":"), sort_keys=True) writes except: non-ASCII
# characters and DEL unescaped; floats below 1e-4 (9.9e-05 as 0.000099, 5e-06 as 5e-6); NaN and
# the infinities as null; exponents in its own spelling in some versions (before 3.11.7, 1e16 as
# 1e16); and it refuses integers past 64 bits, keys that are not strings, and dataclasses and
# datetimes once passed through (json refuses those too).
_ORJSON_OPTIONS = (
    (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME) if orjson else 0
)
_E_THEN_EXPONENT = re.compile(rb"e[-+0-9]")  # a literal start: searched at C speed (a leading class is 10x slower)
_DIGITS = frozenset(b"0123456789.")


def compact(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"), sort_keys=True): the text events and notes are
    stored and sent as.  Written by orjson and kept when nothing in it is where the two may differ
    (above), else by json: ~6 against 19 us a commit event of three models (one a few hundred
    records at ingest).  Not the same for NaN and the infinities, which json writes as the invalid
    NaN and Infinity and orjson as null, nor for a float of 1e16 or more that an orjson version
    wrote without an exponent; no event holds either (costs are checked finite and at most
    MAX_MESSAGE_COST a message when read).  tests/test_jsonout.py compares the two on random
    values."""
    if orjson is not None:
        try:
            out = orjson.dumps(value, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError: what json writes, or refuses, its own way
            pass
        else:
            if out.isascii() and b"\x7f" not in out and not _has_small_float(out) and not _has_exponent(out):
                return out.decode("ascii")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _has_small_float(out: bytes) -> bool:
    """Whether orjson's text may hold a float below 1e-4 written without an exponent (9.9e-05 as
    0.000099): a "0.000" that starts a number (at the text's start or after ":", ",", "[" or "-").
    One inside a string is not: every commit's time is whole seconds, and one in ten ends in
    "0.000Z" ("...:30.000Z"), which sent those events to json (~25 against ~6 us)."""
    at = out.find(b"0.000")
    while at != -1:
        if not at or out[at - 1] in b":,[-":
            return True
        at = out.find(b"0.000", at + 1)
    return False


def _has_exponent(out: bytes) -> bool:
    """Whether orjson's text holds a number written with an exponent (json writes those its own
    way).  An "e" is one only after a run of digits that starts a value (at the text's start or
    after ":", "," or "[", a minus sign allowed): one in a string ("3e-5" in an event id's hex, a
    SHA, a model's name) is not, and a false yes only costs json's slower writing.  ~3 us on a
    commit event (~7 candidates: its id and SHAs)."""
    for match in _E_THEN_EXPONENT.finditer(out):
        end = start = match.start()
        while start and out[start - 1] in _DIGITS:
            start -= 1
        if start == end:
            continue  # no digit before the "e": a word's
        if start and out[start - 1] == 45:  # "-"
            start -= 1
        if not start or out[start - 1] in b":,[":
            return True
    return False


class _NotPlain(Exception):
    pass


def _key(key: object) -> str:
    if type(key) is not str:
        raise _NotPlain
    return encode_basestring_ascii(key)


def _row(row: dict[str, Any]) -> str:
    lines = []
    scalars = _SCALARS
    for k, v in row.items():
        t = type(v)
        if t is dict:
            if v:
                inner = ",\n".join([f"      {_key(k2)}: {scalars[type(v2)](v2)}" for k2, v2 in v.items()])
                lines.append(f"    {_key(k)}: {{\n{inner}\n    }}")
            else:
                lines.append(f"    {_key(k)}: {{}}")
        else:
            lines.append(f"    {_key(k)}: {scalars[t](v)}")
    return "  {\n" + ",\n".join(lines) + "\n  }" if lines else "  {}"


def dumps_rows(rows: Sequence[Any]) -> str:
    """json.dumps(list(rows), indent=2)."""
    if not rows:
        return "[]"
    out = []
    for row in rows:
        try:
            if type(row) is not dict:
                raise _NotPlain
            out.append(_row(row))
        except (_NotPlain, KeyError):  # KeyError: a value that is not a scalar (a list, say)
            out.append("\n".join("  " + line for line in dumps_indented(row).split("\n")))
    return "[\n" + ",\n".join(out) + "\n]"


# Pieces held before write_indented hands them on: at 50,000 commit rows the whole text of
# `dashboard --format json` was ~1.3 million pieces (~100 MB) held at once, then joined.
_PIECES_PER_WRITE = 8192


def _indented(value: Any, level: int, out: list[str], write: Callable[[str], object] | None = None) -> None:
    """Append json.dumps(value, indent=2)'s text for `value` at nesting `level` to `out`; with
    `write`, a list at level 0 or 1 hands `out` on between its items (those are whole)."""
    writer = _SCALARS.get(type(value))
    if writer is not None:
        out.append(writer(value))
        return
    t = type(value)
    mark = len(out)
    try:
        if t is dict:
            if not value:
                out.append("{}")
                return
            if level == 0 and write is not None and any(type(k) is not str for k in value):
                raise _NotPlain  # written in pieces: a key found wrong later could not be taken back
            pad = "\n" + "  " * (level + 1)
            sep = "{"
            for k, v in value.items():
                out.append(f"{sep}{pad}{_key(k)}: ")
                sep = ","
                _indented(v, level + 1, out, write)
            out.append("\n" + "  " * level + "}")
        elif t is list or t is tuple:
            if not value:
                out.append("[]")
                return
            pad = "\n" + "  " * (level + 1)
            sep = "["
            hand_on = write if level <= 1 else None
            for v in value:
                out.append(sep + pad)
                sep = ","
                _indented(v, level + 1, out, write)
                if hand_on is not None and len(out) >= _PIECES_PER_WRITE:
                    hand_on("".join(out))
                    out.clear()
            out.append("\n" + "  " * level + "]")
        else:
            raise _NotPlain
    except _NotPlain:
        # Anything else (a key that is not a string, a subclass) goes to json.dumps itself,
        # indented to its place: its text there is the same, line for line.
        del out[mark:]
        out.append(json.dumps(value, indent=2).replace("\n", "\n" + "  " * level))


def dumps_indented(value: Any) -> str:
    """json.dumps(value, indent=2), byte for byte, for any nesting of dicts with string keys, lists
    and scalars; anything else (a key that is not a string, a subclass) goes to json.dumps itself.
    With an indent the json package runs its pure-Python encoder: `dashboard --format json` at 1M
    messages spent 3.9 of its 5.4 s of CPU there."""
    out: list[str] = []
    _indented(value, 0, out)
    return "".join(out)


def write_indented(value: Any, write: Callable[[str], object]) -> None:
    """dumps_indented(value), handed to `write` in pieces as it is made (memory: a few thousand
    pieces, not the whole text)."""
    out: list[str] = []
    _indented(value, 0, out, write)
    if out:
        write("".join(out))
