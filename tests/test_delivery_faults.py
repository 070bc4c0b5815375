"""Fault scenarios against a real ingest server on 127.0.0.1.

Every scenario ends with the receiver holding each event exactly once and nothing
left in the outbox, and the books balance: created = delivered + pending + dead + dropped.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from periscope_hooks.flush import flush_state_dir
from testing.delivery import (
    assert_books_balance,
    books,
    fill_outbox,
    make_events,
    quick_delivery,
    signed_in_backend,
)
from testing.util import append_spool, commit, init_repo, message_record, periscope, state_dir


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    quick_delivery(monkeypatch, cap=0.3, timeout=1, budget=20)


def flush_until_empty(sd, tries=20):
    for _ in range(tries):
        flush_state_dir(sd)
        if books(sd).get("message", {}).get("pending", 0) == 0:
            return
        time.sleep(0.2)


def check_exactly_once(receiver, sd, evs):
    assert set(receiver.events) == {e["event_id"] for e in evs}
    assert_books_balance(sd)
    assert books(sd)["message"]["delivered"] == len(evs)


def test_500_for_the_first_requests(receiver, sd):
    evs = make_events(1200)
    fill_outbox(sd, evs)
    receiver.script = [("status", 500)] * 3
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)
    assert max(r["size"] for r in receiver.requests) < 1_000_000 and len(receiver.requests) >= 3 + 3


def test_429_retry_after_is_saved_for_the_next_flusher(receiver, sd):
    evs = make_events(10)
    fill_outbox(sd, evs)
    receiver.script = [("status", 429, {"Retry-After": "2"})]
    os.environ["PERISCOPE_FLUSH_BUDGET"] = "0.5"  # this flusher gives up before the wait is over
    result = flush_state_dir(sd)
    assert result.retried == 10 and not receiver.events
    start = time.monotonic()
    result = flush_state_dir(sd)  # a new, short-lived flusher: still inside Retry-After
    assert result.waited_for_retry_after and len(receiver.requests) == 1
    while time.monotonic() - start < 2.2:
        time.sleep(0.1)
    os.environ["PERISCOPE_FLUSH_BUDGET"] = "20"
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)


def test_a_foreground_flush_waits_out_a_retry_after_met_while_ingesting(tmp_path, receiver):
    # The flush delivers between ingest batches without waiting; a 503 with Retry-After there was
    # saved, and the delivery after ingest returned at once: `periscope flush` exited 1 after one
    # request ("delivery incomplete"), where the Retry-After fitted its budget many times over.
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, *[message_record(repo) for _ in range(4)])
    receiver.script = [("status", 503, {"Retry-After": "1"})]
    proc = periscope("flush", cwd=repo, check=False)
    assert proc.returncode == 0 and "retrying" in proc.stderr + proc.stdout, (proc.stdout, proc.stderr)
    assert len(receiver.events) == 4 and len(receiver.requests) == 2
    assert_books_balance(state_dir(repo))


def test_a_server_that_hangs_past_the_timeout(receiver, sd):
    evs = make_events(5)
    fill_outbox(sd, evs)
    receiver.script = [("hang", 2.5)]
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)


def test_connection_refused_for_a_while_then_up(receiver, sd):
    evs = make_events(20)
    fill_outbox(sd, evs)
    receiver.stop()
    os.environ["PERISCOPE_FLUSH_BUDGET"] = "1"
    result = flush_state_dir(sd)
    assert "could not reach" in (result.error or "") and books(sd)["message"]["pending"] == 20
    # Down for a while, then up during one flusher's run: its backoff finds it again.
    os.environ["PERISCOPE_FLUSH_BUDGET"] = "20"
    threading.Timer(1.0, receiver.start).start()
    result = flush_state_dir(sd)
    assert result.retried > 0 and result.delivered == 20 and result.error is None
    check_exactly_once(receiver, sd, evs)


def test_413_for_large_batches(receiver, sd):
    evs = make_events(40, pad=2000)
    huge = make_events(1, prefix="huge", pad=400_000)
    fill_outbox(sd, evs + huge)
    receiver.max_body = 20_000  # gzip makes the padding small; the huge one stays too large
    huge[0]["pad"] = "".join(random.choice("abcdefghijklmnop") for _ in range(400_000))
    fill_outbox(sd, huge)  # same event id: not enqueued twice
    flush_until_empty(sd)
    assert set(receiver.events) == {e["event_id"] for e in evs} | (
        {huge[0]["event_id"]} if huge[0]["event_id"] in receiver.events else set()
    )
    assert_books_balance(sd)


def test_poison_event_at_the_head_does_not_block_the_rest(receiver, sd):
    evs = make_events(30)
    receiver.poison = {evs[0]["event_id"]}
    fill_outbox(sd, evs)
    flush_until_empty(sd)
    assert set(receiver.events) == {e["event_id"] for e in evs[1:]}
    c = books(sd)["message"]
    assert c["dead"] == 1 and c["delivered"] == 29 and c["pending"] == 0
    assert_books_balance(sd)
    status = periscope("status", "--repo", str(sd.parent.parent)).stdout
    assert "schema violation" in status
    receiver.poison = set()
    periscope("flush", "--retry-dead", "--repo", str(sd.parent.parent))
    check_exactly_once(receiver, sd, evs)


def test_200_with_a_garbled_body(receiver, sd):
    evs = make_events(8)
    fill_outbox(sd, evs)
    receiver.script = [("garbled",)]
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)
    assert receiver.redeliveries == 8  # the first copy arrived; the client could not know


def test_two_flushers_at_once(receiver, tmp_path):
    repo = init_repo(tmp_path / "r")
    sd = state_dir(repo)
    evs = make_events(3000)
    fill_outbox(sd, evs)
    procs = [
        subprocess.Popen([sys.executable, "-m", "periscope_hooks", "flush", "--repo", str(repo)]) for _ in range(2)
    ]
    assert all(p.wait(timeout=120) in (0, 1) for p in procs)
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)
    assert receiver.redeliveries == 0


def test_kill_9_at_random_moments(receiver, tmp_path):
    from periscope_hooks import outbox
    from periscope_hooks.state import open_state_db

    repo = init_repo(tmp_path / "r")
    sd = state_dir(repo)
    evs: list = []
    os.environ["PERISCOPE_FLUSH_BUDGET"] = "60"
    rng = random.Random(7)
    kills = attempts = 0
    while kills < 20 and attempts < 80:
        attempts += 1
        conn = open_state_db(sd)
        low = outbox.depth(conn) < 1000
        conn.close()
        if low:  # keep the flusher busy enough that the kill lands mid-delivery
            more = make_events(3000, prefix=f"round{attempts}")
            fill_outbox(sd, more)
            evs += more
        p = subprocess.Popen([sys.executable, "-m", "periscope_hooks", "flush", "--repo", str(repo)])
        time.sleep(rng.uniform(0.05, 0.5))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
    # One flush takes over what the killed flushers had leased (it holds flush.lock: they are
    # dead), where it used to wait out their 120 s leases.
    periscope("flush", "--repo", str(repo))
    check_exactly_once(receiver, sd, evs)
    print(f"kill -9 x{kills} in {attempts} runs: {receiver.redeliveries} redeliveries, deduplicated by the receiver")
    assert kills >= 20


def test_receiver_hangs_while_git_commit_returns_at_once(receiver, tmp_path):
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    receiver.script = [("hang", 5.0)] * 3
    append_spool(repo, message_record(repo, id="during-hang"))
    start = time.monotonic()
    commit(repo, "while the receiver hangs")
    assert time.monotonic() - start < 3
    sd = state_dir(repo)
    deadline = time.time() + 60
    while time.time() < deadline:
        flush_state_dir(sd)
        if books(sd).get("commit", {}).get("delivered") == 1 and books(sd)["message"]["delivered"] == 1:
            break
        time.sleep(0.5)
    assert_books_balance(sd)
    assert {e["type"] for e in receiver.events.values()} == {"message", "commit"}


def expire_tokens_after(receiver, idp, *accepted_counts):
    """Make the identity provider expire every access token once the receiver has accepted each of
    `accepted_counts` events."""
    original, accepted = receiver._accept, [0]

    def accept_then_expire(event):
        accepted[0] += 1
        if accepted[0] in accepted_counts:
            idp.expire_access_tokens()
        return original(event)

    receiver._accept = accept_then_expire


@contextlib.contextmanager
def signed_in_with_events(tmp_path, monkeypatch, n=1500):
    """Signed in (real msal, a local identity provider) with `n` events in a repository's outbox
    (1,500: three batches): (backend, idp, receiver, state dir, events)."""
    with signed_in_backend(tmp_path, monkeypatch) as backend:
        backend.login()
        sd = state_dir(init_repo(tmp_path / "r"))
        evs = make_events(n)
        fill_outbox(sd, evs)
        yield backend, backend.idp, backend.receiver, sd, evs


def test_a_token_expiring_again_after_a_503_is_refreshed_again(tmp_path, monkeypatch):
    """401, silent refresh, 503, the new token expires too, 401: one silent refresh was allowed
    until a batch was accepted, so the second said "sign in again" (and noted it for OpenCode's
    plugin) with a refresh token still good (a helper's sweep)."""
    from periscope_hooks import paths

    quick_delivery(monkeypatch, budget=10)
    with signed_in_with_events(tmp_path, monkeypatch, 3) as (_, idp, receiver, sd, evs):
        original, requests = receiver.handle, [0]

        def expire_after_the_second(h):
            requests[0] += 1
            original(h)
            if requests[0] == 2:  # the request with the refreshed token got the 503
                idp.expire_access_tokens()

        receiver.handle = expire_after_the_second
        idp.expire_access_tokens()  # the first request: 401, then a silent refresh
        receiver.script = [None, ("status", 503)]
        result = flush_state_dir(sd)
        assert result.error is None or "sign in again" not in result.error, result.error
        assert not paths.sign_in_required_path().exists()
        assert idp.grants.count("refresh_token") == 2
        flush_until_empty(sd)
        check_exactly_once(receiver, sd, evs)


@pytest.mark.parametrize("outage", ["503", "404", "200-error"])
def test_an_identity_provider_outage_keeps_the_events_and_says_so(tmp_path, monkeypatch, outage):
    """The provider's discovery document down while a token needs refreshing: said as the sink's
    own bug ("sink failed: MsalServiceError", "...: UserError"), or, for an error where the
    document belongs, as "sign in again" (noted for OpenCode) with the sign-in still good."""
    from periscope_hooks import paths

    quick_delivery(monkeypatch, budget=1)
    with signed_in_with_events(tmp_path, monkeypatch, 2) as (_, idp, receiver, sd, evs):
        idp.expire_access_tokens()
        idp.discovery_fails = outage
        result = flush_state_dir(sd)
        assert result.error.startswith("could not read the identity provider's configuration (127.0.0.1: ")
        assert not paths.sign_in_required_path().exists()
        assert_books_balance(sd, expect_pending=2)
        idp.discovery_fails = None
        flush_until_empty(sd)
        check_exactly_once(receiver, sd, evs)


@pytest.mark.parametrize("outage", ["503", "down"])
def test_a_valid_cached_token_delivers_while_the_identity_provider_is_down(tmp_path, monkeypatch, outage):
    """Each flusher made a new msal application, which reads the provider's discovery document
    before its token cache: an outage of the provider held delivery for as long as it lasted, with
    a token valid for an hour on disk.  The cached token is found without the application now; once
    it expires, the outage is said as before and the events wait."""
    from periscope_hooks import paths

    quick_delivery(monkeypatch, budget=2)
    with signed_in_with_events(tmp_path, monkeypatch, 3) as (_, idp, receiver, sd, evs):
        grants = len(idp.grants)
        if outage == "down":
            idp.stop()  # nothing listens on its port
        else:
            idp.discovery_fails = outage
        result = flush_state_dir(sd)
        assert result.error is None, result.error
        check_exactly_once(receiver, sd, evs)
        assert len(idp.grants) == grants  # the cached token, no refresh
        # The token expired on the provider too: a 401, a forced refresh, and the outage said.
        idp.expire_access_tokens()
        more = make_events(2, prefix="later")
        fill_outbox(sd, more)
        result = flush_state_dir(sd)
        assert result.error and "identity provider" in result.error, result.error
        assert not paths.sign_in_required_path().exists()
        assert_books_balance(sd, expect_pending=2)


def test_expired_token_mid_run_is_refreshed_silently(tmp_path, monkeypatch):
    """Real msal and a local identity provider: the access token expires between batches."""
    with signed_in_with_events(tmp_path, monkeypatch) as (backend, idp, receiver, sd, evs):
        expire_tokens_after(receiver, idp, 500)  # every access token, once the first batch is in
        flush_until_empty(sd)
        check_exactly_once(receiver, sd, evs)
        assert "refresh_token" in idp.grants
        assert any(r["auth"] and r["auth"].startswith("Bearer ") for r in receiver.requests)
        # After long inactivity the refresh token is gone too: nothing is dropped, status says what to do.
        idp.expire_access_tokens()
        idp.expire_refresh_tokens()
        more = make_events(5, prefix="later")
        fill_outbox(sd, more)
        result = flush_state_dir(sd)
        assert "sign in again" in result.error and books(sd)["message"]["pending"] == 5
        assert "run periscope login" in periscope("status", "--repo", str(sd.parent.parent)).stdout
        # Noted outside the repository too, so that a restarted OpenCode asks to sign in again.
        from periscope_hooks import paths

        assert paths.sign_in_required_path().exists()
        backend.login()
        assert not paths.sign_in_required_path().exists()
        assert_books_balance(sd, expect_pending=5)  # nothing dropped while signed out
        # Signed in again: everything kept meanwhile goes out, once, and a "sign in again" noted
        # meanwhile (OpenCode's plugin would open a sign-in for it) is cleared by the delivery.
        paths.sign_in_required_path().touch()
        flush_until_empty(sd)
        check_exactly_once(receiver, sd, evs + more)
        assert not paths.sign_in_required_path().exists()


def test_logs_hold_no_payloads_tokens_or_credentials(tmp_path, monkeypatch):
    """Faults of every kind, through the hooks' background flush and the CLI, with real tokens: no log
    file, status line, stored error or meta value holds a token, a payload field or a secret from
    the endpoint URL."""
    from testing.util import session_record

    sentinel = "PayloadSentinel7f3a"
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "2")
    with signed_in_backend(tmp_path, monkeypatch, endpoint_suffix="?ingest_key=QuerySecret42") as backend:
        idp, receiver = backend.idp, backend.receiver
        backend.login()
        repo = init_repo(tmp_path / "r")
        periscope("install-hooks", cwd=repo)
        receiver.script = [("status", 500), ("garbled",), ("hang", 1.5), ("status_no_body", 400), ("status", 413)]
        append_spool(
            repo,
            session_record(title=f"title {sentinel}"),
            message_record(repo, id=f"msg-{sentinel}", model=f"model-{sentinel}"),
        )
        commit(repo, "first")  # the hook's background flusher meets the first faults
        time.sleep(1.0)
        for _ in range(3):
            periscope("flush", cwd=repo, check=False)
        idp.expire_access_tokens()
        idp.expire_refresh_tokens()
        append_spool(repo, message_record(repo, id="after-expiry"))
        commit(repo, "second")
        time.sleep(1.0)
        flush = periscope("flush", cwd=repo, check=False)
        status = periscope("status", cwd=repo)
        assert "sign in again" in status.stdout  # the faults did happen
        secrets = [sentinel, "QuerySecret42", *idp.access_tokens, *idp.refresh_tokens]
        assert len(secrets) >= 4
        texts = {"flush output": flush.stdout + flush.stderr, "status output": status.stdout + status.stderr}
        roots = [Path(os.environ["XDG_STATE_HOME"]), state_dir(repo)]
        for root in roots:
            for path in root.rglob("*.log*"):
                texts[str(path)] = path.read_text(errors="replace")
        conn = __import__("sqlite3").connect(str(state_dir(repo) / "state.db"))
        # Every meta value, not only the errors: the receiver delivery last dealt with was kept
        # there with its whole address (a helper's sweep, stop 36).
        texts["state.db's meta and errors"] = " ".join(
            str(v)
            for (v,) in conn.execute("SELECT value FROM meta UNION ALL SELECT coalesce(last_error, '') FROM outbox")
        )
        conn.close()
        assert any(p.endswith(".log") for p in texts), texts.keys()
        for where, text in texts.items():
            for secret in secrets:
                assert secret not in text, f"{secret[:12]}... in {where}"


def test_a_redirect_keeps_every_event_and_says_where_it_leads(receiver, sd):
    # httpx follows no redirect (nor should it: the token would go along): a 301 was read as a
    # refusal without results, the batch halved down to single events, and every one dead-lettered.
    evs = make_events(21)
    fill_outbox(sd, evs)
    receiver.script = [("status", 301, {"Location": "https://moved.example/v1/events?k=secret"})]
    result = flush_state_dir(sd)
    assert "HTTP 301 (a redirect to https://moved.example)" in result.error and "secret" not in result.error
    assert len(receiver.requests) == 1 and books(sd)["message"]["dead"] == 0
    assert_books_balance(sd, expect_pending=21)
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)


@pytest.mark.parametrize("sink", ["endpoint", "otlp"])
def test_a_server_that_answers_a_byte_at_a_time_cannot_hold_a_flusher(sd, sink, monkeypatch):
    # httpx's timeouts bound each read: a server sending a byte every 0.25 s never tripped the
    # 1 s timeout, and the flusher (holding flush.lock) ran for as long as the server kept on.
    from testing.delivery import point_config_at
    from testing.otlp import point_config_at_collector
    from testing.server import DripServer

    quick_delivery(monkeypatch, timeout=1, budget=2)
    evs = make_events(3)
    fill_outbox(sd, evs)
    with DripServer(limit_s=60) as drip:
        if sink == "otlp":
            point_config_at_collector(drip.url, timeout=1000)  # OTEL's milliseconds
        else:
            point_config_at(drip.url)
        started = time.monotonic()
        result = flush_state_dir(sd)
        took = time.monotonic() - started
        assert drip.hung_up.wait(10)  # we left; the server did not end it
    assert "did not answer in time" in result.error, result.error
    assert took < 30, took  # a hang guard, not a speed figure: unbounded, it ran the server's 60 s
    assert_books_balance(sd, expect_pending=3)


def test_an_endpoint_refusing_every_event_without_saying_which_keeps_them(receiver, sd):
    # A 404 (a wrong path, a proxy's page) or a blanket 400 without per-event results was halved down
    # to single events, and every one of them dead-lettered: the whole history, for a typo in a URL.
    evs = make_events(20)
    fill_outbox(sd, evs)
    receiver.script = [("status", 404)] * 100
    result = flush_state_dir(sd)
    assert "refused every event of a batch (HTTP 404); events are kept" in result.error
    assert books(sd)["message"]["dead"] == 0
    assert_books_balance(sd, expect_pending=20)
    receiver.script = []
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)


def test_an_endpoint_refusing_everything_and_failing_once_while_halving_keeps_them(receiver, sd):
    """The same endpoint with one passing 503 in the halving: the half it left unanswered had no
    results, so the refusals of the other half were dead-lettered (good events; a helper's sweep)."""
    evs = make_events(4)
    fill_outbox(sd, evs)
    # 4 -> 404; [0, 1] -> 404; [0] -> 404; [1] -> 404; [2, 3] -> 503
    receiver.script = [("status_no_body", 404)] * 4 + [("status", 503)] + [("status_no_body", 404)] * 50
    result = flush_state_dir(sd)
    assert "events are kept" in result.error, result.error
    assert books(sd)["message"]["dead"] == 0
    assert_books_balance(sd, expect_pending=4)
    receiver.script = []
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, evs)


def test_finding_a_refused_event_stops_when_the_budget_is_spent():
    from periscope_hooks.sinks import ACCEPTED, OUT_OF_TIME_ISOLATING, SendOutcome, halves

    sent: list[int] = []

    def send(part):
        sent.append(len(part))
        return SendOutcome(results={e["event_id"]: (ACCEPTED, None) for e in part})

    evs = make_events(8)
    within = halves(evs, send, time.monotonic() + 60)
    assert sent == [4, 4] and len(within.results) == 8 and within.error is None
    sent.clear()
    spent = halves(evs, send, time.monotonic() - 1)  # the first half goes; the rest waits
    assert sent == [4] and len(spent.results) == 4
    assert spent.error == OUT_OF_TIME_ISOLATING and spent.stop
    # Refusals found before time ran out are kept, not dead-lettered: every event refused (a
    # receiver refusing us) cannot be told from one bad event until the halving ends.
    from periscope_hooks.sinks import REJECTED

    def refuse(part):
        return SendOutcome(results={e["event_id"]: (REJECTED, "no") for e in part})

    assert halves(evs, refuse, time.monotonic() - 1).results == {}


def test_a_token_expiring_twice_in_one_flush_is_refreshed_twice_and_a_failing_provider_is_not_a_sign_out(
    tmp_path, monkeypatch
):
    # One silent refresh per run: the second expiry in a long flush said "sign in again" (and noted
    # it for OpenCode's plugin) while the refresh token was still good; so did a 500 from the
    # provider's token endpoint, a transient failure.
    from periscope_hooks import paths

    with signed_in_with_events(tmp_path, monkeypatch) as (_, idp, receiver, sd, evs):
        expire_tokens_after(receiver, idp, 500, 1000)  # after the first and the second batch
        result = flush_state_dir(sd)
        assert result.error is None and idp.grants.count("refresh_token") == 2
        check_exactly_once(receiver, sd, evs)

        more = make_events(3, prefix="later")
        fill_outbox(sd, more)
        idp.expire_access_tokens()
        idp.token_endpoint_fails = True
        monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "1")
        result = flush_state_dir(sd)
        assert result.error.startswith("token refresh failed: the identity provider"), result.error
        assert not paths.sign_in_required_path().exists()
        assert "sign in again" not in periscope("status", "--repo", str(sd.parent.parent)).stdout
        idp.token_endpoint_fails = False
        flush_until_empty(sd)
        check_exactly_once(receiver, sd, evs + more)


def test_a_token_cache_in_another_shape_is_one_status_line(tmp_path):
    from periscope_hooks import paths
    from testing.delivery import point_config_at

    point_config_at("https://127.0.0.1:1/v1/events", client_id="c", authority="https://127.0.0.1:1/tenant")
    cache = paths.token_cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text('{"Account": [1]}')
    proc = periscope("status", cwd=tmp_path, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "token cache unreadable (ValueError): run periscope login" in proc.stdout, proc.stdout


def test_a_lone_event_refused_without_a_word_is_kept_until_others_go_with_it(receiver, sd):
    # A flush after each message sends one event; refused without per-event results (a wrong path),
    # it was dead-lettered at once, one event after another.
    first, second = make_events(2)
    fill_outbox(sd, [first])
    receiver.script = [("status", 404)] * 10
    result = flush_state_dir(sd)
    assert "refused the only event of a batch (HTTP 404); it is kept" in result.error
    assert_books_balance(sd, expect_pending=1)
    receiver.script = []
    fill_outbox(sd, [second])
    flush_until_empty(sd)
    check_exactly_once(receiver, sd, [first, second])


def test_a_local_store_that_cannot_be_written_is_said_at_once_not_retried_for_the_budget(tmp_path, monkeypatch):
    # A read-only home (here: a file where the store's folder goes): delivery backed off and tried
    # again for the whole budget (a minute by default) and then said "the local store sink failed:
    # OSError"; `export`, which flushes first, waited as long.
    from periscope_hooks import paths

    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "30")
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo))
    folder = paths.local_store_path().parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")
    started = time.monotonic()
    proc = periscope("flush", cwd=repo, check=False)
    assert time.monotonic() - started < 20  # a hang guard: it waited out the 30 s budget before
    assert f"the local store {paths.local_store_path()} cannot be written" in proc.stderr, proc.stderr
    assert_books_balance(state_dir(repo), expect_pending=1)


def test_a_lone_event_refused_after_the_endpoint_took_another_in_the_same_flush_is_dead_lettered(receiver):
    """An event kept waiting for its retry is sent after the new ones, alone, and was kept "until
    others go with it" for ever.  An endpoint that took an event in this flush is not refusing us."""
    from periscope_hooks.sinks import ACCEPTED, REJECTED, get_sink

    good, bad = make_events(2, prefix="one-flush")
    sink = get_sink()
    try:
        assert sink.send([good]).results == {good["event_id"]: (ACCEPTED, None)}
        receiver.script = [("status", 404)]
        refused = sink.send([bad])
        assert not refused.stop and refused.results == {
            bad["event_id"]: (REJECTED, "refused by the endpoint (HTTP 404)")
        }
    finally:
        sink.close()
    fresh = get_sink()  # the next flush, before the endpoint took anything: kept
    try:
        receiver.script = [("status", 404)]
        kept = fresh.send([bad])
        assert kept.stop and not kept.results and "it is kept until others go with it" in kept.error
    finally:
        fresh.close()
