"""Real msal against a local OpenID Connect identity provider."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from periscope_hooks import paths
from periscope_hooks.auth import Auth, AuthRequired, redirect_port
from periscope_hooks.config import load_user_config
from periscope_hooks.errors import UserError
from testing.idp import LocalIdP, play_browser
from testing.tls import make_cert, server_context
from testing.util import REPO_ROOT, periscope


def browse(uri: str) -> None:
    """Play the user's browser, as msal's auth_uri_callback."""
    threading.Thread(target=play_browser, args=(uri, os.environ["SSL_CERT_FILE"]), daemon=True).start()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def idp(cert, monkeypatch):
    # TLS verification stays on: the test trusts its own certificate through the usual variables.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    with LocalIdP(access_ttl=3600, tls=server_context(*cert)) as server:
        yield server


def config_for(idp, endpoint="http://127.0.0.1:9/v1/events"):
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "endpoint": endpoint,
                "client_id": "periscope-cli",
                "authority": idp.authority,
                "scopes": ["api://periscope/ingest"],
            }
        )
    )
    return load_user_config()


def test_first_login_silent_refresh_and_cache_permissions(idp):
    cfg = config_for(idp)
    who = Auth(cfg).login(auth_uri_callback=browse, timeout=30)
    assert who == "dev@example.com"
    cache = paths.token_cache_path()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    data = json.loads(cache.read_text())  # msal's serialized cache
    assert {"AccessToken", "RefreshToken", "Account"} <= set(data)
    assert Auth.cached_username() == "dev@example.com"
    auth = Auth(cfg)  # a new process would load the cache from disk
    token = auth.access_token()
    assert idp.is_valid(token)
    idp.expire_access_tokens()
    fresh = Auth(cfg).access_token(force_refresh=True)
    assert fresh != token and idp.is_valid(fresh) and "refresh_token" in idp.grants
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_a_refresh_token_rotated_by_another_flusher_is_read_again(idp):
    """A provider that spends a refresh token once used, and two flushers (two repositories, one
    token cache): the one that read the cache first refreshed with the spent token and said
    "sign in again" though the cache on disk held a good one (a helper's sweep)."""
    cfg = config_for(idp)
    Auth(cfg).login(auth_uri_callback=browse, timeout=30)
    idp.rotate_refresh_tokens = True
    first, second = Auth(cfg), Auth(cfg)
    assert idp.is_valid(first.access_token())  # read the cache, holding the refresh token
    idp.expire_access_tokens()
    assert idp.is_valid(second.access_token(force_refresh=True))  # refreshed: the old token is spent
    idp.expire_access_tokens()
    assert idp.is_valid(first.access_token(force_refresh=True))
    assert idp.grants.count("refresh_token") == 2


def test_expired_refresh_token_requires_login(idp):
    cfg = config_for(idp)
    Auth(cfg).login(auth_uri_callback=browse, timeout=30)
    idp.expire_refresh_tokens()
    with pytest.raises(AuthRequired):
        Auth(cfg).access_token(force_refresh=True)


def test_a_token_endpoint_redirecting_to_plain_http_gets_no_refresh_token(idp):
    """msal's HTTP client followed a 307 from the token endpoint to http://elsewhere and POSTed the
    refresh token there in the clear.  Redirects are followed to HTTPS only: the refresh fails
    like a network failure, and the other server receives nothing."""
    import http.server
    import threading

    received = []

    class Mirror(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    mirror = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=mirror.serve_forever, daemon=True).start()
    try:
        cfg = config_for(idp)
        Auth(cfg).login(auth_uri_callback=browse, timeout=30)
        idp.redirect_token_to = f"http://127.0.0.1:{mirror.server_address[1]}/token"
        with pytest.raises(ConnectionError, match="token refresh failed"):
            Auth(cfg).access_token(force_refresh=True)
    finally:
        mirror.shutdown()
    assert received == []


def test_not_signed_in(idp):
    with pytest.raises(AuthRequired):
        Auth(config_for(idp)).access_token()


def test_port_in_use_is_named(idp):
    cfg = config_for(idp)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", redirect_port()))
    blocker.listen()
    try:
        with pytest.raises(UserError) as info:
            Auth(cfg).login(auth_uri_callback=browse, timeout=5)
        assert str(redirect_port()) in info.value.message and "lsof" in info.value.hint
    finally:
        blocker.close()


def test_cli_login_whoami_logout_with_a_browser(idp):
    config_for(idp)
    env = {"BROWSER": f"{sys.executable} {REPO_ROOT / 'testing' / 'fake_browser.py'} %s"}
    proc = periscope("login", env=env)
    assert "signed in as dev@example.com" in proc.stdout
    assert proc.stderr.startswith("opening the browser to sign in (redirect to http://localhost:")
    assert periscope("whoami").stdout.strip() == "dev@example.com"
    periscope("logout")
    proc = periscope("whoami", check=False)
    assert proc.returncode == 1 and "hint: run periscope login" in proc.stderr


def test_login_without_endpoint_explains(tmp_path):
    proc = periscope("login", check=False)
    assert proc.returncode == 1 and "local store" in proc.stderr


def test_who_is_signed_in_is_read_from_the_cache_without_the_network(idp):
    cfg = config_for(idp)
    Auth(cfg).login(auth_uri_callback=browse, timeout=30)
    idp.__exit__(None, None, None)  # the identity provider is gone: status must not need it
    assert Auth.cached_username() == "dev@example.com"
    repo = Path(os.environ["HOME"]) / "r"
    repo.mkdir()
    __import__("subprocess").run(["git", "init", "-q", str(repo)], check=True)
    out = periscope("status", "--repo", str(repo)).stdout
    assert "signed in as dev@example.com" in out


def test_cached_username_of_a_missing_or_garbled_cache(tmp_path):
    assert Auth.cached_username(str(tmp_path / "none.json")) is None
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(ValueError):
        Auth.cached_username(str(garbled))
    empty = tmp_path / "empty.json"
    empty.write_text('{"Account": {}}')
    assert Auth.cached_username(str(empty)) is None


def test_logout_forgets_the_tokens_whatever_the_config(tmp_path):
    cache = paths.token_cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"Account": {"a": {"username": "dev@example.com"}}}))
    paths.sign_in_required_path().touch()
    assert periscope("whoami").stdout.strip() == "dev@example.com"
    # No analytics.json at all (the endpoint was removed): logout still works.
    proc = periscope("logout")
    assert proc.stdout.strip() == "signed out"
    assert not cache.exists() and not paths.sign_in_required_path().exists()
    assert periscope("logout").stdout.strip() == "not signed in"
    proc = periscope("whoami", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: not signed in hint: run periscope login"
