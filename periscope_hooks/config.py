"""User configuration: ~/.config/opencode/analytics.json (the file the product brief names).

Only the user's own config (and environment) may choose where events go and
which sign-in is used; a repository's files never can (see settings.py).

    {
      "endpoint": "https://ingest.periscope.example/v1/events",
      "client_id": "00000000-0000-0000-0000-000000000000",
      "authority": "https://login.periscope.example/tenant",
      "scopes": ["api://periscope/ingest"]
    }

Environment variables override each key: PERISCOPE_ENDPOINT, PERISCOPE_CLIENT_ID,
PERISCOPE_AUTHORITY, PERISCOPE_SCOPES (space-separated).

`"sink": "otlp"` (or PERISCOPE_SINK=otlp) sends to an OpenTelemetry collector instead
(docs/otlp.md): only then are the standard OTEL_EXPORTER_OTLP_* variables read, with
the `"otlp": {...}` keys of this file taking precedence over them.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from periscope_hooks import paths
from periscope_hooks.errors import UserError

KNOWN_KEYS = {"endpoint", "client_id", "authority", "scopes", "sink", "otlp", "$schema"}
SINKS = ("local", "endpoint", "otlp")
ENV = {
    "endpoint": "PERISCOPE_ENDPOINT",
    "client_id": "PERISCOPE_CLIENT_ID",
    "authority": "PERISCOPE_AUTHORITY",
    "scopes": "PERISCOPE_SCOPES",
}


@dataclass
class UserConfig:
    endpoint: str | None = None
    client_id: str | None = None
    authority: str | None = None
    scopes: list[str] = field(default_factory=list)
    path: str = ""
    sink: str | None = None  # as chosen ("sink" / PERISCOPE_SINK); None: endpoint if set, else local
    otlp: OtlpConfig | None = None  # resolved only when the otlp sink is chosen

    @property
    def signs_in(self) -> bool:
        return bool(self.client_id and self.authority)

    @property
    def sink_kind(self) -> str:
        """Where events go: 'otlp', 'endpoint' (the Periscope backend) or 'local'."""
        if self.sink:
            return self.sink
        return "endpoint" if self.endpoint else "local"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(
    url: str,
    what: str,
    source: str,
    *,
    https_only: bool = False,
    credentials_go: str = "sign-in uses client_id and authority, never the URL",
) -> None:
    """HTTPS, or plain HTTP to a loopback address only (`https_only`: HTTPS only).
    `credentials_go`: where credentials belong instead of the URL (said when it holds some)."""
    if "@" in url.split("://", 1)[-1]:
        # Never echo it: it may hold a password.  (A '/' or '#' in a password breaks URL parsing,
        # so any '@' is refused rather than trusting urlsplit to find the user info.)
        raise UserError(
            f"{what} in {source} contains credentials (user:password@)",
            f"remove them from {what}: {credentials_go}",
        )
    parts = _split(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{what} in {source} is not an http(s) URL: {_redact(url)}", f"fix '{what}' in {source}")
    if parts.scheme == "http" and https_only:
        raise UserError(
            f"{what} in {source} uses http:// ({parts.hostname})",
            f"use https:// in {source}: sign-in (msal) refuses plain http, even to 127.0.0.1",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise UserError(
            f"{what} in {source} uses http:// for a non-loopback host ({parts.hostname})",
            f"use https:// in {source} (plain http is allowed only for 127.0.0.1 / localhost)",
        )


def _split(url: str) -> SplitResult | None:
    """urlsplit's parts, hostname and port read once; None for what no HTTP client takes: a URL it
    cannot split (`https://[::1`), a port that is not one, white space or control characters,
    or a lone surrogate (which cannot even be encoded)."""
    if not url.isprintable() or any(c.isspace() or "\ud800" <= c <= "\udfff" for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.hostname, parts.port
    except ValueError:
        return None
    return parts


def _redact(url: str) -> str:
    """The URL to show in an error: without credentials, and escaped (`\\n`, `\\ud800`) when it
    holds what cannot be shown or printed as it is."""
    parts = _split(url)
    if parts is None:
        return url.encode("unicode_escape").decode("ascii")
    if parts.username or parts.password:
        return url.replace(parts.netloc, parts.hostname or "", 1)
    return url


def load_user_config() -> UserConfig:
    """Read and validate the user config; raise UserError (one line + hint) when it is broken.

    A missing file is not an error: no endpoint means the local store is the sink.
    """
    path = paths.analytics_config_path()
    cfg = UserConfig(path=str(path))
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR"):  # read by httpx for every HTTPS sink and prices
        value = os.environ.get(var)
        if value and not os.path.isabs(value):
            raise UserError(
                f"${var} is a relative path ({value}): the hooks run in your repository, which could"
                " supply the CA that vouches for a server",
                f"give ${var} an absolute path",
            )
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise UserError(f"{path} is not valid JSON ({e})", f"fix or remove {path}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path} must hold a JSON object", f"fix or remove {path}")
        unknown = sorted(set(data) - KNOWN_KEYS)
        if unknown:
            raise UserError(
                f"{path} has unknown key(s): {', '.join(unknown)}",
                f"remove them; known keys: {', '.join(sorted(KNOWN_KEYS - {'$schema'}))}",
            )
        for key in ("endpoint", "client_id", "authority"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise UserError(f"'{key}' in {path} must be a string", f"fix '{key}' in {path}")
        scopes = data.get("scopes")
        if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise UserError(f"'scopes' in {path} must be a list of strings", f"fix 'scopes' in {path}")
    sink = os.environ.get("PERISCOPE_SINK") or data.get("sink")
    if sink is not None and sink not in SINKS:
        where = "$PERISCOPE_SINK" if os.environ.get("PERISCOPE_SINK") else str(path)
        raise UserError(f"unknown sink {sink!r} in {where}", f"use one of: {', '.join(SINKS)}")
    cfg.sink = sink
    if data.get("otlp") is not None and not isinstance(data["otlp"], dict):
        raise UserError(f"'otlp' in {path} must be an object", f"fix 'otlp' in {path} (see docs/otlp.md)")
    cfg.endpoint = data.get("endpoint") or None
    cfg.client_id = data.get("client_id") or None
    cfg.authority = data.get("authority") or None
    cfg.scopes = list(data.get("scopes") or [])
    for key, var in ENV.items():
        value = os.environ.get(var)
        if value:
            setattr(cfg, key, value.split() if key == "scopes" else value)
    if cfg.endpoint:
        check_url(cfg.endpoint, "endpoint", os.environ.get("PERISCOPE_ENDPOINT") and "$PERISCOPE_ENDPOINT" or str(path))
    if cfg.authority:
        check_url(
            cfg.authority,
            "authority",
            os.environ.get("PERISCOPE_AUTHORITY") and "$PERISCOPE_AUTHORITY" or str(path),
            https_only=True,
        )
    if cfg.sink == "endpoint" and not cfg.endpoint:
        raise UserError(f"the endpoint sink is chosen but no endpoint is set in {path}", f"set 'endpoint' in {path}")
    if cfg.sink == "otlp":
        cfg.otlp = load_otlp_config(data.get("otlp") or {}, str(path))
    if cfg.endpoint and bool(cfg.client_id) != bool(cfg.authority):
        raise UserError(
            f"{path} names {'client_id' if cfg.client_id else 'authority'} without"
            f" {'authority' if cfg.client_id else 'client_id'}",
            f"set both (or neither) in {path}",
        )
    return cfg


# --- the OTLP sink (docs/otlp.md) ----------------------------------------------------------------
# Read only after `"sink": "otlp"`: a shell that has OTEL_EXPORTER_OTLP_ENDPOINT set for another
# tool must never make us send.  Precedence: analytics.json "otlp" keys, then the logs-specific
# OTEL_EXPORTER_OTLP_LOGS_* variable, then the generic OTEL_EXPORTER_OTLP_* one, then the spec's default.

OTLP_KEYS = {
    "endpoint",
    "headers",
    "protocol",
    "compression",
    "timeout",
    "certificate",
    "resource_attributes",
    "service_name",
    "session_titles",
}
OTLP_PROTOCOLS = ("http/protobuf", "http/json")
OTLP_DEFAULT_ENDPOINT = "http://localhost:4318/v1/logs"


@dataclass
class OtlpConfig:
    endpoint: str = OTLP_DEFAULT_ENDPOINT
    headers: dict[str, str] = field(default_factory=dict)  # secrets: never logged, shown or stored
    protocol: str = "http/protobuf"
    compression: str | None = None  # "gzip" or None
    timeout_s: float = 10.0
    certificate: str | None = None  # a CA bundle to verify the collector's TLS certificate
    resource_attributes: dict[str, str] = field(default_factory=dict)
    session_titles: bool = False  # session titles are sent only when the user opts in
    source: str = ""  # where the endpoint came from, for error messages


def parse_key_values(text: str, what: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with percent-encoded values (the OTEL_* list format).  A malformed entry is
    named by its key only, never its value (it may be a secret)."""
    from urllib.parse import unquote

    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(
                f"{what} has an entry without key=value (entry {len(out) + 1})",
                f"write {what} as key1=value1,key2=value2 (values percent-encoded)",
            )
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _otel(name: str) -> tuple[str | None, str]:
    """The logs-specific OTEL_EXPORTER_OTLP_LOGS_<name>, else the generic one: (value, its source)."""
    for var in (f"OTEL_EXPORTER_OTLP_LOGS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(var)
        if value is not None and value.strip():
            return value.strip(), var
    return None, ""


def _str_map(value: object, key: str, path: str) -> dict[str, str]:
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise UserError(f"'otlp.{key}' in {path} must be an object of strings", f"fix 'otlp.{key}' in {path}")
    return {str(k): v for k, v in value.items()}


def load_otlp_config(data: dict[str, object], path: str) -> OtlpConfig:
    unknown = sorted(set(data) - OTLP_KEYS)
    if unknown:
        raise UserError(
            f"{path} has unknown otlp key(s): {', '.join(unknown)}",
            f"remove them; known keys: {', '.join(sorted(OTLP_KEYS))}",
        )
    for key in ("endpoint", "protocol", "compression", "certificate", "service_name"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"'otlp.{key}' in {path} must be a string", f"fix 'otlp.{key}' in {path}")
    cfg = OtlpConfig()
    # Endpoint: the signal-specific URL is used as is; the generic one is a base that gets /v1/logs.
    if isinstance(data.get("endpoint"), str) and data["endpoint"]:
        cfg.endpoint, cfg.source = str(data["endpoint"]), f"'otlp.endpoint' in {path}"
    elif os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip():
        cfg.endpoint, cfg.source = (
            os.environ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"].strip(),
            "$OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        )
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        base = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].strip()
        cfg.endpoint, cfg.source = base.rstrip("/") + "/v1/logs", "$OTEL_EXPORTER_OTLP_ENDPOINT"
    else:
        cfg.source = "the OTLP default (no endpoint configured)"
    check_url(
        cfg.endpoint,
        "otlp endpoint",
        cfg.source,
        credentials_go='a collector\'s credentials go in its headers ("headers" or OTEL_EXPORTER_OTLP_HEADERS)',
    )

    headers, source = _otel("HEADERS")
    if headers is not None:
        cfg.headers = parse_key_values(headers, f"${source}")
    if data.get("headers") is not None:
        cfg.headers = _str_map(data["headers"], "headers", path)

    protocol, source = _otel("PROTOCOL")
    protocol = str(data.get("protocol") or protocol or cfg.protocol)
    if protocol not in OTLP_PROTOCOLS:
        where = f"'otlp.protocol' in {path}" if data.get("protocol") else f"${source}"
        raise UserError(
            f"OTLP protocol {protocol!r} ({where}) is not supported",
            "use http/protobuf (the default) or http/json; gRPC is not supported: point at the collector's OTLP/HTTP port (4318)",
        )
    cfg.protocol = protocol

    compression, source = _otel("COMPRESSION")
    compression = str(data.get("compression") or compression or "none").lower()
    if compression not in ("gzip", "none"):
        raise UserError(f"OTLP compression {compression!r} is not supported", "use gzip or none")
    cfg.compression = "gzip" if compression == "gzip" else None

    timeout = data.get("timeout")
    if timeout is None:
        timeout, source = _otel("TIMEOUT")
    if timeout is not None:
        try:
            ms = -1.0 if isinstance(timeout, bool) else float(timeout)  # type: ignore[arg-type]  # true is not 1 ms
        except (TypeError, ValueError):
            ms = -1.0
        if not 0 < ms < math.inf:  # NaN and infinity too: httpx refuses them on every request
            raise UserError(f"OTLP timeout {timeout!r} is not a positive number of milliseconds", "e.g. 10000")
        cfg.timeout_s = ms / 1000

    certificate = data.get("certificate")
    if certificate and not os.path.isabs(str(certificate)):
        # Beside the config file: against the working folder, which for the hook and the flusher is
        # the repository, a repository could have supplied the CA that vouches for the collector.
        certificate = os.path.join(os.path.dirname(path), str(certificate))
    if certificate is None:
        certificate, source = _otel("CERTIFICATE")
        if certificate and not os.path.isabs(str(certificate)):
            raise UserError(
                f"{source} is a relative path ({certificate}): the hooks run in your repository, which"
                " could supply the file",
                f"give {source} an absolute path",
            )
    if certificate:
        if not os.path.isfile(str(certificate)):
            raise UserError(f"the OTLP certificate file {certificate} does not exist", "point it at a PEM CA bundle")
        import ssl

        try:  # what the sink's client does with it, on every request: a bad file is said here, once
            ssl.create_default_context(cafile=str(certificate))
        except (ssl.SSLError, OSError, UnicodeError) as e:
            raise UserError(
                f"the OTLP certificate file {certificate} is not a CA certificate in PEM ({type(e).__name__})",
                "point it at a PEM CA bundle",
            ) from None
        cfg.certificate = str(certificate)

    attrs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    cfg.resource_attributes = parse_key_values(attrs, "$OTEL_RESOURCE_ATTRIBUTES") if attrs.strip() else {}
    if data.get("resource_attributes") is not None:
        cfg.resource_attributes.update(_str_map(data["resource_attributes"], "resource_attributes", path))
    service = data.get("service_name") or os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        cfg.resource_attributes["service.name"] = str(service)
    cfg.resource_attributes.setdefault("service.name", "periscope-hooks")

    titles = data.get("session_titles", False)
    if not isinstance(titles, bool):
        raise UserError(f"'otlp.session_titles' in {path} must be true or false", f"fix it in {path}")
    cfg.session_titles = titles
    return cfg
