// The OpenCode plugin's cost per recorded message, in-process (node), excluding the
// background flush (PERISCOPE_BACKGROUND=0): time from handing OpenCode's final
// `message.updated` event to the plugin until the spool line is written.
//   node bench/plugin_overhead.mjs [N]
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
const repo = path.join(tmp, "repo");
fs.mkdirSync(repo);
const git = (...a) => execFileSync("git", a, { cwd: repo, env: { ...process.env, GIT_AUTHOR_NAME: "b", GIT_AUTHOR_EMAIL: "b@e", GIT_COMMITTER_NAME: "b", GIT_COMMITTER_EMAIL: "b@e" } });
git("init", "-q", "-b", "main");
git("commit", "-q", "--allow-empty", "-m", "root");

const { PeriscopePlugin } = await import(pathToFileURL(path.join(here, "..", "hooks", "opencode", "periscope.js")).href);
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
console.log(`node ${process.version}, ${N} messages: median ${q(0.5).toFixed(3)} ms, p95 ${q(0.95).toFixed(3)} ms, max ${q(1).toFixed(3)} ms per recorded message (${lines} spool lines)`);
console.log(q(0.5) < 2 ? "target (< 2 ms at the median): met" : "target (< 2 ms at the median): NOT met");
fs.rmSync(tmp, { recursive: true, force: true });
