"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright through
executable_path (scripts/install-chromium-for-tests.sh installs it; with CI set these tests fail
when it is missing).  The screenshot is kept in test-artifacts/; with PERISCOPE_UPDATE_SCREENSHOT=1
it also becomes docs/dashboard.png (the README's picture)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from periscope_hooks import dashboard
from testing.dashboard import EVIL_TITLE, Scenario, build_scenario, isolated_env
from testing.util import REPO_ROOT

CHROMIUM = os.environ.get("PERISCOPE_TEST_CHROMIUM") or shutil.which("chromium")
UPDATE_SCREENSHOT = bool(os.environ.get("PERISCOPE_UPDATE_SCREENSHOT"))  # read now: conftest clears PERISCOPE_*
ARTIFACTS = Path(os.environ.get("PERISCOPE_TEST_ARTIFACTS") or REPO_ROOT / "test-artifacts")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the [test] extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or sync_playwright is None) and not os.environ.get("CI"),
    reason="chromium or playwright missing (run scripts/test.sh)",
)


def fmt_cost(v: float) -> str:
    """The page's fmtCost."""
    return "$" + (f"{v:.2f}" if abs(v) >= 1 else f"{v:.4f}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM and os.path.exists(CHROMIUM), "chromium not found: apt-get install -y chromium"
    assert sync_playwright is not None, "playwright not installed: pip install -e '.[test]'"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    base = tmp_path_factory.mktemp("dashboard-browser")
    return build_scenario(base / "repo", isolated_env(base / "home"))


class Visit:
    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.as_uri())
        # A selector wait, not wait_for_function: the page's CSP forbids the eval the latter needs.
        self.page.wait_for_selector("html[data-rendered]", state="attached", timeout=20000)

    def dataset(self) -> dict[str, str]:
        return json.loads(self.page.evaluate("JSON.stringify(document.documentElement.dataset)"))


def test_the_page_draws_every_chart_and_shows_the_reports_figures(browser, scenario, tmp_path):
    out = tmp_path / "dashboard.html"
    scenario.periscope("dashboard", "--no-open", "--out", str(out))
    agg = json.loads(scenario.periscope("dashboard", "--format", "json").stdout)
    visit = Visit(browser, out)
    page = visit.page
    ds = visit.dataset()
    assert ds["rendered"] == "ok" and ds["charts"] == ds["chartsDrawn"] == "9", (ds, visit.errors)
    assert visit.errors == [] and visit.dialogs == []
    assert page.title() == "Periscope: AI cost per commit"  # the hostile session title changed nothing

    rows = page.locator("#commits tbody tr")
    assert rows.count() == len(agg["commits"])
    assert rows.first.locator("td").first.inner_text() == agg["commits"][0]["sha"][:12]
    assert page.locator("#commits-note").is_hidden()
    kpi = page.locator('[data-kpi="total-cost"]')
    assert kpi.locator(".value").inner_text() == fmt_cost(agg["totals"]["cost"])
    assert float(kpi.get_attribute("data-value") or "nan") == agg["totals"]["cost"]
    median = page.locator('[data-kpi="cost-per-commit"] .value').inner_text()
    assert median == fmt_cost(agg["totals"]["cost_per_commit"]["median"])
    assert EVIL_TITLE in page.locator("#sessions tbody").inner_text()  # shown as text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20000
    if UPDATE_SCREENSHOT:
        page.set_viewport_size({"width": 1280, "height": 1560})
        page.screenshot(path=str(REPO_ROOT / "docs" / "dashboard.png"), full_page=False)
    page.close()


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(b"reached")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_page_cannot_reach_the_network(browser, scenario, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "dashboard.html"
        scenario.periscope("dashboard", "--no-open", "--out", str(out))
        visit = Visit(browser, out)
        url = f"http://127.0.0.1:{server.server_address[1]}/leak"
        outcome = visit.page.evaluate(
            """url => new Promise(resolve => {
                 const seen = [];
                 document.addEventListener('securitypolicyviolation', e => seen.push(e.violatedDirective));
                 fetch(url).then(() => resolve('allowed'), e => setTimeout(() => resolve('blocked ' + seen.join(',')), 50));
               })""",
            url,
        )
        assert outcome.startswith("blocked") and "connect-src" in outcome, outcome
        img = visit.page.evaluate(
            """url => new Promise(resolve => { const i = new Image(); i.onload = () => resolve('loaded');
                 i.onerror = () => resolve('blocked'); i.src = url + '.png'; })""",
            url,
        )
        assert img == "blocked"
        # The probe itself works: the same fetch from a page without the CSP reaches the server.
        plain = tmp_path / "plain.html"
        plain.write_text("<!DOCTYPE html><title>plain</title>")
        page = browser.new_page()
        page.goto(plain.as_uri())
        assert page.evaluate("url => fetch(url).then(r => r.text(), e => 'failed ' + e)", url) == "reached"
        page.close()
        assert _Counting.hits == ["/leak"]
        visit.page.close()
    finally:
        server.shutdown()


def test_a_capped_page_says_so(browser, scenario, tmp_path):
    agg = json.loads(scenario.periscope("dashboard", "--format", "json").stdout)
    out = tmp_path / "capped.html"
    out.write_text(dashboard.render_html(agg, max_commits=4), encoding="utf-8")
    visit = Visit(browser, out)
    assert visit.dataset()["rendered"] == "ok"
    assert visit.page.locator("#commits tbody tr").count() == 4
    note = visit.page.locator("#commits-note")
    assert note.is_visible() and f"4 most expensive of {len(agg['commits'])}" in note.inner_text()
    visit.page.close()


def test_long_titles_wrap_the_window_reads_as_typed_and_an_empty_page_says_so(browser, repo, tmp_path):
    # A 200-character title without spaces ran over the cost column; `--until 2026-11-26` read as
    # "...to 2026-11-27T00:00:00.000Z"; a page without usage showed blank charts and no word.
    from testing.util import append_spool, commit, message_record, periscope, session_record

    out = tmp_path / "empty.html"
    periscope("dashboard", "--no-open", "--out", str(out), cwd=repo.path, in_process=False)
    visit = Visit(browser, out)
    note = visit.page.locator("#empty-note")
    assert note.is_visible() and note.inner_text().startswith("No AI usage recorded yet")
    visit.page.close()

    append_spool(
        repo.path,
        session_record("s", "x" * 200),
        message_record(repo.path, session_id="s", cost=0.84, time=1764200000000),
    )
    commit(repo.path, "one")
    out = tmp_path / "window.html"
    periscope(
        "dashboard", "--no-open", "--since", "2025-11-20", "--until", "2025-11-30", "--out", str(out),
        cwd=repo.path, in_process=False, env={"TZ": "UTC"},
    )  # fmt: skip
    visit = Visit(browser, out)
    page = visit.page
    assert visit.errors == [] and page.locator("#empty-note").is_hidden()
    assert "from 2025-11-20 through 2025-11-30" in page.locator("#scope").inner_text()
    title = page.locator("#sessions tbody td.title").first
    assert title.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the title spills out of its cell"
    assert page.locator('[data-kpi="total-cost"] .sub').inner_text() == "1 message"  # was "1 messages"
    page.close()


def test_usage_without_a_reported_cost_is_drawn_at_list_prices_and_mixed_usage_says_so(browser, repo, tmp_path):
    # Claude Code reports no cost: every chart read $0 and the only clue was the list-price card.
    from testing.util import append_spool, commit, message_record, periscope

    append_spool(
        repo.path, message_record(repo.path, cost=None, coding_agent="claude-code", tokens=(1_000_000, 0, 0, 0, 0))
    )
    commit(repo.path, "by claude")
    out = tmp_path / "cc.html"
    periscope("dashboard", "--no-open", "--out", str(out), cwd=repo.path, in_process=False)
    visit = Visit(browser, out)
    page = visit.page
    note = page.locator("#basis-note")
    assert note.is_visible(), visit.errors
    assert note.inner_text().startswith("Every figure here is at the models' list prices: no message reported a cost")
    assert page.locator('[data-kpi="total-cost"] .label').inner_text() == "Total AI cost at list prices"
    assert page.locator('[data-kpi="total-cost"] .value').inner_text() == "$3.00"
    assert page.locator('[data-kpi="list-cost"]').count() == 0  # the same figure twice
    assert (
        "list price" in page.locator("#commits thead").inner_text()
        and page.locator("#commits tbody td").filter(has_text="$3.00").count() == 1
    )
    top = json.loads(page.evaluate("JSON.stringify(Chart.getChart('chart-top-commits').data.datasets[0].data)"))
    assert top == [3.0]
    page.close()

    append_spool(repo.path, message_record(repo.path, cost=0.5, tokens=(1000, 0, 0, 0, 0)))  # OpenCode's own cost
    commit(repo.path, "by opencode", filename="o.txt")
    periscope("dashboard", "--no-open", "--out", str(out), cwd=repo.path, in_process=False)
    visit = Visit(browser, out)
    note = visit.page.locator("#basis-note")
    assert note.inner_text().startswith("1 of 2 messages report no cost") and "comes to $3.00" in note.inner_text()
    assert "--basis list" in note.inner_text()
    assert visit.page.locator('[data-kpi="total-cost"] .value').inner_text() == "$0.5000"
    visit.page.close()


def test_every_day_has_its_place_and_many_models_are_summed_past_twelve(browser, repo, tmp_path):
    # Days without usage were left out of the day chart (a quiet week looked like one day), and 15
    # models made 15 bars and a legend that covered the chart.
    from testing.util import append_spool, commit, message_record, periscope

    day = 86_400_000
    start = 1764590400000  # 2025-12-01T12:00Z
    append_spool(
        repo.path,
        *[
            message_record(
                repo.path, model=f"model-{i:02d}", cost=0.01 * (i + 1), time=start + (4 * day if i == 14 else 0)
            )
            for i in range(15)
        ],
    )
    commit(repo.path, "many")
    out = tmp_path / "days.html"
    periscope("dashboard", "--no-open", "--out", str(out), cwd=repo.path, in_process=False, env={"TZ": "UTC"})
    visit = Visit(browser, out)
    page = visit.page
    assert visit.errors == []
    labels = json.loads(page.evaluate("JSON.stringify(Chart.getChart('chart-days').data.labels)"))
    assert labels == ["2025-12-01", "2025-12-02", "2025-12-03", "2025-12-04", "2025-12-05"]
    running = json.loads(
        page.evaluate("JSON.stringify(Chart.getChart('chart-days').data.datasets.find(d => d.type === 'line').data)")
    )
    assert running[1:4] == [running[0]] * 3 and running[4] > running[0]  # flat through the quiet days
    models = json.loads(page.evaluate("JSON.stringify(Chart.getChart('chart-models-cost').data.labels)"))
    assert len(models) == 13 and models[-1] == "(3 other models)"
    assert page.locator("#chart-days").get_attribute("role") == "img"
    page.close()
