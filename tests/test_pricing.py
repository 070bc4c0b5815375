"""List prices from the genai-prices table (the real, bundled snapshot), and each cost's source.

Expected figures are the providers' published prices per million tokens, worked out by hand.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import warnings
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from periscope_hooks import pricing
from testing.util import append_spool, commit, message_record, periscope, state_dir

genai_prices = pytest.importorskip("genai_prices")

JUNE_2025 = 1751328000000  # 2025-07-01: after OpenAI's o3 price cut of 2025-06-10
JAN_2025 = 1735689600000  # 2025-01-01: before it
NOW = 1764000000000


@pytest.fixture(scope="module")
def table() -> pricing.PriceTable:
    t = pricing.load_table()
    assert isinstance(t, pricing.PriceTable)
    return t


# (provider, model, (input, output, reasoning, cache_read, cache_write), time, reported) -> (micro-dollars, source)
CASES = [
    pytest.param(
        "anthropic", "claude-sonnet-4", (1000, 500, 200, 2000, 400), NOW, 0.02,
        # $3 in, $15 out (reasoning too), $0.30 cache read, $3.75 cache write
        (1000 * 3 + 700 * 15 + 2000 * 0.3 + 400 * 3.75, "reported"),
        id="cache-writes-and-reasoning",
    ),
    pytest.param(
        "anthropic", "claude-sonnet-4-5", (100_000, 1000, 0, 50_000, 0), NOW, 1.0,
        (100_000 * 3 + 1000 * 15 + 50_000 * 0.3, "reported"),
        id="below-the-200k-tier",
    ),
    pytest.param(
        "anthropic", "claude-sonnet-4-5", (200_000, 1000, 0, 50_000, 0), NOW, 1.0,
        # 250k input tokens counting the cached ones: every token pays the long-context price
        (200_000 * 6 + 1000 * 22.5 + 50_000 * 0.6, "reported"),
        id="above-the-200k-tier-counts-cached-input",
    ),
    pytest.param(
        "openai", "o3", (1000, 100, 900, 0, 0), JUNE_2025, 0.01,
        (1000 * 2 + 1000 * 8, "reported"),
        id="reasoning-at-the-output-price",
    ),
    pytest.param(
        "openai", "o3", (1000, 100, 900, 0, 0), JAN_2025, 0.05,
        (1000 * 10 + 1000 * 40, "reported"),
        id="the-price-in-force-when-sent",
    ),
    pytest.param(
        "openai", "gpt-4o-mini", (0, 0, 0, 0, 1000), NOW, 0.001,
        (1000 * 0.15, "reported"),
        id="cache-write-without-a-price-of-its-own-is-input",
    ),
    pytest.param("xai", "grok-4", (1000, 1000, 0, 1000, 0), NOW, 0.02, (3000 + 15000 + 750, "reported"), id="alias-xai"),
    pytest.param(
        "amazon-bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", (1000, 1000, 0, 0, 0), NOW, 0.02,
        (3000 + 15000, "reported"),
        id="alias-bedrock",
    ),
    pytest.param(
        "github-copilot", "claude-sonnet-4", (1000, 500, 200, 2000, 400), NOW, 0.0,
        (15600, "subscription"),
        id="copilot-reports-0-maker-price",
    ),
    pytest.param(
        "opencode", "gpt-4o-mini", (1000, 1000, 0, 1000, 0), NOW, 0,
        (150 + 600 + 75, "subscription"),
        id="opencode-free-tier-maker-price",
    ),
    # A plan whose provider is the model's maker: its own price ("unknown", or another company's
    # through the model name: zhipuai's for GLM, before stop 26).
    pytest.param(
        "zai-coding-plan", "glm-4.6", (1000, 1000, 0, 0, 0), NOW, 0.0, (600 + 2200, "subscription"),
        id="zai-coding-plan-the-makers-own-price",
    ),
    pytest.param(
        "openai", "codex-mini-latest", (1000, 1000, 0, 0, 0), NOW, 0.0, (1500 + 6000, "subscription"),
        id="chatgpt-plan-the-makers-own-price",
    ),
    pytest.param(
        "anthropic", "claude-sonnet-4", (1000, 0, 0, 0, 0), NOW, None, (3000, "estimated"), id="no-reported-cost"
    ),
    pytest.param(
        "some-proxy", "anthropic/claude-sonnet-4", (1000, 0, 0, 0, 0), NOW, None, (3000, "estimated"),
        id="unknown-provider-maker-from-the-model-name",
    ),
    pytest.param("anthropic", "claude-sonnet-4", (0, 0, 0, 0, 0), NOW, 0.0, (0, "reported"), id="nothing-used"),
    pytest.param(
        "anthropic", "claude-imaginary-9", (1000, 1, 0, 0, 0), NOW, 0.5, (None, "reported"), id="missing-model-reported"
    ),
    pytest.param(
        "anthropic", "claude-imaginary-9", (1000, 1, 0, 0, 0), NOW, None, (None, "unknown"), id="missing-model-estimate"
    ),
    pytest.param(
        "local", "my-finetune", (1000, 1, 0, 0, 0), NOW, 0.0, (None, "unknown"), id="missing-model-reported-0"
    ),
    # A local model named like an API's (a distill): the table's prefix match gave it DeepSeek's price.
    pytest.param(
        "ollama", "deepseek-r1:7b", (1000, 1000, 0, 0, 0), NOW, 0.0, (None, "unknown"), id="local-model-no-list-price"
    ),
    pytest.param(
        "lmstudio", "claude-sonnet-4-5-custom", (1000, 1000, 0, 0, 0), NOW, 0.0, (None, "unknown"), id="local-lmstudio"
    ),
    pytest.param(None, None, (1000, 1, 0, 0, 0), NOW, None, (None, "unknown"), id="no-model"),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "model", "tokens", "time_ms", "reported", "expected"), CASES)
def test_list_price_and_source(table, provider, model, tokens, time_ms, reported, expected):
    priced = table.price(provider, model, tokens, time_ms, reported)
    micro, source = expected
    assert (priced.list_cost_micro, priced.source) == (None if micro is None else round(micro), source)
    assert priced.snapshot == (None if micro is None else table.identity)
    assert table.identity.startswith(f"genai-prices {genai_prices.__version__} ")


def test_alias_prices_like_the_canonical_provider(table):
    tokens = (12_345, 678, 90, 1_000, 0)
    for alias, canonical, model in [
        ("fireworks-ai", "fireworks", "accounts/fireworks/models/deepseek-v3p2"),
        ("xai", "x-ai", "grok-4"),
    ]:
        a = table.price(alias, model, tokens, NOW, 1.0)
        assert (
            a.list_cost_micro is not None
            and a.list_cost_micro == table.price(canonical, model, tokens, NOW, 1.0).list_cost_micro
        )


def test_same_as_the_library_for_every_model_in_the_snapshot(table):
    """The fast path (integer unit prices cached per model) equals genai-prices' own calc_price,
    rounded to micro-dollars, for every model of every provider, including tiers and price periods,
    web searches, and fast mode (the table's price variants) where the model has it."""
    rng = random.Random(13)
    checked = hour_priced = searches_priced = fast_priced = 0
    for provider in table.snapshot.providers:
        for model in provider.models:
            if table._find(provider.id, model.id, False) is not model:
                continue  # an id another model of the provider matches first
            inp, out, reasoning, cread, cwrite = (rng.randint(0, 260_000), rng.randint(0, 5000), rng.randint(0, 3000),
                                                   rng.randint(0, 60_000), rng.randint(0, 9000))  # fmt: skip
            hour = rng.choice((0, rng.randint(0, cwrite), cwrite))  # the part of the writes kept for an hour
            searches = rng.choice((0, rng.randint(1, 40)))
            usage = genai_prices.Usage(
                input_tokens=inp + cread + cwrite,
                output_tokens=out + reasoning,
                output_reasoning_tokens=reasoning,
                cache_read_tokens=cread,
                cache_write_tokens=cwrite,
                cache_write_1h_tokens=hour or None,
            )
            usage.web_searches = searches or None
            for speed, when_ms in ((None, NOW), ("fast", NOW), ("fast", JAN_2025)):
                when = datetime.fromtimestamp(when_ms / 1000, tz=timezone.utc)
                context = {"speed": speed} if speed else None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        lib = model.get_prices(when, context).calc_price(usage)["total_price"]
                    except ValueError:
                        continue  # the library refuses this usage for this model (e.g. audio-only prices)
                tokens = (inp, out, reasoning, cread, cwrite)
                ours = table.price(provider.id, model.id, tokens, when_ms, 1.0, hour, searches, speed).list_cost_micro
                assert ours == int((lib * 1_000_000).to_integral_value(ROUND_HALF_EVEN)), (provider.id, model.id, speed)
                checked += 1
                prices = model.get_prices(when, context)
                hour_priced += bool(hour and getattr(prices, "cache_write_1h_mtok", None))
                searches_priced += bool(searches and getattr(prices, "web_searches_kcount", None))
                fast_priced += bool(speed and prices.output_mtok != model.get_prices(when).output_mtok)
    assert checked > 4500
    assert hour_priced > 20  # models pricing 1-hour writes apart (Anthropic's, on each cloud), with some
    assert searches_priced > 20 and fast_priced >= 4


def test_micro_dollar_rounding_is_half_even_and_exact():
    assert pricing.micro_from_pico(1_500_000) == 2 and pricing.micro_from_pico(2_500_000) == 2
    assert pricing.micro_from_pico(2_500_001) == 3 and pricing.micro_from_pico(0) == 0
    assert pricing.dollars_to_micro(0.0123) == 12300 and pricing.dollars_to_micro(1e-7) == 0
    assert pricing.micro_from_pico(pricing._pico(Decimal("0.18000000000000002"), 1_000_000) * 3) == 1


def test_without_the_library_every_list_price_is_unknown():
    none = pricing.NoTable()
    assert none.price("anthropic", "claude-sonnet-4", (1, 1, 0, 0, 0), NOW, 0.1) == pricing.Priced(
        None, "reported", None
    )
    assert none.price("anthropic", "claude-sonnet-4", (1, 1, 0, 0, 0), NOW, None).source == "unknown"
    assert none.price("github-copilot", "gpt-5", (1, 1, 0, 0, 0), NOW, 0.0).source == "unknown"


def test_ingest_stores_prices_and_events_carry_them(repo):
    """Through the real flusher path: a reported, a subscription and an unreported (Claude Code-like)
    message, then a commit; state.db and the events carry the list prices and sources."""
    reported = message_record(repo.path, id="m_rep", tokens=(1000, 500, 200, 2000, 400), cost=0.0156)
    copilot = message_record(repo.path, id="m_sub", provider="github-copilot", tokens=(1000, 0, 0, 0, 0), cost=0)
    claude_code = message_record(repo.path, id="m_est", tokens=(0, 1000, 0, 0, 0))
    del claude_code["cost"]
    missing = message_record(repo.path, id="m_unk", model="claude-imaginary-9", cost=None)
    append_spool(repo.path, reported, copilot, claude_code, missing)
    sha = commit(repo.path, "priced")
    repo.flush()
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        rows = dict(
            (r[0], r[1:])
            for r in db.execute("SELECT id, list_cost_micro, cost_source, cost_reported, cost FROM messages")
        )
    assert rows == {
        "m_rep": (15600, "reported", 1, 0.0156),
        "m_sub": (3000, "subscription", 1, 0.0),
        "m_est": (15000, "estimated", 0, 0.0),
        "m_unk": (None, "unknown", 0, 0.0),
    }
    msgs = {e["message_id"]: e for e in repo.events("message")}
    assert msgs["m_est"]["cost"] == 0.0 and msgs["m_est"]["list_cost"] == 0.015
    assert msgs["m_est"]["cost_source"] == "estimated" and msgs["m_est"]["price_snapshot"].startswith("genai-prices")
    assert msgs["m_unk"]["list_cost"] is None and msgs["m_unk"]["price_snapshot"] is None
    (event,) = [e for e in repo.commit_events() if e["commit"]["sha"] == sha]
    assert event["usage"]["list_cost"] == 0.0336
    assert event["usage"]["cost_sources"] == {"reported": 1, "estimated": 1, "subscription": 1, "unknown": 1}
    out = periscope("prices", cwd=repo.path).stdout
    assert "claude-imaginary-9" in out and f"genai-prices {genai_prices.__version__}" in out
    # A name as recorded never drives the terminal (it was printed raw here, escaped in reports).
    append_spool(repo.path, message_record(repo.path, id="m_esc", model="m\x1b]0;PWNED\x07\x1b[2J\rX\nY"))
    out = periscope("prices", cwd=repo.path).stdout
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out, out
    assert "m\\x1b]0;PWNED\\x07\\x1b[2J\\rX\\nY  (1 message(s))" in out, out


# --- the flusher's path: resolved prices kept in state.db, the library imported only when needed ----


@pytest.mark.parametrize(("provider", "model", "tokens", "time_ms", "reported", "expected"), CASES)
def test_the_ingest_pricer_gives_the_same_from_its_cache(
    table, state_conn, provider, model, tokens, time_ms, reported, expected
):
    first = pricing.Pricer(state_conn).price(provider, model, tokens, time_ms, reported)
    assert first == table.price(provider, model, tokens, time_ms, reported)
    again = pricing.Pricer(state_conn)  # a later flusher run: the cache answers, no table loaded
    assert again.price(provider, model, tokens, time_ms, reported) == first
    assert again._table is None or model is None


def test_a_flush_of_known_models_does_not_import_the_library(repo):
    import subprocess
    import sys

    append_spool(repo.path, message_record(repo.path), message_record(repo.path, model="o3", provider="openai"))
    repo.flush()  # the first run meets both models: imports genai-prices, caches their prices
    append_spool(repo.path, message_record(repo.path), message_record(repo.path, model="o3", provider="openai"))
    probe = (
        "import sys; from pathlib import Path; from periscope_hooks.ingest import process_spool;"
        f"r = process_spool(Path({str(state_dir(repo.path))!r})); assert r.messages == 2, r;"
        "print('genai_prices' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        sources = db.execute("SELECT cost_source, count(list_cost_micro) FROM messages GROUP BY 1").fetchall()
    assert sources == [("reported", 4)]


def test_a_first_ingest_in_a_new_clone_prices_models_other_repositories_met_without_the_library(repo, tmp_path):
    """The prices resolved in one repository are shared (beside the fetched table, keyed by the
    table's identity): a new repository's first ingest of the same models imports nothing, and its
    list costs are the library's.  A damaged or another table's shared file is not trusted."""
    import subprocess
    import sys

    from testing.util import commit, init_repo

    known = [("anthropic", "claude-sonnet-4"), ("openai", "o3")]
    append_spool(repo.path, *(message_record(repo.path, provider=p, model=m) for p, m in known))
    repo.flush()  # imports genai-prices once, shares what it resolved
    other = init_repo(tmp_path / "other")
    commit(other, "c1")
    shared = pricing.prices_dir() / pricing.SHARED_PERIODS_NAME

    def first_ingest(records: list[dict]) -> tuple[str, list]:
        sd = state_dir(other)
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (sd / name).unlink(missing_ok=True)
        (sd / "spool.jsonl").unlink(missing_ok=True)
        append_spool(other, *records)
        probe = (
            "import sys; from pathlib import Path; from periscope_hooks.ingest import process_spool;"
            f"r = process_spool(Path({str(sd)!r})); assert r.messages == {len(records)}, r;"
            "print('genai_prices' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        with sqlite3.connect(sd / "state.db") as db:
            costs = db.execute("SELECT model, list_cost_micro FROM messages ORDER BY model").fetchall()
        return out.strip(), costs

    records = [message_record(other, provider=p, model=m) for p, m in known]
    imported, costs = first_ingest(records)
    assert imported == "False"
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        assert costs == db.execute("SELECT model, list_cost_micro FROM messages ORDER BY model").fetchall()
    assert all(micro for _, micro in costs)

    text = shared.read_text()
    shared.write_text(text.replace("[[", "[{", 1))  # a damaged entry: the table decides again
    assert first_ingest(records) == ("True", costs)
    assert json.loads(shared.read_text()) == json.loads(text)  # and the entry is written again
    data = json.loads(text)
    shared.write_text(json.dumps({**data, "identity": "genai-prices 0.0.1 bundled"}))  # another table's
    assert first_ingest(records) == ("True", costs)


# --- periscope prices --update -----------------------------------------------------------------------
FRESH_TABLE = [
    {
        "id": "anthropic",
        "name": "Anthropic",
        "api_pattern": "https://api\\.anthropic\\.com",
        "model_match": {"contains": "claude"},
        "models": [
            {
                "id": "claude-sonnet-4",
                "match": {"starts_with": "claude-sonnet-4"},
                "prices": {"input_mtok": 1, "output_mtok": 2},
            }
        ],
    }
]


def _serve(body: bytes, status: int = 200, headers: dict[str, str] | None = None):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_update_offline_fails_in_one_line_and_keeps_the_table(repo, monkeypatch):
    # A port nothing listens on: refused at once, like a machine without network.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = periscope(
        "prices",
        "--update",
        cwd=repo.path,
        check=False,
        env={"PERISCOPE_PRICES_URL": f"http://127.0.0.1:{port}/data.json"},
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1
    assert (
        proc.stderr.startswith("error: could not fetch prices from 127.0.0.1: ConnectError") and "hint:" in proc.stderr
    )
    assert "bundled" in periscope("prices", cwd=repo.path).stdout


def test_update_refuses_bad_addresses_and_never_echoes_credentials(repo):
    """An HTTP error's text (httpx's) held the whole URL, password included, and a second line; a
    URL httpx cannot read ended in the catch-all's `prices failed: InvalidURL`."""
    httpd = _serve(b"gone", status=404)
    port = httpd.server_address[1]
    try:
        cases = {
            f"http://127.0.0.1:{port}/data.json": "could not fetch prices from 127.0.0.1: HTTP 404",
            # The hint spoke of sign-in, which has nothing to do with prices (a docs sweep).
            f"http://user:hunter2@127.0.0.1:{port}/": "contains credentials (user:password@) hint: remove them"
            " from the price table's URL: the price table is public",
            "http://prices.example/data.json": "uses http:// for a non-loopback host",
            "ftp://prices.example/data.json": "is not an http(s) URL",
            "http://[::1": "is not an http(s) URL",
            "https://prices.example/\ndata.json": "is not an http(s) URL: https://prices.example/\\ndata.json",
        }
        for url, said in cases.items():
            proc = periscope("prices", "--update", cwd=repo.path, check=False, env={"PERISCOPE_PRICES_URL": url})
            assert proc.returncode == 1 and proc.stdout == "", url
            assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
            assert said in proc.stderr and "hint: " in proc.stderr and "hunter2" not in proc.stderr, proc.stderr
    finally:
        httpd.shutdown()
    assert "bundled" in periscope("prices", cwd=repo.path).stdout


def test_update_follows_no_redirect_to_plain_http_elsewhere(repo):
    """A loopback URL (allowed over http) answering 302 to http://elsewhere was followed in the
    clear; every hop is now checked like the URL itself."""
    httpd = _serve(b"", status=302, headers={"Location": "http://prices.example/data.json"})
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/data.json"
        proc = periscope("prices", "--update", cwd=repo.path, check=False, env={"PERISCOPE_PRICES_URL": url})
    finally:
        httpd.shutdown()
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "redirect of the price table's URL" in proc.stderr and "non-loopback host (prices.example)" in proc.stderr


def test_update_fetches_checks_and_prices_new_messages_with_it(repo):
    import json as _json

    append_spool(repo.path, message_record(repo.path, id="before", tokens=(1000, 1000, 0, 0, 0)))
    repo.flush()
    httpd = _serve(b"not a price table")
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/data.json"
        bad = periscope("prices", "--update", cwd=repo.path, check=False, env={"PERISCOPE_PRICES_URL": url})
        assert bad.returncode == 1 and "did not return a price table" in bad.stderr
    finally:
        httpd.shutdown()
    httpd = _serve(_json.dumps(FRESH_TABLE).encode())
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/data.json"
        ok = periscope("prices", "--update", cwd=repo.path, env={"PERISCOPE_PRICES_URL": url})
    finally:
        httpd.shutdown()
    assert ok.stdout.startswith("prices updated: genai-prices ") and " fetched " in ok.stdout
    out = periscope("prices", cwd=repo.path).stdout
    assert " fetched " in out.splitlines()[0] and "day(s) ago" in out
    assert "1 message(s) were priced with an earlier table" in out
    append_spool(repo.path, message_record(repo.path, id="after", tokens=(1000, 1000, 0, 0, 0)))
    repo.flush()
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        rows = dict(db.execute("SELECT id, list_cost_micro FROM messages"))
        snaps = dict(db.execute("SELECT id, price_snapshot FROM messages"))
    assert rows == {"before": 18000, "after": 3000}  # $3/$15 bundled; $1/$2 fetched; the first kept
    assert "bundled" in snaps["before"] and "fetched" in snaps["after"]


def test_messages_stored_before_list_prices_are_priced_once_and_events_match_a_rebuild(repo):
    """A state.db from before list prices (migration m010) kept its messages without a cost source
    or list price: reports said `unknown`, and a commit event made after the upgrade summed them
    so, while a rebuild from the spool prices them: the same event id, another body.  They are
    priced once, before anything is ingested, and the rollups summed again."""
    append_spool(repo.path, *(message_record(repo.path, cost=0.002) for _ in range(2)))
    repo.flush()
    # What the old version left: the pricing columns empty, no mark that they were filled.
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        db.execute("UPDATE messages SET list_cost_micro = NULL, cost_source = NULL, price_snapshot = NULL")
        db.execute("DELETE FROM meta WHERE key = 'old_messages_priced'")
    append_spool(repo.path, message_record(repo.path, cost=0.002))
    sha = commit(repo.path, "after the upgrade")
    upgraded = [e for e in repo.events("commit") if e["commit"]["sha"] == sha]
    report = repo.report("commit")
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        assert db.execute("SELECT count(*) FROM messages WHERE cost_source IS NULL").fetchone()[0] == 0
    assert "priced 2 message(s) stored before list prices" in (state_dir(repo.path) / "hook.log").read_text()
    assert report[0]["cost_sources"] == {"reported": 3, "estimated": 0, "subscription": 0, "unknown": 0}
    # Rebuilt from the spool, into a new local store: the same figures and the same commit event.
    store = Path(os.environ["XDG_DATA_HOME"]) / "periscope"
    for path in [
        *(state_dir(repo.path) / n for n in ("state.db", "state.db-wal", "state.db-shm")),
        *store.glob("events.db*"),
    ]:
        path.unlink(missing_ok=True)
    repo.flush()
    assert repo.report("commit") == report
    assert [e for e in repo.events("commit") if e["commit"]["sha"] == sha] == upgraded


def test_the_shared_prices_read_are_those_of_the_identity_in_use(state_conn, tmp_path):
    """The shared periods were read once a run: had the identity changed (a fetched table found
    unreadable, the bundled one used instead), another table's periods would have answered."""
    from periscope_hooks.pricing import SHARED_PERIODS_NAME, _shared_key, lookup_code, prices_dir

    pricer = pricing.Pricer(state_conn)
    folder = prices_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = _shared_key("anthropic", "claude-sonnet-4", lookup_code(False))
    (folder / SHARED_PERIODS_NAME).write_text(json.dumps({"identity": "table A", "periods": {key: "[[null, null]]"}}))
    assert key in pricer._shared_periods("table A")
    assert pricer._shared_periods("table B") == {}  # not table A's


def test_an_old_message_that_cannot_be_priced_does_not_stop_ingest(repo):
    """Pricing the messages stored before list prices runs before every ingest until it is done:
    one row it cannot price is left as it is and logged, and the spool is ingested."""
    append_spool(repo.path, message_record(repo.path, id="odd"), message_record(repo.path, id="fine"))
    repo.flush()
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        db.execute("UPDATE messages SET list_cost_micro = NULL, cost_source = NULL, price_snapshot = NULL")
        db.execute("UPDATE messages SET input = 'not a number' WHERE id = 'odd'")  # SQLite keeps text
        db.execute("DELETE FROM meta WHERE key = 'old_messages_priced'")
    append_spool(repo.path, message_record(repo.path, id="new"))
    repo.flush()
    with sqlite3.connect(state_dir(repo.path) / "state.db") as db:
        sources = dict(db.execute("SELECT id, cost_source FROM messages").fetchall())
    assert sources == {"odd": None, "fine": "reported", "new": "reported"}
    assert "could not price an old message" in (state_dir(repo.path) / "hook.log").read_text()


@pytest.mark.parametrize("field", ["cache_write_1h", "web_search"])
def test_prices_kept_before_one_hour_writes_are_looked_up_again(table, state_conn, field):
    """state.db's price cache and the shared periods file keep a model's resolved prices; those an
    older version kept have no rate for one-hour cache writes (or web searches).  Read as they are,
    every such write (search) would stay at the five-minute rate (free) until the table changed:
    they are looked up again instead."""
    from periscope_hooks import statedb
    from periscope_hooks.pricing import SHARED_PERIODS_NAME, _shared_key, lookup_code, prices_dir

    tokens, hour, searches = (100, 20, 0, 300, 40_000), 30_000, 7
    want = table.price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, hour, searches)
    assert want.list_cost_micro > table.price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, hour).list_cost_micro
    assert want.list_cost_micro > table.price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, 0, 7).list_cost_micro
    first = pricing.Pricer(state_conn)
    assert first.price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, hour, searches) == want
    (cached,) = state_conn.execute("SELECT periods FROM price_cache WHERE model = 'claude-sonnet-4-5'").fetchone()

    def as_kept_before(text: str) -> str:
        periods = json.loads(text)
        for _, rates in periods:
            if rates is not None:
                del rates[field]
        return json.dumps(periods)

    identity, code = first.identity, lookup_code(False)
    statedb.cache_price_periods(state_conn, identity, "anthropic", "claude-sonnet-4-5", code, as_kept_before(cached))
    assert pricing.Pricer(state_conn).price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, hour, searches) == want
    # The shared file's entry, kept before, with state.db's entry gone: the same.
    state_conn.execute("DELETE FROM price_cache")
    shared = prices_dir() / SHARED_PERIODS_NAME
    data = json.loads(shared.read_text())
    key = _shared_key("anthropic", "claude-sonnet-4-5", lookup_code(False))
    data["periods"][key] = as_kept_before(data["periods"][key])
    shared.write_text(json.dumps(data))
    assert pricing.Pricer(state_conn).price("anthropic", "claude-sonnet-4-5", tokens, NOW, None, hour, searches) == want
    assert f'"{field}"' in json.loads(shared.read_text())["periods"][key]  # and written again


@pytest.mark.parametrize("when", [JAN_2025, NOW])
def test_the_ingest_pricer_prices_fast_mode_and_web_searches_from_its_cache(table, state_conn, when):
    """Fast mode's prices are cached apart from the model's standard ones (another lookup code): a
    flusher that met the model at one speed must not price the other speed from it."""
    tokens = (1000, 2000, 500, 3000, 4000)
    fast = table.price("anthropic", "claude-opus-5", tokens, when, None, 1000, 2, "fast")
    standard = table.price("anthropic", "claude-opus-5", tokens, when, None, 1000, 2)
    assert fast.list_cost_micro > standard.list_cost_micro > 0
    for _ in range(2):  # the second flusher run answers from state.db's cache, the library not loaded
        pricer = pricing.Pricer(state_conn)
        assert pricer.price("anthropic", "claude-opus-5", tokens, when, None, 1000, 2, "fast") == fast
        assert pricer.price("anthropic", "claude-opus-5", tokens, when, None, 1000, 2, "standard") == standard
        assert pricer.price("anthropic", "claude-opus-5", tokens, when, None, 1000, 2) == standard
    assert pricer._table is None
    codes = {r[0] for r in state_conn.execute("SELECT maker_only FROM price_cache WHERE model = 'claude-opus-5'")}
    assert codes == {pricing.lookup_code(False), pricing.lookup_code(False, "fast")}
