// The OpenCode plugin's cost per recorded message, in-process: time from handing OpenCode's
// final `message.updated` event to the plugin until the spool line is written, first with the
// background flush off (PERISCOPE_BACKGROUND=0), then with the flush request on, where
// PERISCOPE_BIN is a stand-in flusher (a shell script that notes its start and runs 300 ms) so
// the processes the plugin starts can be counted: messages come in bursts of 20, 20 ms apart,
// then `session.idle` and 1.5 s before the next burst (an agent's turn).  Run it in Bun, OpenCode's runtime:
//   bun bench/plugin_overhead.mjs [N]      (node works too)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const N = Number(process.argv[2] || 2000);
const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "periscope-plugin-bench-"));
process.env.HOME = tmp;
process.env.XDG_STATE_HOME = path.join(tmp, "state");
process.env.PERISCOPE_BACKGROUND = "0";
const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;
const repo = path.join(tmp, "repo");
fs.mkdirSync(repo);
const git = (...a) => execFileSync("git", a, { cwd: repo, env: { ...process.env, GIT_AUTHOR_NAME: "b", GIT_AUTHOR_EMAIL: "b@e", GIT_COMMITTER_NAME: "b", GIT_COMMITTER_EMAIL: "b@e" } });
git("init", "-q", "-b", "main");
git("commit", "-q", "--allow-empty", "-m", "root");

// PERISCOPE_BENCH_PLUGIN: another copy of the plugin (e.g. an older version, for a side-by-side figure)
const pluginPath = process.env.PERISCOPE_BENCH_PLUGIN || path.join(here, "..", "hooks", "opencode", "periscope.js");
const { PeriscopePlugin } = await import(pathToFileURL(pluginPath).href);
const hooks = await PeriscopePlugin({ directory: repo, worktree: repo });
const event = (i, completed) => ({
  type: "message.updated",
  properties: { info: { id: `msg_${i}`, sessionID: "ses_bench", role: "assistant", modelID: "m", providerID: "p",
    mode: "build", agent: "build", path: { cwd: repo, root: repo }, cost: 0.001,
    tokens: { total: 10, input: 5, output: 3, reasoning: 0, cache: { read: 2, write: 0 } },
    time: { created: 1, completed } } },
});
// Warm up (first call resolves the repository once per worktree).
for (let i = 0; i < 50; i++) await hooks.event({ event: event(`warm${i}`, Date.now()) });
const times = [];
for (let i = 0; i < N; i++) {
  await hooks.event({ event: event(i, undefined) }); // streaming update: not recorded
  const t = process.hrtime.bigint();
  await hooks.event({ event: event(i, Date.now()) });
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
}
times.sort((a, b) => a - b);
const q = (p) => times[Math.min(times.length - 1, Math.round(p * (times.length - 1)))];
const lines = fs.readFileSync(path.join(repo, ".git", "periscope", "spool.jsonl"), "utf8").trim().split("\n").length;
console.log(`${runtime}, flush off, ${N} messages: median ${q(0.5).toFixed(3)} ms, p95 ${q(0.95).toFixed(3)} ms, max ${q(1).toFixed(3)} ms per recorded message (${lines} spool lines)`);
console.log(q(0.5) < 2 ? "target (< 2 ms at the median): met" : "target (< 2 ms at the median): NOT met");

// Flush request on: the plugin's own cost per message (the spawn included) and the processes it starts.
const starts = path.join(tmp, "flusher-starts");
const fake = path.join(tmp, "fake-flusher");
fs.writeFileSync(fake, `#!/bin/sh\necho "$*" >> '${starts}'\nsleep 0.3\n`, { mode: 0o755 });
process.env.PERISCOPE_BIN = fake;
delete process.env.PERISCOPE_BACKGROUND;
const hooks2 = await PeriscopePlugin({ directory: repo, worktree: repo });
const BURSTS = Math.max(1, Math.round(Math.min(N, 400) / 20));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const on = [];
for (let b = 0; b < BURSTS; b++) {
  for (let i = 0; i < 20; i++) {
    const id = `on_${b}_${i}`;
    await hooks2.event({ event: event(id, undefined) });
    const t = process.hrtime.bigint();
    await hooks2.event({ event: event(id, Date.now()) });
    on.push(Number(process.hrtime.bigint() - t) / 1e6);
    await sleep(20);
  }
  await hooks2.event({ event: { type: "session.idle", properties: { sessionID: "ses_bench" } } });
  await sleep(1500);
}
await sleep(1500);
on.sort((a, b) => a - b);
const qo = (p) => on[Math.min(on.length - 1, Math.round(p * (on.length - 1)))];
const started = fs.existsSync(starts) ? fs.readFileSync(starts, "utf8").trim().split("\n").length : 0;
console.log(`${runtime}, flush on, ${on.length} messages in ${BURSTS} bursts of 20: median ${qo(0.5).toFixed(3)} ms, p95 ${qo(0.95).toFixed(3)} ms, max ${qo(1).toFixed(3)} ms per message; ${started} flusher processes started (${(started / BURSTS).toFixed(2)} per burst)`);
fs.rmSync(tmp, { recursive: true, force: true });
