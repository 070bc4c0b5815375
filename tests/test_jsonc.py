from __future__ import annotations

import pytest

from periscope_hooks import jsonc

DOC = """{
  // my settings
  "$schema": "https://opencode.ai/config.json",
  "theme": "dark", /* keep me */
  "plugin": [
    "other-plugin", // theirs
  ],
  "model": "a/b",
}
"""


def test_loads_jsonc():
    assert jsonc.loads(DOC)["plugin"] == ["other-plugin"]


def test_add_and_remove_keep_comments_and_order():
    added = jsonc.add_to_array(DOC, "plugin", "./x.js")
    assert jsonc.loads(added)["plugin"] == ["other-plugin", "./x.js"]
    assert "// my settings" in added and "/* keep me */" in added and "// theirs" in added
    assert list(jsonc.loads(added)) == ["$schema", "theme", "plugin", "model"]
    assert jsonc.remove_from_array(added, "plugin", "./x.js").replace(" ", "") == DOC.replace(" ", "")


def test_add_key_when_missing_and_to_empty_array():
    text = '{\n  "theme": "dark" // c\n}\n'
    added = jsonc.add_to_array(text, "plugin", "./x.js")
    assert jsonc.loads(added) == {"theme": "dark", "plugin": ["./x.js"]} and "// c" in added
    assert jsonc.loads(jsonc.add_to_array("{}", "plugin", "p")) == {"plugin": ["p"]}
    assert jsonc.loads(jsonc.add_to_array('{"plugin": []}', "plugin", "p")) == {"plugin": ["p"]}


def test_remove_only_element_and_absent():
    text = '{"plugin": ["./x.js"], "a": 1}'
    assert jsonc.loads(jsonc.remove_from_array(text, "plugin", "./x.js")) == {"plugin": [], "a": 1}
    assert jsonc.remove_from_array(text, "plugin", "nope") == text


def test_strings_with_comment_markers_are_not_comments():
    text = '{"url": "http://x//y", "plugin": ["a/*b*/"]}'
    assert jsonc.loads(jsonc.add_to_array(text, "plugin", "c")) == {"url": "http://x//y", "plugin": ["a/*b*/", "c"]}


def test_invalid():
    with pytest.raises(ValueError):
        jsonc.loads('{"a": ')


@pytest.mark.parametrize(
    "text",
    [
        DOC,
        "{}",
        "{ }\n",
        "{\n  // nothing yet\n}\n",
        '{\n  "theme": "dark" // c\n}\n',
        '{\n  "theme": "dark",\n}',
        '{"plugin": []}',
        '{"plugin": [\n  // none yet\n]}',
        '{\r\n  "theme": "dark"\r\n}\r\n',
    ],
)
def test_add_is_one_insertion_and_remove_key_undoes_it(text):
    at, inserted = jsonc.insertion(text, "plugin", "./x.js")
    added = jsonc.add_to_array(text, "plugin", "./x.js")
    assert added == text[:at] + inserted + text[at:]
    assert "./x.js" in jsonc.loads(added)["plugin"]
    if "plugin" not in jsonc.loads(text):
        undone = jsonc.remove_key(jsonc.remove_from_array(added, "plugin", "./x.js"), "plugin")
        if jsonc.tokens(text) == [("{", 0, 1, 0), ("}", len(text.rstrip()) - 1, len(text.rstrip()), 0)]:
            # `{}` and `{\n}` give the same text: only the recorded insertion tells them apart.
            assert jsonc.loads(undone) == {}
        else:
            assert undone == text


def test_remove_key_first_middle_last_and_absent():
    text = '{\n  "a": [1, {"b": 2}],\n  "plugin": ["p"], // ours\n  "c": {"d": []}\n}\n'
    assert jsonc.remove_key(text, "a") == '{\n  "plugin": ["p"], // ours\n  "c": {"d": []}\n}\n'
    assert jsonc.remove_key(text, "plugin") == '{\n  "a": [1, {"b": 2}],\n  // ours\n  "c": {"d": []}\n}\n'
    assert jsonc.remove_key(text, "c") == '{\n  "a": [1, {"b": 2}],\n  "plugin": ["p"] // ours\n}\n'
    assert jsonc.remove_key(text, "d") == text  # not top-level
    assert jsonc.loads(jsonc.remove_key('{"only": 1}', "only")) == {}
    assert jsonc.remove_key('{"only": [1], // x\n}', "only") == "{ // x\n}"
    assert jsonc.remove_key('{"a": 1, "only": [1], }', "only") == '{"a": 1, }'
