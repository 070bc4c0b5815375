"""A real OTLP/HTTP logs receiver on 127.0.0.1 for the otlp sink's tests, with scriptable answers.

It decodes what it is sent with opentelemetry-proto (http/protobuf and http/json, gzip or
not), keeps each log record once by `log.record.uid` (as a deduplicating backend does) and
counts every copy.  `script` holds what the next requests get, one entry per request:
    ("status", 503) | ("status", 429, {"Retry-After": "1"}) | ("partial", 2, "reason")
    | ("crash", k)   # keep the first k records of the batch, then drop the connection unanswered
    | ("hold", s)    # keep the records, answer only after s seconds
`poison` uids make a batch holding one of them get 400 (a google.rpc.Status body), `max_body`
makes larger requests get 413, `required_headers` answer 401 when missing.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testing.server import LocalServer


def any_value(v: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def decode_request(body: bytes, content_type: str) -> Any:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    if "json" in content_type:
        json_format.Parse(body, request)
    else:
        request.ParseFromString(body)
    return request


@dataclass
class Record:
    """One received log record, with its resource and scope."""

    uid: str
    event_name: str
    time_unix_nano: int
    observed_time_unix_nano: int
    severity_text: str
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: tuple[str, str]


def records_of(request: Any) -> list[Record]:
    out = []
    for rl in request.resource_logs:
        resource = {kv.key: any_value(kv.value) for kv in rl.resource.attributes}
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                attrs = {kv.key: any_value(kv.value) for kv in lr.attributes}
                out.append(
                    Record(
                        uid=str(attrs.get("log.record.uid")),
                        event_name=lr.event_name,
                        time_unix_nano=lr.time_unix_nano,
                        observed_time_unix_nano=lr.observed_time_unix_nano,
                        severity_text=lr.severity_text,
                        body=any_value(lr.body),
                        attributes=attrs,
                        resource=resource,
                        scope=(sl.scope.name, sl.scope.version),
                    )
                )
    return out


@dataclass
class Request:
    path: str
    content_type: str
    encoding: str | None
    headers: dict[str, str]
    size: int
    records: int = 0
    action: tuple[Any, ...] | None = None


@dataclass
class OtlpReceiver(LocalServer):
    port: int = 0
    records: dict[str, Record] = field(default_factory=dict)
    deliveries: int = 0  # record copies kept or deduplicated (resends included)
    requests: list[Request] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # every body, decompressed, as sent
    script: list[tuple[Any, ...]] = field(default_factory=list)
    poison: set[str] = field(default_factory=set)
    max_body: int | None = None
    required_headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver.handle(self)

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = httpd.server_address[1]
        self.serve(httpd)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1/logs"

    @property
    def redeliveries(self) -> int:
        return self.deliveries - len(self.records)

    def wait_for(self, n: int, timeout: float = 20.0) -> bool:
        """Wait until `n` distinct records arrived (for relays that forward in their own time)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.records) >= n, timeout)

    def wait_for_ids(self, uids: set[str], timeout: float = 20.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: uids <= set(self.records), timeout)

    def wait_for_deliveries(self, n: int, timeout: float = 20.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: self.deliveries >= n, timeout)

    # --- protocol -------------------------------------------------------------------------------
    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, extra: Any = None) -> None:
        h.send_response(status)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        try:
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _status(self, h: BaseHTTPRequestHandler, code: int, message: str, json_body: bool, extra: Any = None) -> None:
        """An OTLP error answer: a google.rpc.Status with its message (field 2), as JSON or protobuf."""
        if json_body:
            return self._reply(h, code, json.dumps({"code": 3, "message": message}).encode(), "application/json", extra)
        raw = message.encode()
        body = bytes([0x08, 0x03, 0x12]) + _varint(len(raw)) + raw  # code=3 (INVALID_ARGUMENT), message
        self._reply(h, code, body, "application/x-protobuf", extra)

    def _success(self, h: BaseHTTPRequestHandler, json_body: bool, rejected: int = 0, message: str = "") -> None:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = message
        if json_body:
            return self._reply(h, 200, json_format.MessageToJson(response).encode(), "application/json")
        self._reply(h, 200, response.SerializeToString(), "application/x-protobuf")

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        content_type = h.headers.get("Content-Type") or ""
        json_body = "json" in content_type
        with self.lock:
            action = self.script.pop(0) if self.script else None
        req = Request(
            path=h.path,
            content_type=content_type,
            encoding=h.headers.get("Content-Encoding"),
            headers={k.lower(): v for k, v in h.headers.items()},
            size=len(raw),
            action=action,
        )
        self.requests.append(req)
        if h.path.split("?", 1)[0] != "/v1/logs":
            return self._status(h, 404, "not found", json_body)
        for name, value in self.required_headers.items():
            if h.headers.get(name) != value:
                return self._status(h, 401, "unauthenticated", json_body)
        if action and action[0] == "status":
            return self._status(h, action[1], "scripted", json_body, action[2] if len(action) > 2 else None)
        if self.max_body is not None and len(raw) > self.max_body:
            return self._status(h, 413, "request too large", json_body)
        try:
            body = gzip.decompress(raw) if req.encoding == "gzip" else raw
            self.payloads.append(body)
            records = records_of(decode_request(body, content_type))
        except Exception:
            return self._status(h, 400, "cannot decode the request", json_body)
        req.records = len(records)
        bad = [r.uid for r in records if r.uid in self.poison]
        if bad:
            return self._status(h, 400, f"record {bad[0]} violates the schema", json_body)
        if action and action[0] == "crash":
            self._keep(records[: action[1]])
            h.close_connection = True
            h.connection.shutdown(2)  # died mid-batch: the client hears nothing back
            return
        self._keep(records)
        if action and action[0] == "hold":
            time.sleep(action[1])
        if action and action[0] == "partial":
            return self._success(h, json_body, action[1], action[2] if len(action) > 2 else "")
        self._success(h, json_body)

    def _keep(self, records: list[Record]) -> None:
        with self.arrived:
            for r in records:
                self.deliveries += 1
                self.records.setdefault(r.uid, r)
            self.arrived.notify_all()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
