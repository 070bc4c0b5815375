from __future__ import annotations

import json

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
    assert jsonc.remove_from_array(added, "plugin", "./x.js") .replace(" ", "") == DOC.replace(" ", "")


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
