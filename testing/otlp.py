"""Helpers for the otlp sink's tests: realistic events, the user config pointing at a collector,
the rotel collector on 127.0.0.1, and rows laid out as the collector's ClickHouse exporter writes
them (table otel_logs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from periscope_hooks import events

ROTEL_VERSION = "0.0.1a15"  # pinned: an alpha, its flags may change (scripts/test.sh installs it)
SECRET_HEADER = "Bearer otlp-header-secret-5e1d"


def point_config_at_collector(url: str, **otlp: Any) -> Path:
    """analytics.json choosing the otlp sink (the only way it is ever chosen, with PERISCOPE_SINK)."""
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sink": "otlp", "otlp": {"endpoint": url, **otlp}}))
    return path


def _msg(
    i: int, *, day: int, model: str, provider: str, session: str, tokens: tuple[int, ...], cost: float, sha: str | None
) -> dict[str, Any]:
    inp, out, reasoning, cread, cwrite = tokens
    return {
        "id": f"msg_{i:04d}",
        "time_ms": 1_767_225_600_000 + day * 86_400_000 + i * 60_000,  # 2026-01-01 + day, 00:00 + i minutes
        "session_id": session,
        "agent": "build",
        "provider": provider,
        "model": model,
        "input": inp,
        "output": out,
        "reasoning": reasoning,
        "cache_read": cread,
        "cache_write": cwrite,
        "cost": cost,
        "branch": "main",
        "sha": sha,
        "list_cost_micro": int(round(cost * 1_000_000)),
        "cost_source": "reported",
        "price_snapshot": None,
    }


def team_events(title: str = "Fix login") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two days of a small team's work: messages on two models, an agent commit, a human commit
    with usage, a human commit without, and a rewrite; and the answers the team queries must give."""
    url = "https://example.com/acme/widgets.git"
    sessions = {
        "ses_a": {"parent_id": None, "title": title, "agent": "build"},
        "ses_b": {"parent_id": "ses_a", "title": title, "agent": "general"},
    }
    # (day, model, provider, session, (input, output, reasoning, cache_read, cache_write), cost, sha)
    rows = [
        (0, "claude-sonnet-4", "anthropic", "ses_a", (1000, 200, 0, 3000, 500), 0.05, None),
        (0, "claude-sonnet-4", "anthropic", "ses_a", (500, 100, 0, 4000, 0), 0.02, None),
        (0, "gpt-5", "openai", "ses_b", (2000, 300, 700, 0, 0), 0.03, None),
        (1, "claude-sonnet-4", "anthropic", "ses_a", (100, 50, 0, 900, 0), 0.01, "a" * 40),
        (1, "gpt-5", "openai", "ses_b", (400, 60, 40, 600, 0), 0.004, "a" * 40),
    ]
    msgs = [
        _msg(i, day=day, model=model, provider=provider, session=session, tokens=tokens, cost=cost, sha=sha)
        for i, (day, model, provider, session, tokens, cost, sha) in enumerate(rows, start=1)
    ]
    evs = [events.message_event(m, sessions[m["session_id"]], url) for m in msgs]

    def commit(
        sha: str, origin: str, rows: list[dict[str, Any]], day: int, agent: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return events.commit_event(
            repo_id="repo-1",
            repo_url=url,
            branch="main",
            sha=sha,
            parents=["0" * 40],
            kind="commit",
            origin=origin,
            time_ms=1_767_225_600_000 + day * 86_400_000 + 3_600_000,
            messages=[events.event_message(m) for m in rows],
            sessions=sessions,
            agent=agent,
        )

    evs.append(commit("a" * 40, "agent", msgs[:3], 0, {"session_id": "ses_a", "message_id": "msg_0002"}))
    evs.append(commit("b" * 40, "human", msgs[3:], 1))
    evs.append(commit("c" * 40, "human", [], 1))
    evs.append(
        events.rewrite_event(
            repo_id="repo-1", repo_url=url, command="amend", pairs=[["c" * 40, "d" * 40]], time_ms=1_767_400_000_000
        )
    )
    answers = {
        # cost per day and model
        "cost_per_day_and_model": [
            ("2026-01-01", "anthropic", "claude-sonnet-4", 0.07),
            ("2026-01-01", "openai", "gpt-5", 0.03),
            ("2026-01-02", "anthropic", "claude-sonnet-4", 0.01),
            ("2026-01-02", "openai", "gpt-5", 0.004),
        ],
        # cost per commit (the usage each commit carries)
        "cost_per_commit": [("a" * 40, "agent", 3, 0.1), ("b" * 40, "human", 2, 0.014), ("c" * 40, "human", 0, 0.0)],
        # cache hit rate per model: cache reads / all input (input + cache read + cache write)
        "cache_hit_rate": [
            ("claude-sonnet-4", (3000 + 4000 + 900) / (1000 + 3000 + 500 + 500 + 4000 + 100 + 900)),
            ("gpt-5", 600 / (2000 + 400 + 600)),
        ],
        # agent vs human commits
        "agent_vs_human": [("agent", 1, 0.1), ("human", 2, 0.014)],
    }
    return evs, answers


# --- the ClickHouse exporter's layout ------------------------------------------------------------
# opentelemetry-collector-contrib's clickhouseexporter creates this table and writes every
# attribute as a string (pcommon's Value.AsString: ints in decimal, doubles shortest round-trip,
# booleans true/false, arrays and maps as JSON).
OTEL_LOGS_DDL = """
CREATE TABLE IF NOT EXISTS otel_logs (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1))
) ENGINE = MergeTree()
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
"""


def as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # Go's strconv.FormatFloat(v, 'f', -1, 64)
        from decimal import Decimal

        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def clickhouse_row(record: Any) -> dict[str, Any]:
    """A testing.otlp_receiver.Record as the ClickHouse exporter's otel_logs row."""
    return {
        "Timestamp": record.time_unix_nano,
        "SeverityText": record.severity_text,
        "SeverityNumber": 9,
        "ServiceName": str(record.resource.get("service.name", "")),
        "Body": as_string(record.body),
        "ResourceAttributes": {k: as_string(v) for k, v in record.resource.items()},
        "ScopeName": record.scope[0],
        "ScopeVersion": record.scope[1],
        "LogAttributes": {k: as_string(v) for k, v in record.attributes.items()},
        "EventName": record.event_name,
    }


# --- rotel, a real OpenTelemetry collector ---------------------------------------------------------


def rotel_agent() -> str | None:
    """The rotel-agent binary the pinned `rotel` wheel ships, or None when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("rotel")  # found, not imported: its client wants typing_extensions on 3.9
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "rotel-agent"
    return str(path) if path.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def rotel_collector(agent: str, export_to: str, log_file: Path) -> Iterator[str]:
    """rotel on 127.0.0.1 with its OTLP/HTTP receiver, relaying logs over OTLP/HTTP to `export_to`
    (a base URL); yields the receiver's logs URL.  Run in the foreground, so this process owns it."""
    http_port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            agent,
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            export_to,
            "--otlp-exporter-protocol",
            "http",
            "--batch-timeout",
            "50ms",
            "--pid-file",
            str(log_file.with_suffix(".pid")),
            "--log-file",
            str(log_file),
        ],
        stdout=open(log_file, "ab"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rotel did not start: {log_file.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}/v1/logs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def need(found: bool, what: str) -> None:
    """A real external program or engine: required under CI (the test fails), else it may skip."""
    import pytest

    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing: scripts/test.sh installs it")
        pytest.skip(f"{what} is not installed")
