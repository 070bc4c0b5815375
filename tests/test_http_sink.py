"""HttpSink against scripted responses (httpx MockTransport)."""
from __future__ import annotations

import gzip
import json

import httpx
import pytest

from periscope_hooks.auth import AuthRequired
from periscope_hooks.config import UserConfig
from periscope_hooks.sinks import ACCEPTED, REJECTED
from periscope_hooks.sinks.http import HttpSink, parse_retry_after
from testing.delivery import make_events

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
    assert seen["headers"]["content-encoding"] == "gzip" and seen["headers"]["user-agent"].startswith("periscope-hooks/")
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
        return httpx.Response(413) if len(request.content) > 300 or b"yyyy" in gzip.decompress(request.content) else accept_all(request)

    out = sink_with(handler).send(evs)
    assert out.results[evs[2]["event_id"]][0] == REJECTED and "413" in out.results[evs[2]["event_id"]][1]
    assert [out.results[e["event_id"]][0] for i, e in enumerate(evs) if i != 2] == [ACCEPTED] * 3


def test_other_4xx_dead_letters_only_the_rejected():
    evs = make_events(3)

    def handler(request):
        results = [{"event_id": e["event_id"], "status": "rejected" if e is evs[0] or e["n"] == 0 else "accepted",
                    "reason": "bad field"} for e in json.loads(gzip.decompress(request.content))["events"]]
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
    assert 55 <= parse_retry_after(__import__("email.utils").utils.formatdate(__import__("time").time() + 60, usegmt=True)) <= 60
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
