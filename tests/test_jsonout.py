"""jsonout.dumps_rows and dumps_indented are json.dumps(value, indent=2), byte for byte."""

from __future__ import annotations

import json
import random
from typing import Callable

import pytest

from periscope_hooks import jsonout
from periscope_hooks.jsonout import dumps_indented, dumps_rows, write_indented

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


def _random_nesting(rng: random.Random, scalars: list[object], key: Callable[[int], object], depth: int = 0) -> object:
    """Scalars, dicts (keys from `key`) and lists, at most 4 deep and 4 wide."""
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice(scalars)
    if roll < 0.7:
        return {key(i): _random_nesting(rng, scalars, key, depth + 1) for i in range(rng.randint(0, 4))}
    return [_random_nesting(rng, scalars, key, depth + 1) for _ in range(rng.randint(0, 4))]


def test_dumps_indented_on_random_nestings() -> None:
    rng = random.Random(11)
    scalars = [None, True, False, 0, -7, 10**20, 0.1, 1e-05, 1e16, float("nan"), "", 'é\n"', "😀"]
    for _ in range(500):
        v = _random_nesting(rng, scalars, lambda i: rng.choice(["a", "b", "c", "é", "k\t"]) + str(i))
        assert dumps_indented(v) == json.dumps(v, indent=2)


class _Str(str):
    pass


def _written(value: object) -> tuple[str, int]:
    pieces: list[str] = []
    write_indented(value, pieces.append)
    return "".join(pieces), len(pieces)


def test_write_indented_writes_what_json_dumps_writes_in_pieces() -> None:
    """`dashboard --format json` writes its aggregate as it is made (write_indented): the pieces
    joined are json.dumps(value, indent=2), whatever the values, keys and nesting."""
    rng = random.Random(12)
    scalars = [None, True, 0, 10**20, 0.1, float("nan"), "", 'é\n"', _Str("sub"), (1, "t")]
    keys = ["a", "é", 7, None, 1.5, True, _Str("k")]
    for _ in range(400):
        v = _random_nesting(rng, scalars, lambda i: rng.choice(keys) if rng.random() < 0.2 else f"k{i}")
        assert _written(v)[0] == json.dumps(v, indent=2)
    # A long list (the dashboard's commit rows) is handed on in many pieces, each row whole.
    rows = [
        {"sha": f"{i:040x}", "tokens": {"input": i}, "k": {3: "a key json.dumps writes as text"}} for i in range(5000)
    ]
    aggregate = {"commits": rows, "totals": {"commits": len(rows)}}
    text, writes = _written(aggregate)
    assert text == json.dumps(aggregate, indent=2)
    assert writes >= 5000 * 8 // jsonout._PIECES_PER_WRITE  # 8 or more pieces a row
    with pytest.raises(TypeError):  # what json.dumps says of a key it cannot write
        write_indented({"a": {("t",): 1}}, lambda _: None)
