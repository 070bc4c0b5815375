"""Where `periscope flush` delivers events.

A sink takes a batch of events and says, per event, what became of it.  The
flusher (`periscope_hooks.flush`) leases outbox rows, hands them to a sink, and
removes only what the sink reports as ACCEPTED (or records REJECTED ones as dead
letters); anything else stays in the outbox for a later run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import httpx

ACCEPTED = "accepted"  # the receiver holds the event (a duplicate it already had counts too)
REJECTED = "rejected"  # the receiver will never take it: dead-letter it with the reason
RETRY = "retry"  # keep it and try again later
OTLP_SINK_NAME = "OTLP collector"  # here so `status` names the sink without importing protobuf


@dataclass
class SendOutcome:
    """What a sink did with one batch.

    `results` maps event_id -> (status, reason).  Events missing from `results`
    count as RETRY.  `retry_after` (seconds) asks the flusher to wait at least that
    long before the next attempt; `error` is a one-line description for `status`
    (never a payload, token or credential); `stop` ends this flusher run (for
    example: sign in again).
    """

    results: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    retry_after: float | None = None
    error: str | None = None
    stop: bool = False
    partial_rejected: int = 0
    partial_message: str = ""

    @property
    def accepted_any(self) -> bool:
        """The receiver took at least one event of the batch."""
        return any(status == ACCEPTED for status, _ in self.results.values())


def url_secrets(url: str) -> list[str]:
    """What an endpoint URL may carry as a secret (an `?api_key=`, user info), for hide_secrets:
    a receiver's error message can quote the request's target."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    values = [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    return [parts.query, *values, parts.username or "", parts.password or ""]


def hide_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """A receiver's words with every secret we sent it (an access token, a header value) replaced
    by `<hidden>`: a reason or a partial-success message can echo the request's headers, and it is
    stored in state.db and shown by `status` and `flush`."""
    for secret in secrets:
        if secret and len(secret) >= 4:  # a shorter value would hide ordinary words
            text = text.replace(secret, "<hidden>")
    return text


class Sink(Protocol):
    name: str
    max_batch_events: int

    def send(self, events: list[dict[str, Any]]) -> SendOutcome: ...

    def close(self) -> None: ...


OUT_OF_TIME_ISOLATING = "finding the event the receiver refused ran out of time; the rest is kept for the next flush"


def halves(
    events: list[dict[str, Any]], send: Callable[[list[dict[str, Any]]], SendOutcome], give_up_at: float
) -> SendOutcome:
    """A refused batch sent again as two halves (each halved again the same way until the culprit
    stands alone), merged.  The second half waits for the next flush once `give_up_at`
    (time.monotonic) has passed: a receiver refusing every event took two requests an event,
    1,998 for 1,200 events, far past the flush's budget."""
    import time

    mid = len(events) // 2
    first = send(events[:mid])
    if first.stop:
        second = SendOutcome()
    elif time.monotonic() > give_up_at:
        second = SendOutcome(error=OUT_OF_TIME_ISOLATING, stop=True)
        # Refusals found so far are not dead-lettered: the whole batch refused (a receiver refusing
        # us, all kept) cannot be told from one bad event until the halving ends.  The accepted go.
        first.results = {eid: r for eid, r in first.results.items() if r[0] != REJECTED}
    else:
        second = send(events[mid:])
    merged = SendOutcome(
        results={**first.results, **second.results},
        retry_after=first.retry_after or second.retry_after,
        error=first.error or second.error,
        stop=first.stop or second.stop,
    )
    merged.partial_rejected = first.partial_rejected + second.partial_rejected
    merged.partial_message = first.partial_message or second.partial_message
    return merged


def certificate_problem(error_text: str, receiver: str, trust_fix: str) -> str | None:
    """What a failed TLS verification means for the user; None when `error_text` (ssl's own: no
    URL, no secret in it) is no verification failure.  An expired certificate or one for another
    host is said so (both were "not trusted", sending users to a CA bundle that fixes neither);
    otherwise the certificate is not trusted, and `trust_fix` says where the receiver's CA goes."""
    if "CERTIFICATE_VERIFY_FAILED" not in error_text:
        return None
    if "certificate has expired" in error_text:
        return f"{receiver}'s TLS certificate has expired (or this machine's clock is wrong)"
    if "mismatch" in error_text:  # "Hostname mismatch", "IP address mismatch"
        return f"{receiver}'s TLS certificate is for another host name: check the address in the config"
    return f"{receiver}'s TLS certificate is not trusted ({trust_fix})"


def http_client(transport: Any, timeout: float, verify: Any = True) -> httpx.Client:
    """The httpx client a sink sends with: verification on (`verify`: a CA context of the sink's
    own, else the default), the environment's proxies and CA bundle (trust_env), our User-Agent."""
    import httpx

    from periscope_hooks import __version__

    return httpx.Client(
        transport=transport,
        timeout=timeout,
        verify=verify,
        trust_env=True,
        headers={"User-Agent": f"periscope-hooks/{__version__}"},
    )


def identity(name: str, endpoint: str | None) -> str:
    """Which receiver delivery last dealt with (state.db's delivery_sink): the sink and its
    address.  A Retry-After or backoff earned from one does not hold another: by the sink's name
    alone, a collector switched for a healthy one waited out the old one's hour.  The address is
    kept as a digest: an endpoint may carry a secret (`?api_key=`, user info) and state.db is no
    place for one, even unprinted."""
    if not endpoint:
        return name
    return f"{name} sha256:{hashlib.sha256(endpoint.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def get_sink() -> Sink:
    """The configured sink: the one chosen by "sink", else the HTTP endpoint if one is configured,
    else the local store."""
    from periscope_hooks.config import load_user_config

    cfg = load_user_config()
    if cfg.sink_kind == "otlp":
        from periscope_hooks.sinks.otlp import OtlpSink

        assert cfg.otlp is not None
        return OtlpSink(cfg.otlp)
    if cfg.sink_kind == "endpoint":
        from periscope_hooks.sinks.http import HttpSink

        return HttpSink(cfg)
    from periscope_hooks.sinks.local import LocalStoreSink

    return LocalStoreSink()
