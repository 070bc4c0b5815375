"""jsonout.dumps_rows is json.dumps(rows, indent=2), byte for byte."""

from __future__ import annotations

import json

import pytest

from periscope_hooks.jsonout import dumps_rows

ROWS = [
    [],
    [{}],
    [{"sha": "abc", "date": None, "n": 3, "cost": 0.1 + 0.2, "ok": True, "no": False}],
    [{"tokens": {"input": 1, "output": 2}, "empty": {}, "list_cost": 1e-11, "big": 10**30}],
    [{"title": 'quote " back\\slash \n newline \t tab é 漢 \x00 \u2028 😀 </script>'}],
    [{"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "neg": -0.0, "e": 1e300}],
    [{"subagents": [{"session": "s", "tokens": {"a": 1}}], "x": 1}, {"plain": "row"}],
    [{"nested": {"deep": {"deeper": 1}}}],
    [{1: "int key"}, {"k": {2: "int key inside"}}],
    [["a list row"], "a string row", 5, None],
    [{"k": {"v": [1, 2]}}],
]


@pytest.mark.parametrize("rows", ROWS)
def test_same_bytes_as_json_dumps(rows: list[object]) -> None:
    assert dumps_rows(rows) == json.dumps(rows, indent=2)
