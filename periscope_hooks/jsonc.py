"""Minimal JSONC (JSON with comments and trailing commas) reading and in-place editing.

OpenCode's opencode.json may be JSONC.  Edits here are textual insertions and
removals at positions found by a small scanner, so a user's comments, key order
and formatting survive `install-opencode` / `uninstall-opencode`.
"""

from __future__ import annotations

import json
from typing import Any

Token = tuple[str, int, int, int]  # (kind, start, end, depth) kind: { } [ ] : , str lit


def tokens(text: str) -> list[Token]:
    out: list[Token] = []
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated comment")
            i = j + 2
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError("unterminated string")
            out.append(("str", i, j + 1, depth))
            i = j + 1
        elif c in "{[":
            out.append((c, i, i + 1, depth))
            depth += 1
            i += 1
        elif c in "}]":
            depth -= 1
            out.append((c, i, i + 1, depth))
            i += 1
        elif c in ":,":
            out.append((c, i, i + 1, depth))
            i += 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n,:]}/":
                j += 1
            out.append(("lit", i, j, depth))
            i = j
    return out


def loads(text: str) -> Any:
    """Parse JSONC: drop comments and trailing commas, then json.loads."""
    toks = tokens(text)
    parts: list[str] = []
    for k, (kind, s, e, _) in enumerate(toks):
        if kind == "," and k + 1 < len(toks) and toks[k + 1][0] in "}]":
            continue
        parts.append(text[s:e])
    return json.loads(" ".join(parts) if parts else "")


def _top_level_array(text: str, key: str) -> tuple[int, int, list[Token]] | None:
    """(index of '[', index of ']', element tokens) of a top-level key's array value."""
    toks = tokens(text)
    for k, (kind, s, e, depth) in enumerate(toks):
        if (
            kind == "str"
            and depth == 1
            and k + 2 < len(toks)
            and toks[k + 1][0] == ":"
            and json.loads(text[s:e]) == key
        ):
            if toks[k + 2][0] != "[":
                return None
            open_tok = toks[k + 2]
            inner_depth = open_tok[3] + 1
            for m in range(k + 3, len(toks)):
                if toks[m][0] == "]" and toks[m][3] == open_tok[3]:
                    elems = [t for t in toks[k + 3 : m] if t[3] == inner_depth and t[0] != ","]
                    return open_tok[1], toks[m][1], elems
    return None


def insertion(text: str, key: str, value: str) -> tuple[int, str]:
    """(offset, text to insert there) that appends a string to the top-level `key` array,
    creating the key if missing.  Always a pure insertion, so removing exactly that slice gives
    the original back byte for byte (what uninstall-opencode relies on)."""
    found = _top_level_array(text, key)
    item = json.dumps(value)
    if found is not None:
        open_i, _, elems = found
        if not elems:
            return open_i + 1, item
        return elems[-1][2], ", " + item
    toks = tokens(text)
    if not toks or toks[0][0] != "{":
        raise ValueError("the top level is not an object")
    members = [t for t in toks if t[3] == 1 and t[0] not in (",",)]
    member = f'\n  "{key}": [{item}]'
    if members:
        return members[-1][2], "," + member
    after_brace = toks[0][2]
    starts_a_line = text.startswith("\n", after_brace) or text.startswith("\r\n", after_brace)
    return after_brace, member + ("" if starts_a_line else "\n")


def add_to_array(text: str, key: str, value: str) -> str:
    """Append a string to the top-level `key` array, creating the key if missing."""
    at, inserted = insertion(text, key, value)
    return text[:at] + inserted + text[at:]


def remove_key(text: str, key: str) -> str:
    """Remove a top-level member, with the comma that separated it (a no-op if absent).
    Undoes `add_to_array` creating the key, keeping everything else as it is."""
    toks = tokens(text)
    members = []  # (index of the key token, index of the value's last token)
    k = 0
    while k < len(toks):
        kind, _, _, depth = toks[k]
        if kind == "str" and depth == 1 and k + 2 < len(toks) and toks[k + 1][0] == ":":
            end = k + 2
            if toks[end][0] in "[{":
                closer = "]" if toks[end][0] == "[" else "}"
                end = next(
                    m for m in range(end + 1, len(toks)) if toks[m][0] == closer and toks[m][3] == toks[k + 2][3]
                )
            members.append((k, end))
            k = end + 1
        else:
            k += 1
    for n, (key_i, end_i) in enumerate(members):
        _, s, key_end, _ = toks[key_i]
        if json.loads(text[s:key_end]) != key:
            continue
        e = toks[end_i][2]
        if n + 1 < len(members):  # followed by another member: up to it, past the comma and blanks
            comma = toks[end_i + 1]
            e = comma[2]
            while e < len(text) and text[e] in " \t\r\n":
                e += 1
        elif n > 0:  # the last of several: the comma after the previous value, then the member
            comma = toks[members[n - 1][1] + 1]  # with the blanks before it, not a comment there
            while s > comma[2] and text[s - 1] in " \t\r\n":
                s -= 1
            return text[: comma[1]] + text[comma[2] : s] + text[e:]
        else:  # the only member: from the brace (`{}` and `{\n}` both become `{\n}`)
            s = toks[0][2]
            if toks[end_i + 1][0] == ",":  # and its trailing comma
                e = toks[end_i + 1][2]
        return text[:s] + text[e:]
    return text


def remove_from_array(text: str, key: str, value: str) -> str:
    """Remove every element equal to `value` from the top-level `key` array (a no-op if absent)."""
    while True:
        found = _top_level_array(text, key)
        if found is None:
            return text
        _, _, elems = found
        idx = next((i for i, t in enumerate(elems) if t[0] == "str" and json.loads(text[t[1] : t[2]]) == value), None)
        if idx is None:
            return text
        s, e = elems[idx][1], elems[idx][2]
        if idx + 1 < len(elems):  # remove up to the next element
            e = elems[idx + 1][1]
        elif idx > 0:  # last of several: remove from the previous element's end
            s = elems[idx - 1][2]
        text = text[:s] + text[e:]
