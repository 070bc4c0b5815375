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
