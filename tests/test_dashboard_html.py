"""The dashboard page as a file: parsed, its CSP checked against its inline scripts, nothing external,
nothing secret, the vendored Chart.js exactly the pinned one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from periscope_hooks import dashboard
from testing.dashboard import EVIL_TITLE, Scenario, build_scenario, isolated_env

# sha256 of package/dist/chart.umd.min.js in chart.js-4.6.1.tgz (npm integrity
# sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g==).
CHARTJS_SHA256 = "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
SCHEME = re.compile(r"^\s*[a-zA-Z][a-zA-Z0-9+.-]*:")


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._open: tuple[str, dict[str, str | None]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open, self._text = (tag, dict(attrs)), []

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            text = "".join(self._text)
            if tag == "script":
                self.scripts.append((self._open[1], text))
            else:
                self.styles.append(text)
            self._open = None


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    base = tmp_path_factory.mktemp("dashboard-html")
    s = build_scenario(base / "repo", isolated_env(base / "home"))
    # Secrets a careless page could pick up: a sign-in token cache, an endpoint, a client id.
    config = Path(s.env["XDG_CONFIG_HOME"])
    (config / "periscope").mkdir(parents=True, exist_ok=True)
    (config / "periscope" / "token_cache.json").write_text('{"AccessToken": {"x": {"secret": "TOKEN-SECRET-123"}}}')
    (config / "opencode").mkdir(parents=True, exist_ok=True)
    (config / "opencode" / "analytics.json").write_text(
        json.dumps({"endpoint": "https://ingest.example.invalid/v1", "client_id": "CLIENT-ID-456"})
    )
    return s


@pytest.fixture(scope="module")
def html(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("page") / "dashboard.html"
    scenario.periscope("dashboard", "--no-open", "--out", str(out))
    return out.read_text(encoding="utf-8")


def test_vendored_chartjs_is_the_pinned_file_with_its_licence():
    data = (dashboard.RESOURCES / dashboard.CHARTJS_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CHARTJS_SHA256 == dashboard.CHARTJS_SHA256
    assert data.startswith(b"/*!\n * Chart.js v4.6.1\n")
    assert "MIT License" in (dashboard.RESOURCES / "chart.js-LICENSE.md").read_text()


def test_csp_allows_exactly_the_inline_scripts_and_style(html):
    page = Page()
    page.feed(html)
    metas = [
        a for t, a in page.elements if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    assert len(metas) == 1
    directives = {d.split()[0]: d.split()[1:] for d in (metas[0]["content"] or "").split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "connect-src" not in directives  # falls back to default-src 'none': no fetch, XHR or WebSocket
    executable = [text for attrs, text in page.scripts if attrs.get("type") != "application/json"]
    assert len(executable) == 2 and all("src" not in attrs for attrs, _ in page.scripts)
    assert sorted(directives["script-src"]) == sorted(f"'sha256-{_sha256_b64(t)}'" for t in executable)
    assert directives["style-src"] == [f"'sha256-{_sha256_b64(page.styles[0])}'"] and len(page.styles) == 1
    assert "'unsafe-inline'" not in html and "'unsafe-eval'" not in html
    # The CSP meta comes before anything it governs.
    assert html.index("Content-Security-Policy") < html.index("<style>") < html.index("<script")


def test_nothing_points_outside_the_file(html):
    page = Page()
    page.feed(html)
    for tag, attrs in page.elements:
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            value = attrs.get(name)
            assert value is None or not SCHEME.match(value), (tag, name, value)
    assert not [t for t, _ in page.elements if t in ("link", "iframe", "img", "object", "embed", "base", "form")]


def test_data_is_inert_and_round_trips(html, scenario):
    page = Page()
    page.feed(html)
    blocks = [text for attrs, text in page.scripts if attrs.get("type") == "application/json"]
    assert len(blocks) == 1 and "<" not in blocks[0] and ">" not in blocks[0]
    data = json.loads(blocks[0])
    assert EVIL_TITLE in [s["title"] for s in data["sessions"]]  # intact as data...
    assert "</script><script>document.title" not in html  # ...and never markup
    agg = json.loads(scenario.periscope("dashboard", "--format", "json").stdout)
    for key in ("totals", "models", "days", "day_model", "by_origin", "subagents", "branches"):
        assert data[key] == agg[key], key
    assert [c["sha"] for c in data["commits"]] == [c["sha"] for c in agg["commits"]]


def test_no_secret_config_or_endpoint_in_the_page(html, scenario):
    for secret in ("TOKEN-SECRET-123", "CLIENT-ID-456", "ingest.example.invalid", "secret-token", "example.com"):
        assert secret not in html
    titles_off = scenario.periscope(
        "dashboard", "--no-open", "--no-titles", "--out", str(scenario.path.parent / "n.html")
    )
    assert titles_off.returncode == 0
    assert "Fix the login flow" not in (scenario.path.parent / "n.html").read_text()


def test_embed_json_escapes_what_could_end_a_script():
    text = dashboard.embed_json({"t": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"t": "</script><!-- & -->"}


def test_page_caps_commit_rows_and_says_so(scenario):
    agg = json.loads(scenario.periscope("dashboard", "--format", "json").stdout)
    data = dashboard.page_data(agg, max_commits=3)
    assert data["commits_capped"] is True and data["commits"] == agg["commits"][:3]
    assert dashboard.page_data(agg)["commits_capped"] is False
