"""The HTTP sink: batches of events to the Periscope ingest endpoint (docs/ingest-api.md).

One request per batch: JSON `{"events": [...]}`, gzip, `Authorization: Bearer`,
a User-Agent with the version.  The receiver answers with a result per event;
this module turns every kind of answer (and every kind of failure) into a
SendOutcome, so the delivery loop decides what is kept, acknowledged or
dead-lettered.  Nothing here logs payloads, tokens or URLs.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from periscope_hooks import envvars
from periscope_hooks.config import UserConfig
from periscope_hooks.sinks import (
    ACCEPTED,
    REJECTED,
    RETRY,
    SendOutcome,
    certificate_problem,
    halves,
    hide_secrets,
    http_client,
    url_secrets,
)
from periscope_hooks.sinks.deadline import RequestTooSlow, whole_request_within

if TYPE_CHECKING:
    import httpx

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1_000_000
RETRY_AFTER_CAP_S = 3600.0
SIGN_IN_AGAIN = "sign in again: run periscope login"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), clamped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError):  # a year past datetime's range: OverflowError
            return None
    return max(0.0, min(seconds, RETRY_AFTER_CAP_S))


def parse_results(body: bytes, secrets: Iterable[str | None] = ()) -> dict[str, tuple[str, str | None]] | None:
    """Per-event results from a response body; None when it cannot be read.  `secrets`: what a
    rejection's reason must not repeat (it may echo the request's Authorization header)."""
    try:
        data = json.loads(body)
        items = data["results"]
        out: dict[str, tuple[str, str | None]] = {}
        for item in items:
            status = item["status"]
            if status in ("accepted", "duplicate"):
                out[str(item["event_id"])] = (ACCEPTED, None)
            elif status == "rejected":
                reason = hide_secrets(str(item.get("reason") or "rejected by the receiver"), secrets)
                out[str(item["event_id"])] = (REJECTED, reason[:300])
            else:
                out[str(item["event_id"])] = (RETRY, None)
        return out
    except (ValueError, KeyError, TypeError):
        return None


class HttpSink:
    name = "Periscope endpoint"
    max_batch_events = MAX_BATCH_EVENTS
    max_batch_bytes = MAX_BATCH_BYTES

    def __init__(
        self, cfg: UserConfig, *, transport: Any = None, timeout: float | None = None, auth: Any = None
    ) -> None:
        if not cfg.endpoint:
            raise ValueError("the HTTP sink needs an endpoint")
        self.cfg = cfg
        self.endpoint: str = cfg.endpoint
        self._endpoint_secrets = url_secrets(cfg.endpoint)  # what a receiver's words may quote back
        self.timeout = timeout if timeout is not None else envvars.seconds("PERISCOPE_HTTP_TIMEOUT")
        self._transport = transport
        self._new_client()
        if auth is None and cfg.signs_in:
            from periscope_hooks.auth import Auth

            auth = Auth(cfg)
        self.auth = auth
        self._token: str | None = None
        self._refreshed = False
        self._signed_in_noted = False
        self._give_up_at = 0.0  # send() sets it: when finding a refused event stops (halves)
        # The endpoint took an event in this flush: a lone event it refuses is the event's fault.
        self._accepted_some = False

    def _new_client(self) -> None:
        old, self.client = getattr(self, "client", None), http_client(self._transport, self.timeout)
        if old is not None:
            old.close()

    def close(self) -> None:
        self.client.close()

    def _auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        if self.auth is None:
            return {}
        if self._token is None or force_refresh:
            before, self._token = self._token, self.auth.access_token(force_refresh=force_refresh)
            if force_refresh and self._token == before:
                # msal hands back the token it holds when a refresh fails and that token has not
                # expired by its clock: the provider failed, the sign-in stands.
                raise ConnectionError("token refresh failed: the identity provider issued no new token")
        return {"Authorization": f"Bearer {self._token}"}

    def send(self, events: list[dict[str, Any]]) -> SendOutcome:
        self._give_up_at = time.monotonic() + envvars.seconds("PERISCOPE_FLUSH_BUDGET")
        outcome = self._send(events, top=True)
        self._accepted_some = self._accepted_some or outcome.accepted_any
        return outcome

    def _post(self, events: list[dict[str, Any]], force_refresh: bool) -> httpx.Response:
        body = gzip.compress(json.dumps({"events": events}, separators=(",", ":")).encode())
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", **self._auth_header(force_refresh)}
        return self.client.post(self.endpoint, content=body, headers=headers)

    def _send(self, events: list[dict[str, Any]], force_refresh: bool = False, top: bool = False) -> SendOutcome:
        import httpx

        from periscope_hooks.auth import AuthRequired

        try:
            with whole_request_within(self.timeout):
                resp = self._post(events, force_refresh)
        except RequestTooSlow:
            self._new_client()  # the interrupted one may hold a half-read connection
            return SendOutcome(error="the endpoint did not answer in time")
        except AuthRequired:
            from periscope_hooks.auth import set_sign_in_required

            set_sign_in_required(True)
            return SendOutcome(error=SIGN_IN_AGAIN, stop=True)
        except ConnectionError as e:  # the token refresh could not reach the identity provider
            self._refreshed = False  # a refresh that could not happen is not the one this run gets
            return SendOutcome(error=str(e))
        except httpx.TimeoutException:
            return SendOutcome(error="the endpoint did not answer in time")
        except httpx.HTTPError as e:  # connection refused, DNS, TLS, protocol errors
            problem = certificate_problem(
                str(e), "the endpoint", "if your network uses its own CA, point SSL_CERT_FILE at its bundle"
            )
            if problem:
                return SendOutcome(error=problem)
            return SendOutcome(error=f"could not reach the endpoint ({type(e).__name__})")
        status = resp.status_code
        if status in (401, 403):
            if not self._refreshed and self.auth is not None:
                self._refreshed = True  # one silent refresh until a batch is accepted again
                return self._send(events, force_refresh=True, top=top)
            if self.auth is None:  # no OAuth client configured: signing in cannot help
                return SendOutcome(
                    error=f"the endpoint answered HTTP {status} and no sign-in is configured:"
                    f" add client_id and authority to {self.cfg.path or 'analytics.json'}",
                    stop=True,
                )
            from periscope_hooks.auth import set_sign_in_required

            set_sign_in_required(True)
            return SendOutcome(error=f"{SIGN_IN_AGAIN} (the endpoint answered HTTP {status})", stop=True)
        # Any other answer did not refuse the token: one that expires again later in this flush
        # (a 503 waited out in between) gets its silent refresh too.
        self._refreshed = False
        if status in (408, 425, 429) or status >= 500:
            return SendOutcome(
                error=f"the endpoint answered HTTP {status}",
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            # Not followed (a redirect may lead elsewhere with the token), and not a refusal of the
            # events: halved as one, every event of the history was dead-lettered by a 301.
            target = urlsplit(urljoin(str(resp.url), resp.headers.get("Location", "")))
            where = f" to {target.scheme}://{target.hostname}" if target.hostname else ""
            return SendOutcome(
                error=f"the endpoint answered HTTP {status} (a redirect{where}); events are kept:"
                f" set the endpoint to the address it moved to in {self.cfg.path or 'analytics.json'}",
                stop=True,
            )
        results = parse_results(resp.content, [self._token, *self._endpoint_secrets])
        if 200 <= status < 300:
            if results is None:
                return SendOutcome(error=f"unreadable response to HTTP {status}; the batch is kept")
            self._refreshed = False  # a token that expires later in a long flush is refreshed again
            if self.auth is not None and not self._signed_in_noted:
                from periscope_hooks.auth import set_sign_in_required

                set_sign_in_required(False)  # an earlier run's "sign in again" is over
                self._signed_in_noted = True
            return SendOutcome(results=results)
        if status == 413 or results is None:
            # Too large, or refused without saying which event: halve until the culprit stands alone.
            if len(events) == 1:
                if status == 413:
                    return SendOutcome(
                        results={events[0]["event_id"]: (REJECTED, "too large for the endpoint (HTTP 413)")}
                    )
                if top and not self._accepted_some:
                    # A lone event refused without a word (a flush after each message sends one):
                    # the event or the endpoint?  Kept until a batch with others tells (below), or
                    # the endpoint takes another event in this flush (an event kept waiting for its
                    # retry is sent alone after the new ones: it was kept for ever).
                    return SendOutcome(
                        error=f"the endpoint refused the only event of a batch (HTTP {status}); it is kept"
                        " until others go with it",
                        stop=True,
                    )
                return SendOutcome(
                    results={events[0]["event_id"]: (REJECTED, f"refused by the endpoint (HTTP {status})")}
                )
            merged = halves(events, self._send, self._give_up_at)
            if top and merged.results and all(s == REJECTED for s, _ in merged.results.values()):
                # Every event refused one by one (those a passing error, a 503, left unanswered
                # included): not bad events but an endpoint that refuses us (a wrong path, a proxy's
                # error page).  Keep them rather than dead-letter the whole history, as the OTLP
                # sink does; `status` shows why.
                return SendOutcome(
                    error=f"the endpoint refused every event of a batch (HTTP {status}); events are kept", stop=True
                )
            return merged
        return SendOutcome(results=results)
