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
