from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from periscope_hooks.config import is_loopback, load_user_config
from periscope_hooks.errors import UserError


def write(data):
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_missing_file_means_local_store():
    cfg = load_user_config()
    assert cfg.endpoint is None and not cfg.signs_in


def test_full_config_and_env_overrides(monkeypatch):
    write(
        {
            "endpoint": "https://ingest.example/v1/events",
            "client_id": "cid",
            "authority": "https://login.example/t",
            "scopes": ["a", "b"],
        }
    )
    cfg = load_user_config()
    assert (cfg.endpoint, cfg.client_id, cfg.scopes, cfg.signs_in) == (
        "https://ingest.example/v1/events",
        "cid",
        ["a", "b"],
        True,
    )
    monkeypatch.setenv("PERISCOPE_ENDPOINT", "http://127.0.0.1:9/v1/events")
    monkeypatch.setenv("PERISCOPE_SCOPES", "x y")
    cfg = load_user_config()
    assert cfg.endpoint == "http://127.0.0.1:9/v1/events" and cfg.scopes == ["x", "y"]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must hold a JSON object"),
        ({"endpoint": "https://x.example", "colour": "blue"}, "unknown key(s): colour"),
        ({"endpoint": "http://ingest.example/v1"}, "uses http:// for a non-loopback host"),
        ({"endpoint": "ftp://x.example"}, "not an http(s) URL"),
        ({"endpoint": "https://x.example", "client_id": "c"}, "without authority"),
        ({"scopes": "one"}, "must be a list of strings"),
        # urlsplit raised ValueError for these, out of every command that reads the config
        ({"endpoint": "https://[::1"}, "not an http(s) URL: https://[::1"),
        ({"endpoint": "https://127.0.0.1:x/"}, "not an http(s) URL"),
        ({"endpoint": "https://x.example/\ud800"}, "not an http(s) URL: https://x.example/\\ud800"),
        ({"endpoint": "ftp://a\nb"}, "not an http(s) URL: ftp://a\\nb"),
        ({"endpoint": "https://x.example/a b"}, "not an http(s) URL"),
        # msal refuses an http authority, even on loopback: said here, not at sign-in
        ({"endpoint": "https://x.example", "client_id": "c", "authority": "http://127.0.0.1:9/t"}, "uses http://"),
        ("[" * 100_000, "not valid JSON"),  # RecursionError
    ],
)
def test_broken_configs_name_the_file_and_the_fix(content, needle):
    path = write(content)
    with pytest.raises(UserError) as info:
        load_user_config()
    assert needle in info.value.message and str(path) in info.value.message + (info.value.hint or "")
    assert info.value.hint


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]") and is_loopback("127.8.9.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com") and not is_loopback(None)
