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


def _compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _random_float(rng: random.Random) -> float:
    """Any finite float: every decimal exponent (subnormals too), both signs, whole numbers."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(
            [0.0, -0.0, 1e-4, 9.9e-05, 1e-05, 5e-06, 1e16, 9999999999999998.0, 5e-324, 1.7976931348623157e308]
        )
    if roll < 0.2:
        return float(rng.randrange(-(10**18), 10**18))
    return rng.choice([1, -1]) * rng.random() * 10.0 ** rng.randint(-323, 307)


def _random_text(rng: random.Random) -> str:
    alphabet = 'ab3e-5.":,[{}\\/\x00\x1f\x7f\x80é漢\u2028😀\ud800'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


def test_compact_is_json_dumps_on_random_values() -> None:
    """compact() (events' and notes' text) writes json.dumps' bytes, whatever it is given: orjson's
    text where the two agree, json's wherever they do not (non-ASCII, DEL, floats below 1e-4, big
    integers, lone surrogates, keys that are not strings)."""
    rng = random.Random(13)

    def scalar() -> object:
        return rng.choice(
            [None, True, False, rng.randint(-(2**70), 2**70), rng.randint(-9, 9), _random_float(rng), _random_text(rng)]
        )

    def nesting(depth: int = 0) -> object:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return scalar()
        if roll < 0.7:
            key: Callable[[], object] = (
                (lambda: rng.randint(0, 3)) if rng.random() < 0.02 else (lambda: _random_text(rng))
            )
            return {key(): nesting(depth + 1) for _ in range(rng.randint(0, 4))}
        return [nesting(depth + 1) for _ in range(rng.randint(0, 4))]

    kinds = set()
    for _ in range(20000):
        value = nesting()
        text = jsonout.compact(value)
        assert text == _compact_json(value), value
        kinds.add(type(value))
    for value in (
        {"cost": 9.9e-05},
        {"cost": 1e-05},
        [5e-06],
        {"a": -2.5e-10},
        {"id": "3c9e-4a", "model": "claude-3e-5", "cost": 0.5},
        {"t": "é"},
        {"t": "\x7f"},
        {"n": 2**64},
        {1: 1},
        ("tuple", [1.0, 1e16, 1.5e17]),
    ):
        assert jsonout.compact(value) == _compact_json(value)
    assert {dict, list} <= kinds


def test_compact_writes_event_bodies_with_orjson_where_they_agree() -> None:
    """The speed compact() is for: a commit event's usual text is orjson's (the check above passes
    through json too, so it cannot tell whether orjson ran at all)."""
    orjson = pytest.importorskip("orjson")
    event = {"event_id": "d6244ff3-2f08-5882-a497-3c9e68b04ca9", "cost": 0.090758, "model": "claude-model-0"}
    assert jsonout.compact(event) == orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()
    assert not jsonout._has_exponent(orjson.dumps(event))
    assert jsonout._has_exponent(orjson.dumps({"cost": 5e-06}))
    # Exponents as orjson versions spell them (before 3.11.7: no "+"), and "e"s that are in strings.
    for text in (b'{"a":1e16}', b"[1.2e30]", b"1e+16", b'{"a":-2.5e-10}', b'{"a":[0,3E5]}'.lower()):
        assert jsonout._has_exponent(text), text
    for text in (b'{"sha":"3e4f","id":"d1e-5"}', b'{"model":"claude-3e-5"}', b'{"e1":1}', b'"1e5"'):
        assert not jsonout._has_exponent(text), text
    # A commit's time is whole seconds: "...:30.000Z" is a string's, not a small float's.
    commit = {"cost": 0.2479, "time": "2025-11-24T16:00:30.000Z", "type": "commit"}
    assert jsonout.compact(commit) == orjson.dumps(commit, option=orjson.OPT_SORT_KEYS).decode()
    assert not jsonout._has_small_float(orjson.dumps(commit))
    for text in (b'{"a":0.000099}', b"[0.0005]", b'{"a":-0.00001}', b"0.0002", b'{"a":[1,0.0001]}'):
        assert jsonout._has_small_float(text), text


def test_json_float_is_json_dumps() -> None:
    rng = random.Random(14)
    values = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 5e-324, 1e16, 1e-05, 2.0]
    for value in values + [_random_float(rng) for _ in range(5000)]:
        assert jsonout.json_float(value) == json.dumps(value)
