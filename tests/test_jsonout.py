"""jsonout.dumps_rows and dumps_indented are json.dumps(value, indent=2), byte for byte."""

from __future__ import annotations

import json
import random

import pytest

from periscope_hooks.jsonout import dumps_indented, dumps_rows

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


@pytest.mark.parametrize("value", [*ROWS, {}, [], 5, "s", None, {"a": ()}, ({"t": (1, [2, {"u": ()}])},)])
def test_dumps_indented_same_bytes_as_json_dumps(value: object) -> None:
    assert dumps_indented(value) == json.dumps(value, indent=2)


def test_dumps_indented_on_random_nestings() -> None:
    rng = random.Random(11)
    scalars = [None, True, False, 0, -7, 10**20, 0.1, 1e-05, 1e16, float("nan"), "", 'é\n"', "😀"]

    def value(depth: int) -> object:
        roll = rng.random()
        if depth > 4 or roll < 0.4:
            return rng.choice(scalars)
        if roll < 0.7:
            return {
                rng.choice(["a", "b", "c", "é", "k\t"]) + str(i): value(depth + 1) for i in range(rng.randint(0, 4))
            }
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]

    for _ in range(500):
        v = value(0)
        assert dumps_indented(v) == json.dumps(v, indent=2)
