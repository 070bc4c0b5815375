"""The otlp sink against a real OTLP/HTTP receiver on 127.0.0.1 (testing/otlp_receiver.py, decoding
with opentelemetry-proto): opt-in, configuration, both protocols, gzip, every answer OTLP defines,
partial success, a crash mid-batch, privacy."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from periscope_hooks.config import load_user_config
from periscope_hooks.errors import UserError
from periscope_hooks.flush import flush_state_dir
from periscope_hooks.sinks.otlp import encode
from periscope_hooks.state import open_state_db
from periscope_hooks.statedb import get_meta
from testing.delivery import assert_books_balance, books, fill_outbox, make_events, quick_delivery
from testing.otlp import SECRET_HEADER, point_config_at_collector, team_events
from testing.otlp_receiver import OtlpReceiver, decode_request, records_of
from testing.tls import make_cert
from testing.util import append_spool, commit, init_repo, message_record, periscope, session_record, state_dir


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def sd(tmp_path, monkeypatch):
    quick_delivery(monkeypatch)
    # No detached flusher from the hooks: one started before a test changes the sink would still
    # deliver with the environment it was started with.  The tests flush in the foreground.
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    for var in [v for v in os.environ if v.startswith("OTEL_")]:
        monkeypatch.delenv(var)
    path = tmp_path / "state"
    path.mkdir()
    return path


def meta(sd, key):
    conn = open_state_db(sd)
    try:
        return get_meta(conn, key)
    finally:
        conn.close()


# --- choosing the sink, configuration ---------------------------------------------------------------


def test_otel_variables_alone_never_start_sending(tmp_path, sd, receiver, monkeypatch):
    """A shell set up for another tool (OTEL_EXPORTER_OTLP_ENDPOINT) keeps events in the local store."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.base_url)
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo))
    commit(repo, "c")
    periscope("flush", cwd=repo)
    assert receiver.requests == []
    assert "local store" in periscope("status", cwd=repo).stdout
    # Chosen explicitly, the same variable is honoured, with /v1/logs appended to the base URL.
    monkeypatch.setenv("PERISCOPE_SINK", "otlp")
    assert load_user_config().otlp.endpoint == receiver.url
    append_spool(repo, message_record(repo))
    commit(repo, "d")
    periscope("flush", cwd=repo)
    assert {r.path for r in receiver.requests} == {"/v1/logs"} and len(receiver.records) == 2  # the new commit's


def test_configuration_precedence(tmp_path, sd, monkeypatch):
    ca, _ = make_cert(tmp_path)  # a self-signed certificate in PEM: its own CA
    monkeypatch.setenv("PERISCOPE_SINK", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=a%20b, authorization=Bearer%20tok")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca))
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core,service.name=ignored,host.name=dev%2D1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "coding-agents")
    otlp = load_user_config().otlp
    assert otlp.endpoint == "https://collector.example:4318/v1/logs"
    assert otlp.headers == {"x-team": "a b", "authorization": "Bearer tok"}
    assert (otlp.protocol, otlp.compression, otlp.timeout_s, otlp.certificate) == ("http/json", "gzip", 2.5, str(ca))
    assert otlp.resource_attributes == {"team": "core", "service.name": "coding-agents", "host.name": "dev-1"}
    assert otlp.session_titles is False
    # The logs-specific endpoint is used as is.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "https://logs.example/custom")
    assert load_user_config().otlp.endpoint == "https://logs.example/custom"
    # analytics.json's otlp keys win over the environment.
    point_config_at_collector(
        "https://file.example/v1/logs",
        headers={"authorization": "Bearer file"},
        protocol="http/protobuf",
        compression="none",
        timeout=500,
        resource_attributes={"team": "web"},
        service_name="from-file",
        session_titles=True,
    )
    otlp = load_user_config().otlp
    assert otlp.endpoint == "https://file.example/v1/logs" and otlp.headers == {"authorization": "Bearer file"}
    assert (otlp.protocol, otlp.compression, otlp.timeout_s, otlp.session_titles) == ("http/protobuf", None, 0.5, True)
    assert otlp.resource_attributes["team"] == "web" and otlp.resource_attributes["service.name"] == "from-file"


def test_a_relative_certificate_is_read_beside_the_config_never_from_the_repository(tmp_path, monkeypatch):
    """Resolved against the working folder, which for the hook and the flusher is the repository, a
    relative `certificate` let a repository supply the CA that vouches for the collector."""
    repo = tmp_path / "repo"
    repo.mkdir()
    ca, _ = make_cert(repo)  # planted in the repository, under the name the config gives
    monkeypatch.chdir(repo)
    config = point_config_at_collector("https://collector.example/v1/logs", certificate=ca.name)
    with pytest.raises(UserError) as e:
        load_user_config()  # none beside the config file: said, the repository's never used
    assert str(config.parent / ca.name) in e.value.message and "does not exist" in e.value.message
    (config.parent / ca.name).write_bytes(ca.read_bytes())
    assert load_user_config().otlp.certificate == str(config.parent / ca.name)


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318"}, "http:// for a non-loopback host"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "is not supported"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "is not supported"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "milliseconds"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "nan"}, "milliseconds"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "inf"}, "milliseconds"),
        ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "<not a PEM file>"}, "is not a CA certificate in PEM"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://[::1"}, "not an http(s) URL"),
        ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "does not exist"),
        ({"OTEL_EXPORTER_OTLP_CERTIFICATE": "ca.pem"}, "is a relative path"),
        ({"SSL_CERT_FILE": "certs/ca.pem"}, "$SSL_CERT_FILE is a relative path"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "authorization"}, "without key=value"),
        ({"PERISCOPE_SINK": "kafka"}, "unknown sink"),
    ],
)
def test_bad_settings_are_one_clear_line(sd, monkeypatch, env, needle):
    not_pem = sd / "ca.pem"
    not_pem.write_text("not a certificate")  # the sink's every request failed with SSLError
    env = {k: str(not_pem) if v == "<not a PEM file>" else v for k, v in env.items()}
    monkeypatch.setenv("PERISCOPE_SINK", "otlp")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(UserError) as e:
        load_user_config()
    assert needle in e.value.message and e.value.hint


def test_status_names_headers_never_their_values(tmp_path, sd, receiver, monkeypatch):
    receiver.required_headers = {"Authorization": "Bearer right-one"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization={SECRET_HEADER.replace(' ', '%20')}")
    point_config_at_collector(receiver.url + "?api_key=query-secret-91")
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo))
    commit(repo, "c")
    flush = periscope("flush", cwd=repo, check=False)
    status = periscope("status", cwd=repo).stdout
    assert "authorization=<hidden>" in status and "OTLP collector http://127.0.0.1" in status
    assert "HTTP 401" in status  # refused: the events wait for a fixed header, not dead-lettered
    assert books(state_dir(repo))["message"]["pending"] == 1
    logs = "".join(p.read_text() for p in state_dir(repo).rglob("*.log*"))
    for text in (status, flush.stdout + flush.stderr, logs):
        assert "otlp-header-secret" not in text and "query-secret-91" not in text
    assert receiver.requests[0].headers["authorization"] == SECRET_HEADER  # it was sent, to the collector only


def test_a_collector_quoting_the_request_target_shows_no_query_secret(tmp_path, monkeypatch):
    """`?api_key=` in the endpoint and a collector whose 400 quotes the request's target (proxies
    and some collectors do): the dead letter's reason, and so `status`, kept the key (a sweep)."""

    class Echoing(OtlpReceiver):
        def _status(self, h, code, message, json_body, extra=None):
            return super()._status(h, code, f"{message} (POST {h.path})", json_body, extra)

    quick_delivery(monkeypatch)
    repo = init_repo(tmp_path / "r")
    sd = state_dir(repo)
    with Echoing() as collector:
        point_config_at_collector(collector.url + "?api_key=ApiKeyInQuery-5150")
        evs = make_events(4)
        collector.poison = {evs[1]["event_id"]}
        fill_outbox(sd, evs)
        flush_state_dir(sd)
        assert books(sd)["message"]["dead"] == 1
        status = periscope("status", cwd=repo).stdout
        assert "POST /v1/logs?<hidden>" in status and "ApiKeyInQuery" not in status


# --- delivery ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol, compression", [("http/protobuf", "gzip"), ("http/json", "none")])
def test_commit_and_messages_arrive_with_the_conventions(tmp_path, sd, receiver, monkeypatch, protocol, compression):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core")
    point_config_at_collector(receiver.url, protocol=protocol, compression=compression, headers={"x-team": "core"})
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(
        repo,
        session_record("ses_01", title="Fix login"),
        message_record(repo, id="m1", tokens=(1200, 310, 40, 800, 100), cost=0.0123),
        message_record(repo, id="m2", tokens=(10, 20, 0, 0, 0), cost=0.001, model="gpt-5", provider="openai"),
    )
    sha = commit(repo, "c")
    periscope("flush", cwd=repo)
    assert_books_balance(state_dir(repo))
    req = receiver.requests[0]
    assert req.content_type == ("application/json" if protocol == "http/json" else "application/x-protobuf")
    assert req.encoding == ("gzip" if compression == "gzip" else None) and req.headers["x-team"] == "core"
    by_name = {}
    for r in receiver.records.values():
        by_name.setdefault(r.event_name, []).append(r)
    assert sorted(by_name) == ["periscope.commit", "periscope.message"]
    m1 = next(r for r in by_name["periscope.message"] if r.attributes["periscope.message.id"] == "m1")
    a = m1.attributes
    assert a["gen_ai.provider.name"] == "anthropic" and a["gen_ai.request.model"] == "claude-sonnet-4"
    assert a["gen_ai.usage.input_tokens"] == 1200 + 800 + 100 and a["gen_ai.usage.output_tokens"] == 310 + 40
    assert a["gen_ai.usage.cache_read.input_tokens"] == 800 and a["gen_ai.usage.cache_creation.input_tokens"] == 100
    assert a["gen_ai.usage.reasoning.output_tokens"] == 40 and a["periscope.cost.usd"] == 0.0123
    assert a["gen_ai.conversation.id"] == "ses_01" and a["gen_ai.agent.name"] == "build"
    assert a["periscope.cost.source"] == "reported"
    assert a["periscope.event.type"] == "message" and a["vcs.ref.head.name"] == "main"
    assert a["vcs.repository.url.full"] == "https://example.com/acme/widgets.git"  # credentials stripped
    assert "periscope.session.title" not in a
    (c,) = by_name["periscope.commit"]
    ca = c.attributes
    assert ca["vcs.ref.head.revision"] == sha and ca["periscope.commit.origin"] == "human"
    assert ca["periscope.usage.messages"] == 2 and ca["periscope.usage.input_tokens"] == 2110
    assert ca["periscope.usage.output_tokens"] == 370 and abs(ca["periscope.usage.cost.usd"] - 0.0133) < 1e-12
    assert ca["periscope.usage.models"] == ["anthropic/claude-sonnet-4", "openai/gpt-5"]
    assert not any(k.startswith("gen_ai.usage") for k in ca)  # a backend summing gen_ai.usage counts once
    assert c.resource["service.name"] == "periscope-hooks" and c.resource["team"] == "core"
    assert c.scope[0] == "periscope-hooks" and c.severity_text == "INFO"


def test_encoding_is_deterministic_and_both_protocols_say_the_same():
    from periscope_hooks.config import OtlpConfig

    evs, _ = team_events()
    cfg = OtlpConfig(resource_attributes={"team": "core", "service.name": "x"}, session_titles=True)
    first = encode(evs, cfg, "http/protobuf")[0]
    assert first == encode(evs, cfg, "http/protobuf")[0]  # a resend is the same bytes
    decoded = {}
    for protocol in ("http/protobuf", "http/json"):
        body, ctype = encode(evs, cfg, protocol)
        decoded[protocol] = records = records_of(decode_request(body, ctype))
        assert [r.uid for r in records] == [e["event_id"] for e in evs]
        assert [r.event_name for r in records][-2:] == ["periscope.commit", "periscope.rewrite"]
        assert records[0].time_unix_nano == 1_767_225_660_000 * 1_000_000
        rewrite = records[-1].attributes
        assert rewrite["periscope.rewrite.old_revisions"] == ["c" * 40]
        assert rewrite["periscope.rewrite.new_revisions"] == ["d" * 40]
    # The JSON encoder is written by hand: it must say exactly what the protobuf one says.
    assert decoded["http/json"] == decoded["http/protobuf"]


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_retryable_codes_are_retried(sd, receiver, code):
    point_config_at_collector(receiver.url)
    evs = make_events(5)
    fill_outbox(sd, evs)
    receiver.script = [("status", code), ("status", code)]
    result = flush_state_dir(sd)
    assert result.error is None and result.retried == 10 and result.delivered == 5
    assert len(receiver.records) == 5 and receiver.redeliveries == 0
    assert_books_balance(sd)


def test_retry_after_is_persisted_for_the_next_flusher(sd, receiver):
    point_config_at_collector(receiver.url)
    fill_outbox(sd, make_events(3))
    receiver.script = [("status", 429, {"Retry-After": "30"})]
    first = flush_state_dir(sd)
    assert "429" in first.error and int(meta(sd, "retry_after_until_ms")) > time.time() * 1000 + 25_000
    second = flush_state_dir(sd)  # a later flusher (the next commit's) waits too
    assert second.waited_for_retry_after and len(receiver.requests) == 1
    assert_books_balance(sd, expect_pending=3)


@pytest.mark.parametrize("code", [401, 403, 404, 500, 501])
def test_other_codes_are_not_retried_and_keep_the_events(sd, receiver, code):
    point_config_at_collector(receiver.url)
    fill_outbox(sd, make_events(4))
    receiver.script = [("status", code)]
    result = flush_state_dir(sd)
    assert len(receiver.requests) == 1  # not retried by this run
    assert f"HTTP {code}" in result.error and result.dead == 0
    assert_books_balance(sd, expect_pending=4)
    flush_state_dir(sd)  # fixed: the next flush delivers them
    assert len(receiver.records) == 4
    assert_books_balance(sd)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_400_isolates_the_bad_event_into_a_dead_letter(sd, receiver, protocol):
    point_config_at_collector(receiver.url, protocol=protocol)
    evs = make_events(16)
    receiver.poison = {evs[11]["event_id"]}
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.delivered == 15 and result.dead == 1
    assert set(receiver.records) == {e["event_id"] for e in evs} - receiver.poison
    assert len(receiver.requests) <= 1 + 2 * 4  # halving: about two requests per level
    conn = open_state_db(sd)
    (reason,) = conn.execute("SELECT reason FROM dead_letters WHERE event_id = ?", (evs[11]["event_id"],)).fetchone()
    conn.close()
    assert reason == f"refused by the OTLP collector (HTTP 400): record {evs[11]['event_id']} violates the schema"
    assert_books_balance(sd)


def test_a_lone_refused_event_is_kept_until_others_show_whose_fault_it_is(sd, receiver):
    # A flush after each message sends one event: refused alone, it was dead-lettered at once, so a
    # collector refusing everything dead-lettered every event as it came, silently.
    point_config_at_collector(receiver.url)
    evs = make_events(3)
    receiver.poison = {e["event_id"] for e in evs}  # a collector refusing us
    for e in evs:
        fill_outbox(sd, [e])
        result = flush_state_dir(sd)
        assert result.dead == 0 and ("is kept until others go with it" in result.error or "every event" in result.error)
    assert_books_balance(sd, expect_pending=3)
    # Fixed: all go.  A bad event alone waits for company, then is the only one dead-lettered.
    receiver.poison = set()
    flush_state_dir(sd)
    assert_books_balance(sd)
    bad, good = make_events(2, prefix="later")
    receiver.poison = {bad["event_id"]}
    fill_outbox(sd, [bad])
    assert flush_state_dir(sd).dead == 0
    fill_outbox(sd, [good])
    result = flush_state_dir(sd)
    assert result.dead == 1 and result.delivered == 1 and good["event_id"] in receiver.records
    assert_books_balance(sd)


def test_a_collector_refusing_every_event_dead_letters_none(sd, receiver):
    """400 for everything (say, a pipeline that cannot decode us): the halving ends with every event
    refused alone, which is not a bad event but a refusal of us: all are kept, the error shown."""
    point_config_at_collector(receiver.url)
    evs = make_events(4)
    receiver.poison = {e["event_id"] for e in evs}
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.dead == 0 and "every event of a batch was refused by the OTLP collector (HTTP 400" in result.error
    assert_books_balance(sd, expect_pending=4)
    receiver.poison = set()
    flush_state_dir(sd)  # fixed: delivered
    assert len(receiver.records) == 4
    assert_books_balance(sd)


def test_413_splits_and_dead_letters_an_oversized_event(sd, receiver):
    point_config_at_collector(receiver.url)
    evs = make_events(6)
    evs[3]["repo"] = {"url": "https://example.com/" + "x" * 20_000}
    receiver.max_body = 10_000
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.delivered == 5 and result.dead == 1 and evs[3]["event_id"] not in receiver.records
    assert_books_balance(sd)


def test_partial_success_is_recorded_and_shown(tmp_path, sd, receiver, monkeypatch):
    point_config_at_collector(receiver.url)
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    receiver.script = [("partial", 2, "attribute value too long")]
    append_spool(repo, message_record(repo), message_record(repo))
    commit(repo, "c")
    periscope("flush", cwd=repo)
    assert len(receiver.requests) == 1  # never resent
    assert_books_balance(state_dir(repo))
    status = periscope("status", cwd=repo).stdout
    assert "dropped 2 log record(s)" in status and "attribute value too long" in status


def test_a_collector_echoing_the_headers_never_puts_their_values_in_state_or_status(tmp_path, receiver):
    """A collector's partial-success message echoed the request's API key: it was stored in
    state.db and printed by `status` and `flush` word for word."""
    secret = "SECRETAPIKEY123"
    point_config_at_collector(receiver.url, headers={"x-api-key": secret})
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    receiver.script = [("partial", 1, f"bad record (request had x-api-key={secret})")]
    append_spool(repo, message_record(repo))
    commit(repo, "c")
    flushed = periscope("flush", cwd=repo)
    status = periscope("status", cwd=repo).stdout
    assert "x-api-key=<hidden>" in status and secret not in status + flushed.stdout + flushed.stderr
    assert secret.encode() not in (state_dir(repo) / "state.db").read_bytes()


def test_crash_mid_batch_then_resend_is_deduplicated_by_uid(sd, receiver):
    point_config_at_collector(receiver.url)
    evs = make_events(10)
    fill_outbox(sd, evs)
    receiver.script = [("crash", 4)]  # the collector kept 4 records and died before answering
    result = flush_state_dir(sd)
    assert result.delivered == 10 and result.retried == 10
    assert len(receiver.records) == 10 and receiver.deliveries == 14 and receiver.redeliveries == 4
    assert_books_balance(sd)


def test_kill_9_mid_flush_loses_nothing(sd, receiver):
    """A flusher killed (-9) while the collector holds its batch: the lease expires, the next flusher
    resends, and the receiver's uid dedupe leaves every event exactly once."""
    import signal

    point_config_at_collector(receiver.url)
    evs = make_events(6)
    fill_outbox(sd, evs)
    receiver.script = [("hold", 30)]  # keep the records, answer only after 30 s
    code = f"from pathlib import Path; from periscope_hooks.flush import flush_state_dir; flush_state_dir(Path({str(sd)!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], env=os.environ)
    try:
        assert receiver.wait_for(6)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert books(sd)["message"]["pending"] == 6  # the outbox never heard back
    conn = sqlite3.connect(str(sd / "state.db"))
    conn.execute("UPDATE outbox SET lease_until_ms = 0")  # as if the 120 s lease had run out
    conn.commit()
    conn.close()
    flush_state_dir(sd)
    assert receiver.redeliveries == 6 and len(receiver.records) == 6
    assert_books_balance(sd)


# --- privacy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("titles", [False, True])
def test_payloads_hold_no_sentinels(tmp_path, sd, receiver, monkeypatch, titles):
    """Titles only on opt-in; never credentials from the remote URL, never the headers' secrets."""
    sentinel = "TitleSentinel4b2c"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=" + SECRET_HEADER.replace(" ", "%20"))
    point_config_at_collector(receiver.url, **({"session_titles": True} if titles else {}))
    repo = init_repo(tmp_path / "r")  # its remote is https://user:secret-token@example.com/...
    periscope("install-hooks", cwd=repo)
    append_spool(repo, session_record("ses_01", title=f"refactor {sentinel}"), message_record(repo))
    commit(repo, "c")
    periscope("flush", cwd=repo)
    assert len(receiver.records) == 2
    sent = b"".join(receiver.payloads)
    assert b"secret-token" not in sent and b"otlp-header-secret" not in sent and b"user:" not in sent
    assert (sentinel.encode() in sent) is titles
    if titles:
        (msg,) = [r for r in receiver.records.values() if r.event_name == "periscope.message"]
        assert msg.attributes["periscope.session.title"] == f"refactor {sentinel}"


def test_missing_extra_is_a_clear_error(sd, monkeypatch, tmp_path, receiver):
    point_config_at_collector(receiver.url)
    fill_outbox(sd, make_events(2))
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.proto.collector.logs.v1'] = None\n"  # as if the extra were not installed
        "from periscope_hooks.flush import flush_state_dir\n"
        f"print(flush_state_dir(__import__('pathlib').Path({str(sd)!r})).error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=os.environ, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "the otlp sink needs the opentelemetry-proto package", out.stderr
    assert_books_balance(sd, expect_pending=2)
    # status names the command that installs it into the Python periscope runs from: the hint
    # was `pip install 'periscope-hooks[otlp]'`, and periscope-hooks is not on PyPI.
    code = "import sys\nsys.modules['opentelemetry'] = None\nfrom periscope_hooks.main import main\nmain(['status'])\n"
    out = subprocess.run(
        [sys.executable, "-c", code], env=os.environ, capture_output=True, text=True, timeout=60, cwd=sd
    )
    (line,) = [x for x in out.stdout.splitlines() if "OTLP collector" in x]
    assert f"hint: install it with: {sys.executable} -m pip install 'opentelemetry-proto>=1.33'" in line, line


def test_a_lone_refused_event_after_an_accepted_one_in_the_same_flush_is_dead_lettered(sd, receiver):
    """An event kept waiting for its retry is sent after the new ones, alone: kept "until others go
    with it", it never went with others, and stayed for ever.  A collector that took an event in
    this flush is not refusing us: the lone refusal is the event's."""
    from periscope_hooks.sinks import REJECTED, get_sink

    point_config_at_collector(receiver.url)
    bad, good = make_events(2, prefix="one-flush")
    receiver.poison = {bad["event_id"]}
    sink = get_sink()
    try:
        assert sink.send([good]).results == {good["event_id"]: ("accepted", None)}
        refused = sink.send([bad])
        assert not refused.stop and refused.results[bad["event_id"]][0] == REJECTED
    finally:
        sink.close()
    fresh = get_sink()  # the next flush, before the collector took anything: kept
    try:
        kept = fresh.send([bad])
        assert kept.stop and not kept.results and "it is kept until others go with it" in kept.error
    finally:
        fresh.close()


def test_web_searches_and_fast_mode_are_attributes_of_the_message_only_when_there():
    from periscope_hooks import events
    from periscope_hooks.sinks.otlp import attributes

    row = {"id": "m", "session_id": "s", "time_ms": 1, "provider": "anthropic", "model": "claude-opus-5"}
    row.update({"agent": "build", "cost": 0.0, "branch": "main", "sha": None, "list_cost_micro": 91_000})
    row.update({"cost_source": "estimated", "price_snapshot": "t", **dict.fromkeys(events.TOKEN_FIELDS, 10)})
    plain = attributes(events.message_event(row, None, None))
    assert "periscope.web_searches" not in plain and "periscope.request.speed" not in plain
    both = attributes(events.message_event({**row, "web_searches": 4, "speed": "fast"}, None, None))
    assert (both["periscope.web_searches"], both["periscope.request.speed"]) == (4, "fast")
    assert both["periscope.cost.list_usd"] == 0.091
