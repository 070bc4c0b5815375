"""A local OpenID Connect identity provider on 127.0.0.1 for testing the real msal.

Discovery, /authorize (redirects straight back with a code, as if the user had
signed in), and /token with the authorization_code (PKCE S256 checked) and
refresh_token grants.  Access tokens live `access_ttl` seconds; refresh tokens
can be expired on demand (`expire_refresh_tokens()`), as after long inactivity.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import ssl
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from testing.server import LocalServer, QuietHandler


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class LocalIdP(LocalServer):
    def __init__(self, username: str = "dev@example.com", access_ttl: int = 3600, tls=None) -> None:
        self.username = username
        self.access_ttl = access_ttl
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, float] = {}  # token -> expiry
        self.refresh_tokens: dict[str, bool] = {}  # token -> still valid
        self.grants: list = []
        self.redirect_token_to: str | None = None  # set: the token endpoint answers 307 to there
        self.token_endpoint_fails = False  # set: the token endpoint answers 500 server_error
        # set: the discovery document is an outage's answer: "503" (a maintenance page), "404", or
        # "200-error" (an error object where the document belongs)
        self.discovery_fails: str | None = None
        self.rotate_refresh_tokens = False  # set: a refresh token is spent once used (Auth0, Okta)
        self.lock = threading.Lock()
        idp = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path.endswith("/.well-known/openid-configuration"):
                    if idp.discovery_fails == "200-error":
                        return self.reply_json(200, {"error": "temporarily_unavailable"})
                    if idp.discovery_fails:
                        return self.reply(int(idp.discovery_fails), b"<html>maintenance</html>", "text/html")
                    return self.reply_json(200, idp.discovery())
                if url.path == "/tenant/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = q
                    params = {"code": code, "state": q.get("state", "")}
                    if q.get("response_mode") == "form_post":
                        # What a real provider sends back: a form the browser submits at once.
                        inputs = "".join(
                            f'<input type="hidden" name="{k}" value="{html.escape(v)}"/>' for k, v in params.items()
                        )
                        page = (
                            f'<html><body onload="document.forms[0].submit()"><form method="post" '
                            f'action="{html.escape(q["redirect_uri"])}">{inputs}</form></body></html>'
                        ).encode()
                        return self.reply(200, page, "text/html")
                    self.send_response(302)
                    self.send_header("Location", q["redirect_uri"] + "?" + urlencode(params))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.reply_json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if idp.redirect_token_to:  # a hostile or misconfigured provider
                    self.send_response(307)
                    self.send_header("Location", idp.redirect_token_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = idp.token(form)
                self.reply_json(status, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # msal requires an https authority
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.authority = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/tenant"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.authority,
            "authorization_endpoint": f"{self.authority}/authorize",
            "token_endpoint": f"{self.authority}/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["none"],
        }

    def _id_token(self, client_id: str, nonce: str | None) -> str:
        now = int(time.time())
        claims = {
            "iss": self.authority,
            "aud": client_id,
            "sub": "user-1",
            "preferred_username": self.username,
            "name": "Dev User",
            "iat": now,
            "exp": now + 3600,
            "oid": "user-1",
            "tid": "tenant",
        }
        if nonce:
            claims["nonce"] = nonce
        return ".".join(
            [_b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()), _b64(json.dumps(claims).encode()), ""]
        )

    def _issue(self, client_id: str, scope: str, nonce: str | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[access] = time.time() + self.access_ttl
            self.refresh_tokens[refresh] = True
        return {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.access_ttl,
            "scope": scope,
            "id_token": self._id_token(client_id, nonce),
        }

    def token(self, form: dict[str, str]):
        grant = form.get("grant_type")
        self.grants.append(grant)
        if grant == "authorization_code":
            req = self.codes.pop(form.get("code", ""), None)
            if req is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            verifier = form.get("code_verifier", "")
            if _b64(hashlib.sha256(verifier.encode()).digest()) != req.get("code_challenge"):
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
            return 200, self._issue(form.get("client_id", ""), req.get("scope", ""), req.get("nonce"))
        if grant == "refresh_token":
            if self.token_endpoint_fails:
                return 500, {"error": "server_error", "error_description": "the provider is having a bad day"}
            with self.lock:
                valid = self.refresh_tokens.get(form.get("refresh_token", ""))
                if valid and self.rotate_refresh_tokens:
                    self.refresh_tokens[form.get("refresh_token", "")] = False
            if not valid:
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS700082: The refresh token has expired.",
                }
            return 200, self._issue(form.get("client_id", ""), form.get("scope", ""), None)
        return 400, {"error": "unsupported_grant_type"}

    def is_valid(self, access_token: str) -> bool:
        with self.lock:
            expiry = self.access_tokens.get(access_token)
        return expiry is not None and expiry > time.time()

    def expire_access_tokens(self) -> None:
        with self.lock:
            for t in self.access_tokens:
                self.access_tokens[t] = 0

    def expire_refresh_tokens(self) -> None:
        with self.lock:
            for t in self.refresh_tokens:
                self.refresh_tokens[t] = False


def play_browser(uri: str, cafile: str | None = None) -> None:
    """Act as the user's browser: open the authorize URL and submit the provider's form
    (or follow its redirect) back to msal's listener on localhost:$PERISCOPE_LOGIN_PORT (14550 by default)."""
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(uri, timeout=30, context=ctx) as resp:
        page = resp.read().decode()
    m = re.search(r'<form method="post" action="([^"]+)">(.*)</form>', page)
    if not m:
        return
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', m.group(2)))
    data = urlencode({k: html.unescape(v) for k, v in fields.items()}).encode()
    with urllib.request.urlopen(urllib.request.Request(html.unescape(m.group(1)), data=data), timeout=30) as resp:
        resp.read()
