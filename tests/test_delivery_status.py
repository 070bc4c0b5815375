"""The delivery lines of `periscope status` (delivery_status.py), against a real ingest server on 127.0.0.1."""

from __future__ import annotations

import errno
import re
import socket
import subprocess
import time

import pytest

from periscope_hooks import paths
from periscope_hooks.auth import redirect_port
from periscope_hooks.delivery_status import status_lines
from periscope_hooks.flush import flush_state_dir
from periscope_hooks.state import open_state_db
from testing.delivery import fill_outbox, make_events, point_config_at, quick_delivery, signed_in_backend
from testing.fixtures import LOGIN_PORT
from testing.util import append_spool, commit, init_repo, message_record, periscope, state_dir

PORT_LABEL = f"port {LOGIN_PORT}"  # the sign-in port isolated_home gives this worker
BOOKS = re.compile(r"created (\d+) = delivered (\d+) \+ pending (\d+) \+ dead-lettered (\d+) \+ dropped (\d+)")


@pytest.fixture(autouse=True)
def fast_delivery(monkeypatch):
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    quick_delivery(monkeypatch)


def lines(sd) -> list[tuple[str, str]]:
    conn = open_state_db(sd)
    try:
        return status_lines(conn)
    finally:
        conn.close()


def labels(rows: list[tuple[str, str]]) -> list[str]:
    return [label for label, _ in rows]


def one(rows: list[tuple[str, str]], label: str) -> str:
    found = [text for lab, text in rows if lab == label]
    assert len(found) == 1, (label, rows)
    return found[0]


def books(rows: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out = {}
    for label, text in rows:
        if label.endswith(" events"):
            m = BOOKS.fullmatch(text)
            assert m, text
            out[label[: -len(" events")]] = dict(
                zip(("created", "delivered", "pending", "dead", "dropped"), map(int, m.groups()))
            )
    return out


def analytics_json():
    return paths.analytics_config_path()


# --- sink ---------------------------------------------------------------------------------------


def test_no_config_means_the_local_store(sd):
    rows = lines(sd)
    assert one(rows, "sink") == f"local store {paths.local_store_path()} (no endpoint in {analytics_json()})"
    assert not {"config", "sign-in", PORT_LABEL, "retry-after", "dead letters", "delivery"} & set(labels(rows))
    # Without a connection (no repository state at hand) only the configuration is described.
    assert status_lines(None) == [rows[0]]


def test_endpoint_line_never_shows_credentials(sd, tmp_path):
    point_config_at("https://ingest.periscope.example/v1/events?token=s3cr3t")
    rows = lines(sd)
    assert (
        one(rows, "sink")
        == f"Periscope endpoint https://ingest.periscope.example/v1/events (config {analytics_json()})"
    )
    # Credentials in the endpoint URL are refused (they would be sent as Basic auth), and never echoed:
    # also where a '/' or '#' in the password defeats URL parsing.
    for url in (
        "https://bob:hunter2@ingest.periscope.example/v1/events",
        "https://bob:hun/ter2@ingest.periscope.example/v1/events",
        "https://bob:hun#ter2@ingest.periscope.example/v1/events",
    ):
        point_config_at(url)
        text = one(lines(sd), "config")
        assert (
            text.startswith(f"error: endpoint in {analytics_json()} contains credentials")
            and "hint: remove them" in text
        )
        out = periscope("status", "--repo", str(sd.parent.parent))
        for secret in ("hunter2", "hun/ter2", "hun#ter2", "bob"):
            assert secret not in out.stdout + out.stderr
    # An endpoint from the environment is checked the same way.
    point_config_at("https://ingest.periscope.example/v1/events")
    out = periscope(
        "status",
        "--repo",
        str(sd.parent.parent),
        env={"PERISCOPE_ENDPOINT": "http://alice:pa55word@127.0.0.1:9/v1/events"},
    )
    assert "$PERISCOPE_ENDPOINT contains credentials" in out.stdout and "pa55word" not in out.stdout


def test_broken_config_replaces_the_sink_line(sd):
    analytics_json().parent.mkdir(parents=True, exist_ok=True)
    analytics_json().write_text(
        '{"endpoint": "http://ingest.example.com/v1/events", "client_id": "c", "authority": "https://login.example/t"}'
    )
    rows = lines(sd)
    text = one(rows, "config")
    assert text.startswith(
        f"error: endpoint in {analytics_json()} uses http:// for a non-loopback host (ingest.example.com)"
    )
    assert f" hint: use https:// in {analytics_json()}" in text
    assert not {"sink", "sign-in", PORT_LABEL} & set(labels(rows))


# --- books --------------------------------------------------------------------------------------


def test_books_balance_after_a_real_flush(tmp_path, receiver, monkeypatch):
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo, id="b1"), message_record(repo, id="b2"))
    commit(repo, "c1")
    append_spool(repo, message_record(repo, id="b3"))
    sd = state_dir(repo)
    # The endpoint is down first: everything is created and pending.
    receiver.stop()
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "0.3")
    flush_state_dir(sd)
    b = books(lines(sd))
    assert b == {
        "commit": {"created": 1, "delivered": 0, "pending": 1, "dead": 0, "dropped": 0},
        "message": {"created": 3, "delivered": 0, "pending": 3, "dead": 0, "dropped": 0},
    }
    assert one(lines(sd), "delivery").startswith("last error: could not reach the endpoint")
    receiver.start()
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "5")
    periscope("flush", cwd=repo)
    rows = lines(sd)
    b = books(rows)
    assert labels(rows).index("commit events") < labels(rows).index("message events")
    for kind, c in b.items():
        assert c["created"] == c["delivered"] + c["pending"] + c["dead"] + c["dropped"], (kind, c)
        assert c["pending"] == 0 and c["dead"] == 0 and c["dropped"] == 0
        assert c["delivered"] == sum(1 for e in receiver.events.values() if e["type"] == kind)
    assert b["message"]["created"] == 3 and b["commit"]["created"] == 1
    assert "delivery" not in labels(rows)  # the error is cleared once everything got through


def test_books_would_show_a_dropped_event(sd):
    # Nothing drops events by design; play the loss the column is there for, straight in state.db.
    evs = make_events(3)
    fill_outbox(sd, evs)
    conn = open_state_db(sd)
    try:
        conn.execute("DELETE FROM outbox WHERE event_id = ?", (evs[0]["event_id"],))
        conn.execute("UPDATE event_counts SET dropped = dropped + 1 WHERE type = 'message'")
        rows = status_lines(conn)
    finally:
        conn.close()
    assert one(rows, "message events") == "created 3 = delivered 0 + pending 2 + dead-lettered 0 + dropped 1"


# --- dead letters -------------------------------------------------------------------------------


def test_dead_letters_listed_with_reason_and_retry_hint(sd, receiver):
    evs = make_events(4)
    receiver.poison = {evs[1]["event_id"]}
    fill_outbox(sd, evs)
    flush_state_dir(sd)
    rows = lines(sd)
    assert one(rows, "dead letter") == f"message {evs[1]['event_id']}: schema violation"
    assert one(rows, "dead letters") == "1 in all; periscope flush --retry-dead re-queues them"
    assert books(rows)["message"] == {"created": 4, "delivered": 3, "pending": 0, "dead": 1, "dropped": 0}
    # The receiver is fixed; --retry-dead re-queues, and the list is empty again.
    receiver.poison = set()
    periscope("flush", "--retry-dead", "--repo", str(sd.parent.parent))
    rows = lines(sd)
    assert not {"dead letter", "dead letters"} & set(labels(rows))
    assert books(rows)["message"] == {"created": 4, "delivered": 4, "pending": 0, "dead": 0, "dropped": 0}
    assert set(receiver.events) == {e["event_id"] for e in evs}


def test_many_dead_letters_are_summed_up(sd, receiver):
    evs = make_events(9)
    receiver.poison = {e["event_id"] for e in evs[:7]}
    fill_outbox(sd, evs)
    flush_state_dir(sd)
    rows = lines(sd)
    listed = [text for label, text in rows if label == "dead letter"]
    assert len(listed) == 5
    assert all(re.fullmatch(r"message \S+: schema violation", t) for t in listed)
    assert {t.split()[1].rstrip(":") for t in listed} <= receiver.poison
    assert one(rows, "dead letters") == "7 in all; periscope flush --retry-dead re-queues them"
    assert books(rows)["message"] == {"created": 9, "delivered": 2, "pending": 0, "dead": 7, "dropped": 0}


# --- retry-after, sign-in -----------------------------------------------------------------------


def test_saved_retry_after_is_shown_until_it_passes(sd, receiver, monkeypatch):
    fill_outbox(sd, make_events(3))
    receiver.script = [("status", 429, {"Retry-After": "2"})]
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "0.3")  # this flusher gives up before the wait is over
    flush_state_dir(sd)
    rows = lines(sd)
    m = re.fullmatch(r"the endpoint asked to wait (\d+)s more", one(rows, "retry-after"))
    assert m and 1 <= int(m.group(1)) <= 2, rows
    assert one(rows, "delivery") == "last error: the endpoint answered HTTP 429"
    assert books(rows)["message"]["pending"] == 3
    # The user switched to the local store: the endpoint's wait does not apply to it, and is not shown.
    analytics_json().unlink()
    assert "retry-after" not in labels(lines(sd))
    point_config_at(receiver.url)
    assert "retry-after" in labels(lines(sd))
    time.sleep(2.1)
    assert "retry-after" not in labels(lines(sd))


def test_sign_in_again_when_the_flusher_says_so(sd, tmp_path, monkeypatch):
    """Real msal against a local identity provider: no usable sign-in, the flusher records it."""
    with signed_in_backend(tmp_path, monkeypatch) as backend:
        receiver = backend.receiver
        fill_outbox(sd, make_events(3))
        assert one(lines(sd), "sign-in") == "not signed in: run periscope login"
        result = flush_state_dir(sd)
        assert "sign in again" in (result.error or "")
        rows = lines(sd)
        assert one(rows, "sign-in") == "sign in again: run periscope login (events are kept meanwhile)"
        assert one(rows, "delivery") == "last error: sign in again: run periscope login"
        assert books(rows)["message"] == {"created": 3, "delivered": 0, "pending": 3, "dead": 0, "dropped": 0}
        assert not receiver.events


def bind_redirect_port():
    """A listener on the sign-in port, or None when something else already has it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", redirect_port()))
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            return None
        raise
    s.listen()
    return s


def test_signed_in_then_expired(sd, tmp_path, monkeypatch):
    with signed_in_backend(tmp_path, monkeypatch) as backend:
        idp = backend.idp
        probe = bind_redirect_port()
        if probe is None:
            pytest.skip(f"port {redirect_port()} is taken by another process: cannot sign in here")
        probe.close()
        backend.login()
        fill_outbox(sd, make_events(2))
        flush_state_dir(sd)
        rows = lines(sd)
        assert one(rows, "sign-in") == "signed in as dev@example.com"
        assert books(rows)["message"]["delivered"] == 2 and "delivery" not in labels(rows)
        # Long inactivity: the refresh token is gone too.
        idp.expire_access_tokens()
        idp.expire_refresh_tokens()
        fill_outbox(sd, make_events(2, prefix="later"))
        flush_state_dir(sd)
        rows = lines(sd)
        assert one(rows, "sign-in") == "sign in again: run periscope login (events are kept meanwhile)"
        assert books(rows)["message"] == {"created": 4, "delivered": 2, "pending": 2, "dead": 0, "dropped": 0}
        # Another repository (nothing delivered there yet) is told too: the sign-in is the user's, not the repo's.
        other = state_dir(init_repo(tmp_path / "other"))
        assert one(lines(other), "sign-in") == "sign in again: run periscope login (events are kept meanwhile)"
        backend.login()
        assert one(lines(other), "sign-in") == "signed in as dev@example.com"


# --- the sign-in port ---------------------------------------------------------------------------------


def test_port_line_only_when_a_client_is_configured(sd, monkeypatch):
    # A port of its own, which no other test signs in on (the worker's sign-in port was found held in
    # CI right after another test's sign-in), and below the kernel's ephemeral range (a port from
    # there can be any outgoing connection's local port at the moment "free" is checked).
    monkeypatch.setenv("PERISCOPE_LOGIN_PORT", str(LOGIN_PORT + 100))
    port_label = f"port {redirect_port()}"
    point_config_at("https://ingest.periscope.example/v1/events")
    assert port_label not in labels(lines(sd))
    point_config_at(
        "https://ingest.periscope.example/v1/events",
        client_id="periscope-cli",
        authority="https://login.periscope.example/tenant",
    )
    blocker = bind_redirect_port()
    if blocker is None:
        pytest.skip(f"port {redirect_port()} is already taken by another process")
    try:
        rows = lines(sd)
        assert (
            one(rows, port_label)
            == f"in use by another process (sign-in needs it: find it with 'lsof -i :{redirect_port()}')"
        )
        assert one(rows, "sign-in") == "not signed in: run periscope login"
    finally:
        blocker.close()
    # Under the full suite's load the closed listener was seen (ss) still LISTENing for a moment
    # after close() (three CI runs in a row; a child forked meanwhile holds a copy of the descriptor
    # until its exec): asked again for up to 5 s, and if it stays taken the failure says who holds it.
    deadline = time.monotonic() + 5
    while one(lines(sd), port_label) != "free for the sign-in redirect" and time.monotonic() < deadline:
        time.sleep(0.1)
    holders = subprocess.run(["ss", "-tanp"], capture_output=True, text=True).stdout
    assert one(lines(sd), port_label) == "free for the sign-in redirect", [
        ln for ln in holders.splitlines() if f":{redirect_port()} " in ln
    ]
