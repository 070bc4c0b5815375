"""HttpSink against scripted responses (httpx MockTransport); at the end, TLS and proxies against
real servers on 127.0.0.1 (testing/receiver.py with tls, testing/proxy.py)."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest

from periscope_hooks.auth import AuthRequired
from periscope_hooks.config import UserConfig
from periscope_hooks.delivery_status import status_lines
from periscope_hooks.flush import flush_state_dir
from periscope_hooks.sinks import ACCEPTED, REJECTED
from periscope_hooks.sinks.http import HttpSink, parse_retry_after
from periscope_hooks.state import open_state_db
from testing.delivery import assert_books_balance, books, fill_outbox, make_events, point_config_at, quick_delivery
from testing.otlp import need
from testing.proxy import ForwardProxy
from testing.receiver import Receiver
from testing.tls import make_cert, server_context

URL = "https://ingest.example/v1/events"


def sink_with(handler, auth=None):
    return HttpSink(UserConfig(endpoint=URL), transport=httpx.MockTransport(handler), auth=auth)


def accept_all(request):
    events = json.loads(gzip.decompress(request.content))["events"]
    return httpx.Response(200, json={"results": [{"event_id": e["event_id"], "status": "accepted"} for e in events]})


def test_request_format_and_acceptance():
    seen = {}

    def handler(request):
        seen.update(headers=dict(request.headers), body=json.loads(gzip.decompress(request.content)))
        return accept_all(request)

    evs = make_events(3)
    out = sink_with(handler).send(evs)
    assert all(v == (ACCEPTED, None) for v in out.results.values()) and len(out.results) == 3
    assert seen["headers"]["content-encoding"] == "gzip" and seen["headers"]["user-agent"].startswith(
        "periscope-hooks/"
    )
    assert seen["body"] == {"events": evs}


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
def test_retryable_statuses_keep_everything(status):
    out = sink_with(lambda r: httpx.Response(status, headers={"Retry-After": "7"})).send(make_events(2))
    assert out.results == {} and out.retry_after == 7 and str(status) in out.error


def test_garbled_2xx_counts_as_not_delivered():
    out = sink_with(lambda r: httpx.Response(200, content=b'{"results": [')).send(make_events(2))
    assert out.results == {} and "unreadable" in out.error


def test_413_splits_and_dead_letters_a_single_oversized_event():
    evs = make_events(4)
    evs[2]["pad"] = "y" * 5000

    def handler(request):
        return (
            httpx.Response(413)
            if len(request.content) > 300 or b"yyyy" in gzip.decompress(request.content)
            else accept_all(request)
        )

    out = sink_with(handler).send(evs)
    assert out.results[evs[2]["event_id"]][0] == REJECTED and "413" in out.results[evs[2]["event_id"]][1]
    assert [out.results[e["event_id"]][0] for i, e in enumerate(evs) if i != 2] == [ACCEPTED] * 3


def test_other_4xx_dead_letters_only_the_rejected():
    evs = make_events(3)

    def handler(request):
        results = [
            {
                "event_id": e["event_id"],
                "status": "rejected" if e is evs[0] or e["n"] == 0 else "accepted",
                "reason": "bad field",
            }
            for e in json.loads(gzip.decompress(request.content))["events"]
        ]
        return httpx.Response(422, json={"results": results})

    out = sink_with(handler).send(evs)
    assert out.results[evs[0]["event_id"]] == (REJECTED, "bad field")
    assert out.results[evs[1]["event_id"]] == (ACCEPTED, None)


def test_4xx_without_results_isolates_the_culprit():
    evs = make_events(4)

    def handler(request):
        ids = {e["n"] for e in json.loads(gzip.decompress(request.content))["events"]}
        return httpx.Response(400) if 1 in ids else accept_all(request)

    out = sink_with(handler).send(evs)
    assert out.results[evs[1]["event_id"]][0] == REJECTED
    assert sum(1 for v in out.results.values() if v[0] == ACCEPTED) == 3


class FakeAuth:
    """A stand-in identity for the transport-level tests (real msal is tested in test_auth)."""

    def __init__(self, refresh_ok=True):
        self.calls, self.refresh_ok = [], refresh_ok

    def access_token(self, force_refresh=False):
        self.calls.append(force_refresh)
        if force_refresh and not self.refresh_ok:
            raise AuthRequired("expired")
        return "fresh" if force_refresh else "stale"


def test_401_refreshes_once_then_asks_to_sign_in_again():
    auth = FakeAuth()

    def handler(request):
        return accept_all(request) if request.headers["authorization"] == "Bearer fresh" else httpx.Response(401)

    out = sink_with(handler, auth).send(make_events(1))
    assert list(out.results.values()) == [(ACCEPTED, None)] and auth.calls == [False, True]
    out = sink_with(lambda r: httpx.Response(403), FakeAuth()).send(make_events(1))
    assert out.stop and "sign in again" in out.error and out.results == {}
    out = sink_with(lambda r: httpx.Response(401), FakeAuth(refresh_ok=False)).send(make_events(1))
    assert out.stop and "periscope login" in out.error
    # No OAuth client configured: `periscope login` could not help, so it says what to configure.
    out = sink_with(lambda r: httpx.Response(401)).send(make_events(1))
    assert out.stop and "no sign-in is configured: add client_id and authority" in out.error
    assert "periscope login" not in out.error


def test_a_rejection_echoing_the_access_token_never_keeps_it():
    """A receiver's per-event reason echoed the Authorization header: the bearer token went into
    the dead letter's reason (state.db) and `status`."""
    token = "eyJhbGciOiJSUzI1NiJ9.secret-access-token"

    class TokenAuth:
        def access_token(self, force_refresh=False):
            return token

    def handler(request):
        events = json.loads(gzip.decompress(request.content))["events"]
        reason = f"schema violation (auth was {request.headers['authorization']})"
        return httpx.Response(
            200, json={"results": [{"event_id": e["event_id"], "status": "rejected", "reason": reason} for e in events]}
        )

    out = sink_with(handler, TokenAuth()).send(make_events(2))
    assert {v for v in out.results.values()} == {(REJECTED, "schema violation (auth was Bearer <hidden>)")}


def test_connection_errors_keep_everything():
    def handler(request):
        raise httpx.ConnectError("refused")

    out = sink_with(handler).send(make_events(2))
    assert out.results == {} and "ConnectError" in out.error


def test_parse_retry_after():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("999999") == 3600
    assert parse_retry_after("-5") == 0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert (
        55
        <= parse_retry_after(__import__("email.utils").utils.formatdate(__import__("time").time() + 60, usegmt=True))
        <= 60
    )
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    # A year past datetime's range: OverflowError reached delivery ("sink failed: OverflowError").
    assert parse_retry_after("Thu, 01 Jan 99999999999 00:00:00 GMT") is None


# --- integration: TLS and proxies, against real servers on 127.0.0.1 -----------------------------
# The issue: "HTTPS is required except for loopback addresses; TLS verification stays on; proxies
# and custom CA bundles work through the usual environment variables."  httpx (trust_env) reads
# SSL_CERT_FILE, then SSL_CERT_DIR, else certifi's bundle; and HTTP(S)_PROXY / ALL_PROXY / NO_PROXY
# (either case) through urllib's getproxies().  It has no loopback exception of its own: with a
# proxy set and NO_PROXY unset, even 127.0.0.1 goes through the proxy, so each proxy test asserts
# the proxy's own record, and none can pass by going direct.

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def net_env(monkeypatch):
    """No proxy and no CA bundle from the outer environment; quick backoff."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    quick_delivery(monkeypatch)
    return monkeypatch


@pytest.fixture
def cert(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    return make_cert(d)  # (cert.pem, key.pem): self-signed for 127.0.0.1 / localhost


@pytest.fixture
def https_receiver(cert, net_env):
    with Receiver(tls=server_context(*cert)) as r:
        assert r.url.startswith("https://127.0.0.1:")
        point_config_at(r.url)
        yield r


@pytest.fixture
def http_receiver(net_env):
    with Receiver() as r:
        point_config_at(r.url)
        yield r


@pytest.fixture
def proxy():
    with ForwardProxy() as p:
        yield p


def hostport(url):
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def status_of(sd):
    conn = open_state_db(sd)
    try:
        return dict(status_lines(conn))
    finally:
        conn.close()


def deliver_and_check_exactly_once(receiver, sd, n=30):
    evs = make_events(n)
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.error is None and result.delivered == n, result
    assert set(receiver.events) == {e["event_id"] for e in evs} and receiver.deliveries == n
    assert books(sd)["message"]["delivered"] == n
    assert_books_balance(sd)
    assert "delivery" not in status_of(sd)  # no last error left behind
    return evs


def test_https_receiver_trusted_through_ssl_cert_file(https_receiver, sd, cert, net_env):
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    deliver_and_check_exactly_once(https_receiver, sd)


def test_https_receiver_trusted_through_ssl_cert_dir(https_receiver, sd, cert, tmp_path, net_env):
    need(shutil.which("openssl") is not None, "openssl (the subject hash of a CA directory)")
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(cert[0])], capture_output=True, text=True, check=True
    ).stdout.strip()
    ca_dir = tmp_path / "ca-dir"
    ca_dir.mkdir()
    shutil.copy(cert[0], ca_dir / f"{subject_hash}.0")
    net_env.setenv("SSL_CERT_DIR", str(ca_dir))
    deliver_and_check_exactly_once(https_receiver, sd)


@pytest.mark.parametrize("problem", ["expired", "another host"])
def test_a_certificate_that_expired_or_names_another_host_is_said_so(tmp_path, sd, net_env, problem):
    # Both were "not trusted (... point SSL_CERT_FILE at its bundle)", with SSL_CERT_FILE already
    # naming the right CA: advice that cannot fix either.
    d = tmp_path / "bad-tls"
    d.mkdir()
    cert = make_cert(d, expired=problem == "expired", host="elsewhere.example" if problem == "another host" else None)
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    net_env.setenv("PERISCOPE_FLUSH_BUDGET", "0.5")
    with Receiver(tls=server_context(*cert)) as r:
        point_config_at(r.url)
        fill_outbox(sd, make_events(2))
        result = flush_state_dir(sd)
    expected = {
        "expired": "the endpoint's TLS certificate has expired (or this machine's clock is wrong)",
        "another host": "the endpoint's TLS certificate is for another host name: check the address in the config",
    }[problem]
    assert result.error == expected and r.requests == []
    assert_books_balance(sd, expect_pending=2)


@pytest.mark.parametrize("ca_bundle", ["none", "another bundle"])
def test_untrusted_certificate_delivers_nothing_and_keeps_every_event(https_receiver, sd, cert, net_env, ca_bundle):
    import certifi

    if ca_bundle == "another bundle":  # a CA bundle that does not hold the receiver's certificate
        net_env.setenv("SSL_CERT_FILE", certifi.where())
    net_env.setenv("PERISCOPE_FLUSH_BUDGET", "0.5")
    evs = make_events(5)
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.delivered == 0 and result.retried >= 5
    untrusted = (
        "the endpoint's TLS certificate is not trusted (if your network uses its own CA, point"
        " SSL_CERT_FILE at its bundle)"
    )
    assert result.error == untrusted  # the TLS handshake failed
    # Verification refused the certificate before any HTTP request reached the receiver.
    assert https_receiver.requests == [] and https_receiver.events == {}
    assert_books_balance(sd, expect_pending=5)
    status = status_of(sd)
    assert status["delivery"] == f"last error: {untrusted}"
    assert status["message events"] == "created 5 = delivered 0 + pending 5 + dead-lettered 0 + dropped 0"
    # Trusting the certificate is all it takes: the same events arrive, once each.
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    net_env.setenv("PERISCOPE_FLUSH_BUDGET", "5")
    result = flush_state_dir(sd)
    assert result.error is None and result.delivered == 5
    assert set(https_receiver.events) == {e["event_id"] for e in evs} and https_receiver.deliveries == 5
    assert_books_balance(sd)
    assert "delivery" not in status_of(sd)


def test_https_proxy_tunnels_to_the_receiver(https_receiver, sd, cert, proxy, net_env):
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    net_env.setenv("HTTPS_PROXY", proxy.url)
    deliver_and_check_exactly_once(https_receiver, sd)
    assert proxy.count > 0 and proxy.connects == [hostport(https_receiver.url)] * proxy.count
    assert proxy.forwarded == []  # HTTPS never crosses the proxy in the clear


def test_http_proxy_forwards_to_a_loopback_http_endpoint(http_receiver, sd, proxy, net_env):
    net_env.setenv("HTTP_PROXY", proxy.url)
    deliver_and_check_exactly_once(http_receiver, sd)
    assert proxy.count > 0 and proxy.forwarded == [("POST", http_receiver.url)] * proxy.count


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_no_proxy_bypasses_the_proxy(scheme, request, sd, cert, proxy, net_env):
    receiver = request.getfixturevalue(f"{scheme}_receiver")
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    net_env.setenv("HTTP_PROXY", proxy.url)
    net_env.setenv("HTTPS_PROXY", proxy.url)
    net_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    deliver_and_check_exactly_once(receiver, sd)
    assert proxy.count == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unreachable_proxy_keeps_every_event(scheme, request, sd, cert, net_env):
    receiver = request.getfixturevalue(f"{scheme}_receiver")
    with ForwardProxy() as gone:
        dead_proxy = gone.url  # a port nothing listens on once the proxy has stopped
    net_env.setenv("SSL_CERT_FILE", str(cert[0]))
    net_env.setenv(f"{scheme.upper()}_PROXY", dead_proxy)
    net_env.setenv("PERISCOPE_FLUSH_BUDGET", "0.5")
    evs = make_events(4)
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.delivered == 0 and result.error == "could not reach the endpoint (ConnectError)"
    assert receiver.requests == []  # it did not go direct
    assert_books_balance(sd, expect_pending=4)
    # Without the proxy the same settings deliver: the proxy, and nothing else, was in the way.
    net_env.delenv(f"{scheme.upper()}_PROXY")
    net_env.setenv("PERISCOPE_FLUSH_BUDGET", "5")
    result = flush_state_dir(sd)
    assert result.error is None and result.delivered == 4
    assert set(receiver.events) == {e["event_id"] for e in evs} and receiver.deliveries == 4
    assert_books_balance(sd)
