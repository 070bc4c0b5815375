from __future__ import annotations

import json

from periscope_hooks import spool


def test_append_and_read_complete_lines(tmp_path):
    p = str(tmp_path / "spool.jsonl")
    spool.append(p, {"v": 1, "kind": "session", "session_id": "s"})
    spool.append(p, {"v": 1, "kind": "session", "session_id": "t"})
    lines, end = spool.read_lines(p, 0)
    assert [json.loads(raw)["session_id"] for _, raw in lines] == ["s", "t"]
    assert end == (tmp_path / "spool.jsonl").stat().st_size
    assert lines[1][0] == len(lines[0][1]) + 1


def test_torn_last_line_is_left_for_the_next_read(tmp_path):
    p = tmp_path / "spool.jsonl"
    p.write_bytes(b'{"v":1,"kind":"session","session_id":"a"}\n{"v":1,"kind":"ses')
    lines, end = spool.read_lines(str(p), 0)
    assert len(lines) == 1 and end == len(b'{"v":1,"kind":"session","session_id":"a"}\n')
    with open(p, "ab") as f:
        f.write(b'sion","session_id":"b"}\n')
    lines, end2 = spool.read_lines(str(p), end)
    assert spool.parse_line(lines[0][1]) == ({"v": 1, "kind": "session", "session_id": "b"}, False)


def test_garbage_is_reported_and_a_record_glued_to_a_fragment_is_recovered():
    assert spool.parse_line(b"not json at all") == (None, True)
    assert spool.parse_line(b"[1, 2]") == (None, True)
    rec, garbage = spool.parse_line(b'{"v":1,"kind":"mess{"v":1,"kind":"session","session_id":"x"}')
    assert garbage and rec == {"v": 1, "kind": "session", "session_id": "x"}
    assert spool.parse_line(b"") == (None, False)


def test_non_utf8_and_huge_lines_do_not_break_reading(tmp_path):
    p = tmp_path / "spool.jsonl"
    p.write_bytes(b"\xff\xfe garbage\n" + b'{"v":1,"kind":"session","session_id":"ok"}\n')
    recs = list(spool.iter_records(str(p)))
    assert recs == [{"v": 1, "kind": "session", "session_id": "ok"}]


def test_ingest_reads_every_line_as_the_standard_library_does():
    """ingest reads spool lines with orjson where it can (ingest/spool_reader.py) and falls back
    to spool.parse_line (json) for anything orjson refuses: the same records either way."""
    from periscope_hooks.ingest.spool_reader import parse_line

    lines = [
        b'{"v":1,"kind":"message","id":"m1","cost":0.0123,"tokens":{"input":5}}',
        b'{"v":1,"id":"big","n":123456789012345678901234567890}',  # past 64 bits: orjson reads a float
        b'{"v":1,"n":-9223372036854775809,"m":18446744073709551616}',
        b'{"v":1,"n":-9223372036854775808,"m":18446744073709551615,"f":0.12345678901234567890123}',
        b'{"v":1,"id":"nan","cost":NaN,"x":Infinity}',
        b'{"v":1,"id":"\\ud800 lone surrogate"}',
        b'\xef\xbb\xbf{"v":1,"id":"bom"}',
        b'{"v":1,"id":"dup","id":"last"}',
        b'{"v":1,"f":1e400,"g":-0.0,"h":1.7976931348623157e308,"u":"\\u00fc\\u2028"}',
        b'  {"v":1,"id":"spaces"} \t',
        b'{"v":1,"kind":"mess{"v":1,"kind":"message","id":"torn"}',
        b"[1,2]",
        b"garbage",
        b"",
        b'{"v":1,"id":"\xff"}',
    ]
    for raw in lines:
        fast, std = parse_line(raw), spool.parse_line(raw)
        assert repr(fast) == repr(std), raw


def _leftmost_record_after_fragment(raw: bytes) -> dict | None:
    """The recovery rule as first written: the first `{"v"` from the left whose rest of the line
    json.loads reads as an object (quadratic in the line: a reference for short lines only)."""
    start = raw.find(b'{"v"', 1)
    while start > 0:
        try:
            rec = json.loads(raw[start:])
            if isinstance(rec, dict):
                return rec
        except (ValueError, RecursionError):
            pass
        start = raw.find(b'{"v"', start + 1)
    return None


def test_a_record_after_fragments_is_the_one_the_leftmost_rule_finds():
    """parse_line tries `{"v"` from the line's end (a bounded number): the same record as trying
    them all from the start, on lines of torn records, nested {"v"...} objects, bytes that are not
    UTF-8 and encoded surrogates."""
    import random

    record = json.dumps({"v": 1, "kind": "session", "session_id": "s"}).encode()
    nested = b'{"v":1,"kind":"x","inner":{"v":2,"deeper":[{"v":3}]},"s":"\\u00fc"}'
    pieces = [
        record,
        nested,
        record[:9],
        nested[:30],
        b'{"v"',
        b'{"v":',
        b"}",
        b"]",
        b"\xff",
        b"\xed\xa0\x80",
        b"x",
        b" ",
    ]
    rng = random.Random(5)
    lines = [
        rng.choice([b"x", record[:12], b"\xfe"])
        + b"".join(rng.choices(pieces, k=rng.randint(0, 6)))
        + rng.choice(pieces)
        for _ in range(3000)
    ]
    recovered = 0
    for raw in lines:
        rec, garbage = spool.parse_line(raw)
        if garbage:
            expected = _leftmost_record_after_fragment(raw.strip())
            assert rec == expected, raw
            recovered += rec is not None
    assert recovered > 300  # the lines do exercise recovery


def test_long_or_deep_garbage_lines_are_skipped():
    """A line nested past the interpreter's recursion limit raised RecursionError out of every
    flush, report and status; a long line of `{"v"` garbage took minutes."""
    from periscope_hooks.ingest.spool_reader import parse_line

    record = b'{"v":1,"kind":"session","session_id":"s"}'
    for raw, expected in [
        (b"[" * 100_000, None),
        (b'{"v":[' * 100_000, None),
        (b'{"v":[' * 100_000 + record, {"v": 1, "kind": "session", "session_id": "s"}),
        (b"x" + b'{"v"' * 1_000_000, None),
        (b"x" + b'{"v":{"v":1}' * 100_000 + record, {"v": 1, "kind": "session", "session_id": "s"}),
    ]:
        assert spool.parse_line(raw) == (expected, True)
        assert parse_line(raw) == (expected, True)
