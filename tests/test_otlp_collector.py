"""Through a real OpenTelemetry collector: rotel (PyPI's `rotel` wheel, pinned in the test extra)
on 127.0.0.1, its OTLP/HTTP receiver taking our events and its OTLP exporter relaying them to the
test receiver; they arrive intact, and a resend is deduplicated by log.record.uid downstream."""

from __future__ import annotations

import os

import pytest

from testing.delivery import assert_books_balance, fill_outbox, quick_delivery
from testing.otlp import ROTEL_VERSION, need, point_config_at_collector, rotel_agent, rotel_collector, team_events
from testing.otlp_receiver import OtlpReceiver


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    agent = rotel_agent()
    need(agent is not None, f"rotel {ROTEL_VERSION} (pip install rotel=={ROTEL_VERSION})")
    log = tmp_path_factory.mktemp("rotel") / "rotel.log"
    assert agent is not None
    with OtlpReceiver() as downstream, rotel_collector(agent, downstream.base_url, log) as url:
        yield url, downstream


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_events_cross_a_real_collector_intact(tmp_path, monkeypatch, relay, protocol):
    from periscope_hooks.flush import flush_state_dir

    url, downstream = relay
    quick_delivery(monkeypatch)
    for var in [v for v in os.environ if v.startswith("OTEL_")]:
        monkeypatch.delenv(var)
    point_config_at_collector(url, protocol=protocol, compression="gzip", resource_attributes={"team": "core"})
    evs, _ = team_events()
    # Each run its own ids: the module's receiver is shared by both protocols.
    for e in evs:
        e["event_id"] = f"{protocol}-{e['event_id']}"
    sd = tmp_path / "state"
    fill_outbox(sd, evs)
    result = flush_state_dir(sd)
    assert result.error is None and result.delivered == len(evs)
    assert_books_balance(sd)
    ids = {e["event_id"] for e in evs}
    assert downstream.wait_for_ids(ids), "the collector did not relay every record"
    from periscope_hooks.config import OtlpConfig
    from periscope_hooks.sinks.otlp import encode_request
    from testing.otlp_receiver import records_of

    sent = {r.uid: r for r in records_of(encode_request(evs, OtlpConfig(resource_attributes={"team": "core"})))}
    for uid in ids:
        got, want = downstream.records[uid], sent[uid]
        assert (got.event_name, got.time_unix_nano, got.body, got.attributes) == (
            want.event_name,
            want.time_unix_nano,
            want.body,
            want.attributes,
        )
        assert got.resource["team"] == "core" and got.scope == want.scope
    # A resend (as after a flusher died before hearing back) reaches the backend again; the uid dedupes it.
    before = downstream.deliveries
    fill_outbox(tmp_path / "again", evs[:3])
    flush_state_dir(tmp_path / "again")
    assert downstream.wait_for_deliveries(before + 3)
    assert all(e["event_id"] in downstream.records for e in evs[:3]) and downstream.redeliveries >= 3
