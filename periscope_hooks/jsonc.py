"""Minimal JSONC (JSON with comments and trailing commas) reading and in-place editing.

OpenCode's opencode.json may be JSONC.  Edits here are textual insertions and
removals at positions found by a small scanner, so a user's comments, key order
and formatting survive `install-opencode` / `uninstall-opencode`.
"""
from __future__ import annotations

import json
from typing import Any, List, Optional, Tuple

Token = Tuple[str, int, int, int]  # (kind, start, end, depth) kind: { } [ ] : , str lit


def tokens(text: str) -> List[Token]:
    out: List[Token] = []
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
    parts: List[str] = []
    for k, (kind, s, e, _) in enumerate(toks):
        if kind == "," and k + 1 < len(toks) and toks[k + 1][0] in "}]":
            continue
        parts.append(text[s:e])
    return json.loads(" ".join(parts) if parts else "")


def _top_level_array(text: str, key: str) -> Optional[Tuple[int, int, List[Token]]]:
    """(index of '[', index of ']', element tokens) of a top-level key's array value."""
    toks = tokens(text)
    for k, (kind, s, e, depth) in enumerate(toks):
        if kind == "str" and depth == 1 and k + 2 < len(toks) and toks[k + 1][0] == ":" and json.loads(text[s:e]) == key:
            if toks[k + 2][0] != "[":
                return None
            open_tok = toks[k + 2]
            inner_depth = open_tok[3] + 1
            for m in range(k + 3, len(toks)):
                if toks[m][0] == "]" and toks[m][3] == open_tok[3]:
                    elems = [t for t in toks[k + 3:m] if t[3] == inner_depth and t[0] != ","]
                    return open_tok[1], toks[m][1], elems
    return None


def add_to_array(text: str, key: str, value: str) -> str:
    """Append a string to the top-level `key` array, creating the key if missing."""
    found = _top_level_array(text, key)
    item = json.dumps(value)
    if found is not None:
        open_i, close_i, elems = found
        if not elems:
            return text[:open_i + 1] + item + text[close_i:]
        last_end = elems[-1][2]
        return text[:last_end] + ", " + item + text[last_end:]
    toks = tokens(text)
    if not toks or toks[0][0] != "{":
        raise ValueError("the top level is not an object")
    close = next(t for t in reversed(toks) if t[0] == "}" and t[3] == 0)
    members = [t for t in toks if t[3] == 1 and t[0] not in (",",)]
    insert_at = members[-1][2] if members else toks[0][2]
    sep = "," if members else ""
    indent = "  "
    return text[:insert_at] + f'{sep}\n{indent}"{key}": [{item}]' + (text[insert_at:] if members else "\n" + text[close[1]:])


def remove_from_array(text: str, key: str, value: str) -> str:
    """Remove every element equal to `value` from the top-level `key` array (a no-op if absent)."""
    while True:
        found = _top_level_array(text, key)
        if found is None:
            return text
        _, _, elems = found
        idx = next((i for i, t in enumerate(elems) if t[0] == "str" and json.loads(text[t[1]:t[2]]) == value), None)
        if idx is None:
            return text
        s, e = elems[idx][1], elems[idx][2]
        if idx + 1 < len(elems):  # remove up to the next element
            e = elems[idx + 1][1]
        elif idx > 0:  # last of several: remove from the previous element's end
            s = elems[idx - 1][2]
        text = text[:s] + text[e:]
