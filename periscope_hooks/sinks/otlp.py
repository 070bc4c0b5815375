"""The OTLP sink: events as OpenTelemetry log records to a team's collector (docs/otlp.md).

Logs, not metrics: a short-lived flusher keeps no metric state, and a metric point sent twice
cannot be told from two points; a log record carries `log.record.uid` (our event id), so a
receiver deduplicates a resend.  Encoded with opentelemetry-proto (the `otlp` extra, imported
only here, by the flusher) and sent by our own transport: the OpenTelemetry SDK's exporters keep
records in a bounded in-memory queue and drop them when it is full or the process dies, while
the outbox keeps every event until the collector took it.

OTLP/HTTP's answers map onto the outbox like this: 2xx accepts the batch (a partial success's
rejected count is recorded for `status`; OTLP forbids resending it); 429/502/503/504 are retried
later (Retry-After honoured); 400 and 413 are halved until the one bad or oversized event stands
alone and is dead-lettered (unless every event of the batch is refused: that is the collector
refusing us, and the events are kept); any other answer is not retried by this run and keeps the
events until the configuration or the collector is fixed.  Nothing here logs payloads, headers or URLs.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable
from typing import Any

from periscope_hooks import __version__, envvars
from periscope_hooks.config import OtlpConfig
from periscope_hooks.errors import UserError
from periscope_hooks.sinks import (
    ACCEPTED,
    OTLP_SINK_NAME,
    REJECTED,
    SendOutcome,
    certificate_problem,
    halves,
    hide_secrets,
    http_client,
    url_secrets,
)
from periscope_hooks.sinks.deadline import RequestTooSlow, whole_request_within

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1_000_000
RETRYABLE = (429, 502, 503, 504)  # OTLP/HTTP: the only codes a client may retry
SPLIT = (400, 413)  # one event is at fault (malformed, too large): isolate it
REFUSED = "refused by the OTLP collector (HTTP 400)"
SCOPE_NAME = "periscope-hooks"
EVENT_NAMES = {"message": "periscope.message", "commit": "periscope.commit", "rewrite": "periscope.rewrite"}
SEVERITY_INFO = 9


def install_hint() -> str:
    """Into the environment periscope runs from, whatever installed it (install.sh's venv, pipx, a
    checkout): periscope-hooks is not on PyPI, so `pip install 'periscope-hooks[otlp]'` cannot work."""
    import shlex
    import sys

    return f"install it with: {shlex.quote(sys.executable)} -m pip install 'opentelemetry-proto>=1.33'"


def _proto() -> Any:
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    except ImportError:
        raise UserError("the otlp sink needs the opentelemetry-proto package", install_hint()) from None
    return logs_service_pb2


def _time_ns(rfc3339: str) -> int:
    """Our event times (YYYY-MM-DDTHH:MM:SS.mmmZ) in Unix nanoseconds, without float rounding."""
    import calendar
    import time

    whole, _, frac = rfc3339.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def _tokens(t: dict[str, Any]) -> dict[str, int]:
    """OpenCode's token fields are net of each other; the GenAI conventions' input and output are
    totals (input includes cache reads and writes, output includes reasoning)."""
    inp, out = int(t.get("input") or 0), int(t.get("output") or 0)
    reasoning, cread, cwrite = (int(t.get(k) or 0) for k in ("reasoning", "cache_read", "cache_write"))
    return {
        "input_tokens": inp + cread + cwrite,
        "output_tokens": out + reasoning,
        "cache_read.input_tokens": cread,
        "cache_creation.input_tokens": cwrite,
        "reasoning.output_tokens": reasoning,
    }


def attributes(event: dict[str, Any], session_titles: bool = False) -> dict[str, Any]:
    """The log record's attributes for one event (missing values are left out)."""
    kind = str(event.get("type"))
    repo = event.get("repo") or {}
    attrs: dict[str, Any] = {
        "log.record.uid": event["event_id"],
        "periscope.event.type": kind,
        "periscope.schema": event.get("schema"),
        "vcs.repository.url.full": repo.get("url"),
    }
    if kind == "message":
        session = event.get("session") or {}
        attrs.update(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": event.get("provider"),
                "gen_ai.request.model": event.get("model"),
                "gen_ai.conversation.id": session.get("id"),
                "gen_ai.agent.name": session.get("agent"),
                "periscope.message.id": event.get("message_id"),
                "periscope.session.is_subagent": bool(session.get("is_subagent")),
                "periscope.session.parent_id": session.get("parent_id"),
                "periscope.cost.usd": float(event.get("cost") or 0),
                "periscope.cost.source": event.get("cost_source"),  # reported / estimated / subscription / unknown
                "periscope.cost.list_usd": event.get("list_cost"),  # at list prices; absent when unpriced
                "periscope.web_searches": event.get("web_searches"),  # absent when none
                "periscope.request.speed": event.get("speed"),  # "fast", absent for the standard speed
                "vcs.ref.head.name": repo.get("branch"),
                "vcs.ref.head.revision": repo.get("sha"),
            }
        )
        attrs.update({f"gen_ai.usage.{k}": v for k, v in _tokens(event.get("tokens") or {}).items()})
        if session_titles:
            attrs["periscope.session.title"] = session.get("title")
    elif kind == "commit":
        commit = event.get("commit") or {}
        usage = event.get("usage") or {}
        agent = event.get("agent") or {}
        # Totals under periscope.usage.*, never gen_ai.usage.*: a backend summing gen_ai.usage over
        # all records would otherwise count every message twice (once itself, once in its commit).
        attrs.update(
            {
                "vcs.ref.head.name": repo.get("branch"),
                "vcs.ref.head.revision": commit.get("sha"),
                "periscope.commit.kind": commit.get("kind"),
                "periscope.commit.parents": list(commit.get("parents") or []),
                "periscope.commit.origin": event.get("origin"),
                "periscope.commit.agent.session_id": agent.get("session_id"),
                "periscope.usage.messages": int(usage.get("messages") or 0),
                "periscope.usage.cost.usd": float(usage.get("cost") or 0),
                "periscope.usage.cost.list_usd": usage.get("list_cost"),
                "periscope.usage.models": sorted(
                    {f"{m.get('provider')}/{m.get('model')}" for m in event.get("by_model") or []}
                ),
                "periscope.usage.sessions": [s.get("id") for s in event.get("sessions") or [] if s.get("id")],
            }
        )
        attrs.update({f"periscope.usage.{k}": v for k, v in _tokens(usage.get("tokens") or {}).items()})
    elif kind == "rewrite":
        mappings = event.get("mappings") or []
        attrs.update(
            {
                "periscope.rewrite.command": event.get("command"),
                "periscope.rewrite.old_revisions": [m.get("old") for m in mappings],
                "periscope.rewrite.new_revisions": [m.get("new") for m in mappings],
            }
        )
    # Empty arrays are left out too: valid OTLP, yet rotel (0.0.1a15) refuses `{"arrayValue": {}}`
    # in OTLP/JSON with a 400, which would dead-letter a commit without usage.
    return {k: v for k, v in attrs.items() if v is not None and v != []}


def _body(event: dict[str, Any]) -> str:
    """One short human line (what a log viewer shows): names, numbers and SHAs, no titles."""
    kind = event.get("type")
    if kind == "message":
        t = _tokens(event.get("tokens") or {})
        return (
            f"{event.get('provider')}/{event.get('model')}: {t['input_tokens']} in, {t['output_tokens']} out,"
            f" ${float(event.get('cost') or 0):.6f}"
        )
    if kind == "commit":
        usage = event.get("usage") or {}
        sha = str((event.get("commit") or {}).get("sha") or "")[:12]
        return (
            f"{(event.get('commit') or {}).get('kind')} {sha} ({event.get('origin')}):"
            f" {usage.get('messages', 0)} messages, ${float(usage.get('cost') or 0):.6f}"
        )
    if kind == "rewrite":
        return f"{event.get('command')}: {len(event.get('mappings') or [])} commits rewritten"
    return str(kind)


def _record(event: dict[str, Any], session_titles: bool) -> tuple[int, str, str, dict[str, Any]]:
    """(time in Unix ns, event name, body, attributes): one log record, before encoding."""
    return (
        _time_ns(str(event.get("time"))),
        EVENT_NAMES.get(str(event.get("type")), f"periscope.{event.get('type')}"),
        _body(event),
        attributes(event, session_titles),
    )


def _resource(cfg: OtlpConfig) -> dict[str, Any]:
    return {"service.version": __version__, **dict(sorted(cfg.resource_attributes.items()))}


def _set_value(av: Any, value: Any) -> None:
    if isinstance(value, bool):
        av.bool_value = value
    elif isinstance(value, int):
        av.int_value = value
    elif isinstance(value, float):
        av.double_value = value
    elif isinstance(value, (list, tuple)):
        av.array_value.SetInParent()  # an empty list is still an (empty) array
        for item in value:
            _set_value(av.array_value.values.add(), item)
    else:
        av.string_value = str(value)


def _add_attributes(target: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        kv = target.add()
        kv.key = key
        _set_value(kv.value, value)


def encode_request(events: Iterable[dict[str, Any]], cfg: OtlpConfig) -> Any:
    """An ExportLogsServiceRequest: one resource (this machine's service), one scope, one log
    record per event.  Deterministic: the same events always give the same bytes (the observed
    time is the event's own time), so a resend is byte for byte the first send."""
    pb = _proto()
    request = pb.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    _add_attributes(resource_logs.resource.attributes, _resource(cfg))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE_NAME
    scope_logs.scope.version = __version__
    # Filled in place, field by field: building sub-messages with constructors copies each one
    # and measured 2x slower with protobuf's upb backend.
    for event in events:
        when, name, body, attrs = _record(event, cfg.session_titles)
        record = scope_logs.log_records.add()
        record.time_unix_nano = when
        record.observed_time_unix_nano = when
        record.severity_number = SEVERITY_INFO
        record.severity_text = "INFO"
        record.event_name = name
        record.body.string_value = body
        _add_attributes(record.attributes, attrs)
    return request


def _json_value(value: Any) -> dict[str, Any]:
    """OTLP/JSON's AnyValue: 64-bit integers as decimal strings, lowerCamelCase keys."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_json_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _json_attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _json_value(v)} for k, v in attrs.items()]


def encode_json(events: Iterable[dict[str, Any]], cfg: OtlpConfig) -> bytes:
    """The same request in OTLP/JSON, written directly: through protobuf's json_format it cost
    about 4x the protobuf encoding (the tests decode both and compare them)."""
    records = [
        {
            "timeUnixNano": str(when),
            "observedTimeUnixNano": str(when),
            "severityNumber": SEVERITY_INFO,
            "severityText": "INFO",
            "eventName": name,
            "body": {"stringValue": body},
            "attributes": _json_attributes(attrs),
        }
        for when, name, body, attrs in (_record(e, cfg.session_titles) for e in events)
    ]
    request = {
        "resourceLogs": [
            {
                "resource": {"attributes": _json_attributes(_resource(cfg))},
                "scopeLogs": [{"scope": {"name": SCOPE_NAME, "version": __version__}, "logRecords": records}],
            }
        ]
    }
    return json.dumps(request, separators=(",", ":")).encode()


def encode(events: list[dict[str, Any]], cfg: OtlpConfig, protocol: str) -> tuple[bytes, str]:
    """(body, content type) for OTLP/HTTP in the chosen protocol."""
    if protocol == "http/json":
        return encode_json(events, cfg), "application/json"
    return encode_request(events, cfg).SerializeToString(), "application/x-protobuf"


def parse_response(body: bytes, content_type: str | None) -> tuple[Any | None, str]:
    """(ExportLogsServiceResponse or None, rejected count and message) from a 2xx body."""
    pb = _proto()
    response = pb.ExportLogsServiceResponse()
    if not body:
        return response, ""
    try:
        if "json" in (content_type or ""):
            from google.protobuf import json_format

            json_format.Parse(body, response, ignore_unknown_fields=True)
        else:
            response.ParseFromString(body)
    except Exception:  # protobuf's DecodeError / ParseError: an unreadable answer, the batch is kept
        return None, ""
    return response, response.partial_success.error_message


def status_message(body: bytes, content_type: str | None, secrets: Iterable[str] = ()) -> str:
    """The collector's reason from a google.rpc.Status body (its `message`), short and on one line,
    with `secrets` (the headers' values it may echo) hidden."""
    message = ""
    try:
        if "json" in (content_type or ""):
            message = str(json.loads(body).get("message") or "")
        elif body:
            message = _rpc_status_message(body)
    except Exception:  # no readable reason: the status code says enough
        message = ""
    return hide_secrets(" ".join(message.split()), secrets)[:200]


def _rpc_status_message(body: bytes) -> str:
    """Field 2 (`message`) of a protobuf google.rpc.Status, read off the wire: its generated class
    lives in googleapis-common-protos, a package too many for one string."""
    from google.protobuf.internal.decoder import _DecodeVarint

    pos = 0
    while pos < len(body):
        tag, pos = _DecodeVarint(body, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _DecodeVarint(body, pos)
        elif wire == 2:
            size, pos = _DecodeVarint(body, pos)
            if field == 2:
                return bytes(body[pos : pos + size]).decode("utf-8", "replace")
            pos += size
        else:
            return ""
    return ""


class OtlpSink:
    name = OTLP_SINK_NAME
    max_batch_events = MAX_BATCH_EVENTS
    max_batch_bytes = MAX_BATCH_BYTES

    def __init__(self, cfg: OtlpConfig, *, transport: Any = None) -> None:
        _proto()  # fail early, with the install hint, when the extra is missing
        self.cfg = cfg
        self.endpoint = cfg.endpoint
        # what the collector's words may echo: header values, the endpoint's query and user info
        self._secrets = [*cfg.headers.values(), *url_secrets(cfg.endpoint)]
        self._give_up_at = 0.0  # send() sets it: when finding a refused event stops (halves)
        # The collector took an event in this flush: a lone event it refuses is the event's fault.
        self._accepted_some = False
        self._transport = transport
        self._new_client()

    def _new_client(self) -> None:
        verify: Any = True
        if self.cfg.certificate:
            import ssl

            verify = ssl.create_default_context(cafile=self.cfg.certificate)
        old, self.client = getattr(self, "client", None), http_client(self._transport, self.cfg.timeout_s, verify)
        if old is not None:
            old.close()

    def close(self) -> None:
        self.client.close()

    def send(self, events: list[dict[str, Any]]) -> SendOutcome:
        self._give_up_at = time.monotonic() + envvars.seconds("PERISCOPE_FLUSH_BUDGET")
        outcome = self._send(events)
        accepted_before = self._accepted_some
        self._accepted_some = accepted_before or outcome.accepted_any
        if len(events) > 1 and outcome.results and all(s == REJECTED for s, _ in outcome.results.values()):
            # Every event of the batch refused one by one: not bad events but a collector that
            # refuses us (a protocol it cannot decode, a pipeline rule).  Keep them all rather
            # than dead-letter the whole history; `status` shows why.
            reason = next(iter(outcome.results.values()))[1]
            return SendOutcome(error=f"every event of a batch was {reason}; events are kept", stop=True)
        if (
            len(events) == 1
            and not accepted_before
            and outcome.results
            and (outcome.results[events[0]["event_id"]][1] or "").startswith(REFUSED)
        ):
            # A lone event refused (a flush after each message sends one): the event or the
            # collector?  One cannot tell, and each such event was dead-lettered as it came while a
            # collector refused everything.  Kept until a batch with others tells (above), or the
            # collector takes another event in this flush (an event kept waiting for its retry is
            # sent alone after the new ones: it was kept for ever).
            return SendOutcome(
                error=f"the only event of a batch was {REFUSED}; it is kept until others go with it", stop=True
            )
        return outcome

    def _send(self, events: list[dict[str, Any]]) -> SendOutcome:
        import httpx

        body, content_type = encode(events, self.cfg, self.cfg.protocol)
        headers = {**self.cfg.headers, "Content-Type": content_type}
        if self.cfg.compression == "gzip":
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            with whole_request_within(self.cfg.timeout_s):
                resp = self.client.post(self.cfg.endpoint, content=body, headers=headers)
        except RequestTooSlow:
            self._new_client()  # the interrupted one may hold a half-read connection
            return SendOutcome(error="the OTLP collector did not answer in time")
        except httpx.TimeoutException:
            return SendOutcome(error="the OTLP collector did not answer in time")
        except httpx.HTTPError as e:  # refused, DNS, TLS, protocol errors: retried later
            problem = certificate_problem(
                str(e), "the OTLP collector", "set OTEL_EXPORTER_OTLP_CERTIFICATE or otlp.certificate to its CA bundle"
            )
            if problem:
                return SendOutcome(error=problem)
            return SendOutcome(error=f"could not reach the OTLP collector ({type(e).__name__})")
        status = resp.status_code
        content_type = resp.headers.get("Content-Type")
        if 200 <= status < 300:
            response, message = parse_response(resp.content, content_type)
            if response is None:
                return SendOutcome(error=f"unreadable OTLP response to HTTP {status}; the batch is kept")
            rejected = int(response.partial_success.rejected_log_records)
            outcome = SendOutcome(results={e["event_id"]: (ACCEPTED, None) for e in events})
            if rejected:
                # OTLP forbids resending a partial success, and does not say which records were
                # dropped: the events count as delivered and the rejection is kept for `status`.
                outcome.partial_rejected = rejected
                outcome.partial_message = hide_secrets(" ".join(message.split()), self._secrets)[:200]
            return outcome
        from periscope_hooks.sinks.http import parse_retry_after

        if status in RETRYABLE:
            return SendOutcome(
                error=f"the OTLP collector answered HTTP {status}",
                retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            )
        if status in SPLIT:
            return self._isolate(events, status, status_message(resp.content, content_type, self._secrets))
        # 401/403 (headers), 404 (path), 500...: not retried by this run; kept until fixed.
        return SendOutcome(
            error=f"the OTLP collector answered HTTP {status}; events are kept: check the endpoint and headers",
            stop=True,
        )

    def _isolate(self, events: list[dict[str, Any]], status: int, reason: str) -> SendOutcome:
        """Halve a refused batch until the culprit stands alone, then dead-letter it."""
        if len(events) == 1:
            why = "too large for the OTLP collector (HTTP 413)" if status == 413 else REFUSED
            return SendOutcome(results={events[0]["event_id"]: (REJECTED, f"{why}: {reason}" if reason else why)})
        return halves(events, self._send, self._give_up_at)
