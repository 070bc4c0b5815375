// periscope dashboard: draws the aggregate embedded in #periscope-data with the vendored Chart.js.
// Data is only ever placed with textContent (never innerHTML), so a session title holding markup
// (a closing script tag, an img with onerror) stays text.  When done, <html> carries
// data-rendered="ok" and data-charts-drawn="N" (the headless browser test reads them).
(function () {
  "use strict";
  var root = document.documentElement;
  try {
    var data = JSON.parse(document.getElementById("periscope-data").textContent);
    var PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#0a8a8a", "#e16f24", "#6e7781",
      "#d63384", "#4d2d00", "#57ab5a", "#116329"];
    var TOKEN_KINDS = ["input", "output", "reasoning", "cache_read", "cache_write"];
    // Every money figure is at list prices (`dashboard --basis list`, or auto when nothing reported a cost).
    var LIST = data.basis === "list";
    var COST = LIST ? "list price" : "cost";
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.size = 11;

    function fmtCost(v) {
      if (v === null || v === undefined) return "–";
      return "$" + (Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4));
    }
    function fmtAxis(v) { return "$" + Number(Number(v).toPrecision(3)); }
    function fmtInt(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"); }
    function fmtPct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"; }
    function el(tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined && text !== null) e.textContent = String(text);
      return e;
    }
    function plural(n, word) { return fmtInt(n) + " " + word + (n === 1 ? "" : "s"); }
    function modelName(r) { return (r.provider ? r.provider + "/" : "") + (r.model || "(unknown)"); }
    function sumTokens(t) { return TOKEN_KINDS.reduce(function (a, k) { return a + (t[k] || 0); }, 0); }

    // --- scope line and KPIs --------------------------------------------------------------------
    var f = data.filter, t = data.totals;
    var scope = (f.repos.length === 1 ? f.repos[0] : f.repos.length + " repositories");
    // The window in local time, as the user typed it: `until` is the instant after the last one
    // kept (the day after a whole day), and it read as that next day, in UTC.
    function pad2(n) { return (n < 10 ? "0" : "") + n; }
    function localText(ms) {
      var d = new Date(ms), day = d.getFullYear() + "-" + pad2(d.getMonth() + 1) + "-" + pad2(d.getDate());
      var hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      return hm === "00:00" ? day : day + " " + hm;
    }
    function untilText(iso) {
      var end = Date.parse(iso), last = new Date(end - 1);
      var whole = new Date(end).getHours() === 0 && new Date(end).getMinutes() === 0;
      return whole ? "through " + localText(new Date(last.getFullYear(), last.getMonth(), last.getDate()).getTime()) : "until " + localText(end);
    }
    if (f.since || f.until)
      scope += " · " + (f.since ? "from " + localText(Date.parse(f.since)) : "from the start") + " " + (f.until ? untilText(f.until) : "to now");
    scope += " · generated " + data.generated;
    document.getElementById("scope").textContent = scope;

    var agentCommits = 0, agentCost = 0;
    data.by_origin.forEach(function (o) { if (o.origin === "agent") { agentCommits = o.commits; agentCost = o.cost; } });
    var kpis = [
      ["cost-per-commit", "Cost per commit (median)", fmtCost(t.cost_per_commit.median), t.cost_per_commit.median,
        "mean " + fmtCost(t.cost_per_commit.mean) + " · p90 " + fmtCost(t.cost_per_commit.p90), true],
      ["total-cost", LIST ? "Total AI cost at list prices" : "Total AI cost", fmtCost(t.cost), t.cost, plural(t.messages, "message"), false],
      ["commits", "Commits with AI usage", fmtInt(t.commits), t.commits, fmtCost(t.linked.cost) + " linked", false],
      ["agent-commits", "Agent-made commits", fmtInt(agentCommits), agentCommits, fmtCost(agentCost), false],
      ["cache-hit-rate", "Cache hit rate", fmtPct(t.cache_hit_rate), t.cache_hit_rate, fmtInt(t.tokens.cache_read) + " cached tokens", false],
      ["subagent-share", "Sub-agent share", fmtPct(data.subagents.share), data.subagents.share,
        fmtCost(data.subagents.subagent.cost), false],
      ["pending", "Not linked yet", fmtCost(t.pending.cost), t.pending.cost, plural(t.pending.messages, "message"), false]
    ];
    if (!LIST && t.list_cost !== undefined && t.list_cost !== null)
      kpis.splice(2, 0, ["list-cost", "At list prices", fmtCost(t.list_cost), t.list_cost, "the makers' list prices", false]);
    if (t.shipped)
      kpis.splice(3, 0, ["shipped-share", "Shipped", fmtPct(t.shipped.share), t.shipped.share,
        plural(t.shipped.commits, "commit") + " · " + fmtCost(t.shipped.cost), false]);
    var mix = t.cost_sources || {};
    var basis = document.getElementById("basis-note");
    if (LIST && t.messages) {
      basis.textContent = "Every figure here is at the models' list prices: " +
        (mix.reported ? "chosen with --basis list." : "no message reported a cost (Claude Code reports none, plans report $0).") +
        " `periscope dashboard --basis reported` shows the agents' own figures.";
      basis.hidden = false;
    } else if (t.messages && t.list_cost && (mix.estimated || mix.subscription)) {
      // Claude Code reports no cost and plans report 0: the cost figures below leave those messages
      // out, while their list price is the honest figure (docs/cost.md).  Said, not hidden in a card.
      basis.textContent = fmtInt((mix.estimated || 0) + (mix.subscription || 0)) + " of " + plural(t.messages, "message") +
        " report no cost (Claude Code) or a plan's $0: the cost figures below count them at $0. At list prices all" +
        " usage comes to " + fmtCost(t.list_cost) + " (the list price column, and `periscope report`'s list_cost;" +
        " `periscope dashboard --basis list` draws every figure at list prices).";
      basis.hidden = false;
    }
    if (!t.messages) {
      var empty = document.getElementById("empty-note");
      empty.textContent = "No AI usage recorded yet" + (f.since || f.until ? " in this window" : "") +
        ": the charts below fill in once an agent's messages are linked to commits.";
      empty.hidden = false;
    }
    var kpiBox = document.getElementById("kpis");
    kpis.forEach(function (k) {
      var card = el("div", "kpi" + (k[5] ? " centre" : ""));
      card.dataset.kpi = k[0];
      card.dataset.value = k[3] === null || k[3] === undefined ? "" : String(k[3]);
      card.appendChild(el("div", "label", k[1]));
      card.appendChild(el("div", "value", k[2]));
      card.appendChild(el("div", "sub", k[4]));
      kpiBox.appendChild(card);
    });

    // --- tables ---------------------------------------------------------------------------------
    function table(id, columns, rows) {
      var tbl = document.getElementById(id);
      var tr = el("tr");
      columns.forEach(function (c) { var th = el("th", c.num ? "num" : "", c.label); th.scope = "col"; tr.appendChild(th); });
      tbl.tHead.appendChild(tr);
      var body = tbl.tBodies[0], frag = document.createDocumentFragment();
      rows.forEach(function (r) {
        var row = el("tr");
        columns.forEach(function (c) { row.appendChild(el("td", c.cls || (c.num ? "num" : ""), c.get(r))); });
        frag.appendChild(row);
      });
      body.appendChild(frag);
    }
    var commitCols = [];
    if (data.filter.repos.length > 1) commitCols.push({ label: "repository", get: function (r) { return r.repo; } });
    commitCols.push({ label: "commit", cls: "sha", get: function (r) { return r.sha.slice(0, 12); } });
    if (data.commit_columns.indexOf("date") >= 0) commitCols.push({ label: "date", get: function (r) { return r.date || ""; } });
    commitCols.push(
      { label: "branch", get: function (r) { return r.branch || ""; } },
      { label: "kind", get: function (r) { return r.kind; } },
      { label: "origin", get: function (r) { return r.origin; } });
    if (data.commit_columns.indexOf("shipped") >= 0)
      commitCols.push({ label: "shipped", get: function (r) { return r.shipped === undefined || r.shipped === null ? "?" : (r.shipped ? "yes" : "no"); } });
    if (data.commit_columns.indexOf("reachable") >= 0)
      commitCols.push({ label: "reachable", get: function (r) { return r.reachable === false ? "no" : "yes"; } });
    commitCols.push(
      { label: "messages", num: true, get: function (r) { return fmtInt(r.messages); } },
      { label: "tokens", num: true, get: function (r) { return fmtInt(sumTokens(r.tokens)); } },
      { label: COST, num: true, get: function (r) { return fmtCost(r.cost); } });
    if (data.commit_columns.indexOf("list_cost") >= 0)
      commitCols.push({ label: "list price", num: true, get: function (r) { return fmtCost(r.list_cost); } });
    table("commits", commitCols, data.commits);
    if (data.commits_capped) {
      var note = document.getElementById("commits-note");
      note.textContent = "Showing the " + data.commits.length + " most expensive of " + t.commits +
        " commits; `periscope dashboard --format json` or `periscope report` has them all.";
      note.hidden = false;
    }
    var sessionCols = [
      { label: "session", cls: "sha", get: function (r) { return r.session; } },
      { label: "title", cls: "title", get: function (r) { return r.title === null ? "" : r.title; } },
      { label: "sub-agent", get: function (r) { return r.is_subagent ? "yes" : "no"; } },
      { label: "messages", num: true, get: function (r) { return fmtInt(r.messages); } },
      { label: COST, num: true, get: function (r) { return fmtCost(r.cost); } }];
    if (data.filter.repos.length > 1) sessionCols.unshift({ label: "repository", get: function (r) { return r.repo; } });
    table("sessions", sessionCols, data.sessions);
    if (data.sessions_capped) {
      var sn = document.getElementById("sessions-note");
      sn.textContent = "Showing the " + data.sessions.length + " most expensive sessions.";
      sn.hidden = false;
    }

    // --- charts ---------------------------------------------------------------------------------
    var charts = [];
    function chart(id, config) {
      var canvas = document.getElementById(id), caption = canvas.closest("figure").querySelector("figcaption");
      // A picture with a name for screen readers; the tables hold the figures.
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", (caption ? caption.textContent : id) + " (chart; the figures are in the tables and in `periscope report`)");
      charts.push(new Chart(canvas, config));
    }
    var costAxis = { beginAtZero: true, ticks: { callback: fmtAxis } };
    var costTooltip = { callbacks: { label: function (c) { return (c.dataset.label ? c.dataset.label + ": " : "") + fmtCost(c.parsed.y === undefined ? c.parsed : c.parsed.y); } } };

    chart("chart-top-commits", {
      type: "bar",
      data: {
        // Long branch names pushed the SHA out of the label's room: cut to 24 characters.
        labels: data.top_commits.map(function (c) {
          var b = c.branch || "";
          return c.sha.slice(0, 8) + (b ? " " + (b.length > 24 ? b.slice(0, 23) + "…" : b) : "");
        }),
        datasets: [{ label: COST, data: data.top_commits.map(function (c) { return c.cost; }),
          backgroundColor: data.top_commits.map(function (c) { return c.origin === "agent" ? PALETTE[1] : PALETTE[0]; }) }]
      },
      options: { indexAxis: "y", plugins: { legend: { display: false },
        tooltip: { callbacks: { label: function (c) { return fmtCost(c.parsed.x); } } } },
        scales: { x: { beginAtZero: true, ticks: { callback: fmtAxis } } } }
    });
    chart("chart-commit-histogram", {
      type: "bar",
      data: {
        labels: data.commit_cost_histogram.map(function (b) { return b.to === null ? "≥ " + fmtCost(b.from) : fmtCost(b.from) + "–" + fmtCost(b.to); }),
        datasets: [{ label: "commits", data: data.commit_cost_histogram.map(function (b) { return b.commits; }), backgroundColor: PALETTE[0] }]
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });

    // Every calendar day from the first to the last: days without usage were left out, so a quiet
    // week sat next to a busy day at the same spacing and the running total seemed to grow evenly.
    var days = [], running = [], byDay = {};
    data.days.forEach(function (d) { byDay[d.day] = d; });
    if (data.days.length) {
      var first = data.days[0].day.split("-"), last = data.days[data.days.length - 1].day, total = 0;
      for (var cur = new Date(+first[0], +first[1] - 1, +first[2], 12); days.length < 3700; cur.setDate(cur.getDate() + 1)) {
        var key = cur.getFullYear() + "-" + pad2(cur.getMonth() + 1) + "-" + pad2(cur.getDate());
        if (byDay[key]) total = byDay[key].cumulative_cost;
        days.push(key);
        running.push(total);
        if (key >= last) break;
      }
    }
    var dayIndex = {};
    days.forEach(function (d, i) { dayIndex[d] = i; });
    // The 12 most expensive models by name in the charts, the rest summed as one: 300 models made a
    // legend that covered the day chart and bars no one could read (the table of figures keeps them all).
    var MAX_MODELS = 12, chartModels = data.models.slice(0, MAX_MODELS);
    if (data.models.length > MAX_MODELS) {
      var rest = { provider: null, model: "(" + (data.models.length - MAX_MODELS) + " other models)", cost: 0, cache_hit_rate: null,
        tokens: { input: 0, output: 0, reasoning: 0, cache_read: 0, cache_write: 0 } };
      data.models.slice(MAX_MODELS).forEach(function (m) {
        rest.cost += m.cost;
        TOKEN_KINDS.forEach(function (k) { rest.tokens[k] += m.tokens[k] || 0; });
      });
      chartModels.push(rest);
    }
    var modelNames = chartModels.map(modelName), otherName = chartModels.length > MAX_MODELS ? modelNames[MAX_MODELS] : null;
    var stacks = {};
    modelNames.forEach(function (m) { stacks[m] = days.map(function () { return 0; }); });
    data.day_model.forEach(function (r) { var m = stacks[modelName(r)] ? modelName(r) : otherName; if (m) stacks[m][dayIndex[r.day]] += r.cost; });
    var dayDatasets = modelNames.map(function (m, i) {
      return { type: "bar", label: m, data: stacks[m], backgroundColor: PALETTE[i % PALETTE.length], stack: "cost", yAxisID: "y" };
    });
    // order -1: drawn over the bars (Chart.js draws the lowest order on top; it was hidden behind them).
    dayDatasets.push({ type: "line", label: "running total (right axis)", order: -1, data: running,
      borderColor: "#24292f", backgroundColor: "#24292f", pointRadius: days.length > 60 ? 0 : 2, yAxisID: "y2" });
    chart("chart-days", {
      data: { labels: days, datasets: dayDatasets },
      options: { plugins: { tooltip: costTooltip }, scales: { x: { stacked: true },
        y: Object.assign({ stacked: true, title: { display: true, text: COST + " per day" } }, costAxis),
        y2: Object.assign({ position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "running total" } }, costAxis) } }
    });

    chart("chart-models-cost", {
      type: "bar",
      data: { labels: modelNames, datasets: [{ label: COST, data: chartModels.map(function (m) { return m.cost; }),
        backgroundColor: modelNames.map(function (_, i) { return PALETTE[i % PALETTE.length]; }) }] },
      options: { plugins: { legend: { display: false }, tooltip: costTooltip }, scales: { y: costAxis } }
    });
    chart("chart-models-tokens", {
      type: "bar",
      data: { labels: modelNames, datasets: TOKEN_KINDS.map(function (k, i) {
        return { label: k, data: chartModels.map(function (m) { return m.tokens[k]; }), backgroundColor: PALETTE[i] };
      }) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } }
    });
    chart("chart-cache", {
      type: "bar",
      data: { labels: modelNames, datasets: [{ label: "cache hit rate", backgroundColor: PALETTE[2],
        data: chartModels.map(function (m) { return m.cache_hit_rate === null ? 0 : m.cache_hit_rate * 100; }) }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, max: 100, ticks: { callback: function (v) { return v + "%"; } } } } }
    });
    chart("chart-origin", {
      type: "doughnut",
      data: { labels: data.by_origin.map(function (o) { return o.origin + " (" + plural(o.commits, "commit") + ")"; }),
        datasets: [{ data: data.by_origin.map(function (o) { return o.cost; }),
          backgroundColor: data.by_origin.map(function (o) { return o.origin === "agent" ? PALETTE[1] : PALETTE[0]; }) }] },
      options: { plugins: { tooltip: { callbacks: { label: function (c) { return fmtCost(c.parsed); } } } } }
    });
    chart("chart-branches", {
      type: "bar",
      data: { labels: data.branches.slice(0, 30).map(function (b) { return b.branch || "(none)"; }),
        datasets: [{ label: COST, data: data.branches.slice(0, 30).map(function (b) { return b.cost; }), backgroundColor: PALETTE[3] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false },
        tooltip: { callbacks: { label: function (c) { return fmtCost(c.parsed.x); } } } },
        scales: { x: { beginAtZero: true, ticks: { callback: fmtAxis } } } }
    });
    chart("chart-subagents", {
      type: "doughnut",
      data: { labels: ["main sessions", "sub-agents"],
        datasets: [{ data: [data.subagents.main.cost, data.subagents.subagent.cost], backgroundColor: [PALETTE[0], PALETTE[4]] }] },
      options: { plugins: { tooltip: { callbacks: { label: function (c) { return fmtCost(c.parsed); } } } } }
    });

    // A chart counts as drawn when its canvas holds painted pixels.
    var drawn = 0;
    charts.forEach(function (c) {
      var ctx = c.canvas.getContext("2d"), w = c.canvas.width, h = c.canvas.height;
      if (!w || !h) return;
      var px = ctx.getImageData(0, 0, w, h).data;
      for (var i = 3; i < px.length; i += 4) { if (px[i] !== 0) { drawn++; return; } }
    });
    root.dataset.charts = String(charts.length);
    root.dataset.chartsDrawn = String(drawn);
    root.dataset.drawMs = String(Math.round(performance.now()));  // since navigation start
    root.dataset.rendered = drawn === charts.length ? "ok" : "incomplete";
  } catch (e) {
    root.dataset.rendered = "error: " + (e && e.message ? e.message : String(e));
    throw e;
  }
})();
