// periscope-hooks OpenCode plugin (plain JavaScript, no dependencies, no build step).
//
// For every finished assistant message it appends ONE JSON line (a spool record:
// model, provider, tokens, cost, git branch and SHA; never message text, parts,
// tool input or output) to <git-common-dir>/periscope/spool.jsonl, then asks for a
// background `periscope flush`. It never throws into OpenCode, never blocks it on
// the network, and never prints: its own problems go to plugin.log beside the spool.
// `periscope install-opencode` installs a copy with the interpreter baked in below.
import { spawn, execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const BAKED_COMMAND = null; // periscope:command (replaced at install: ["/path/python", "-c", "<hook.MAIN_CODE>"])
const MAX_LOG_BYTES = 256 * 1024;
const FLUSH_QUIET_MS = 1000; // messages closer together than this share one flusher
const FLUSH_MAX_WAIT_MS = 10000; // while the agent keeps working, flush at least this often
// OpenCode runs for days: every map below forgets its oldest entries past this many. Forgetting
// is harmless: a message recorded again is deduplicated by id at ingest, a session record written
// again is the same facts, a repository looked up again costs one git process.
const MAX_REMEMBERED = 5000;
// A session title is the only free text recorded (OpenCode draws it from the conversation, short):
// kept to this many characters, so no title can make a spool line too long to ingest (4 MiB).
const MAX_TITLE_CHARS = 200;
// Names (model, provider, agent) are cut the same way, and an id longer than this is recorded as
// its digest: a model or id of a few MB made a line ingest skips, and the message's usage was lost.
const MAX_NAME_CHARS = 200;
const MAX_ID_CHARS = 200;
const TIME_LIMIT_MS = 253402300800000; // the year 10000 (records.TIME_LIMIT_MS)
// Records the spool could not take (its folder unwritable, replaced by a file, the disk full) wait
// here, at most this many per repository, and go in with the next record it takes.
const MAX_UNWRITTEN = 1000;
const APPEND_NONBLOCK = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NONBLOCK;

// Map/Set insertion order is age order: drop the oldest entries beyond MAX_REMEMBERED.
function bound(collection) {
  for (const key of collection.keys()) {
    if (collection.size <= MAX_REMEMBERED) break;
    collection.delete(key);
  }
}

function stateHome() {
  const xdg = process.env.XDG_STATE_HOME;
  return xdg && path.isAbsolute(xdg) ? xdg : path.join(process.env.HOME || os.homedir(), ".local", "state");
}

// One of our folders, 0700.  Parents only inside the user's state folder: a repository's state
// folder is made only inside a git folder that is there, never again at a path the repository
// was moved away from (periscope_hooks/folders.py says what that broke).
function makePrivateDir(dir) {
  if (dir.startsWith(path.join(stateHome(), path.sep))) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (e.code !== "EEXIST" || !fs.statSync(dir).isDirectory()) throw e;
  }
}

function configHome() {
  const xdg = process.env.XDG_CONFIG_HOME;
  return xdg && path.isAbsolute(xdg) ? xdg : path.join(process.env.HOME || os.homedir(), ".config");
}

// The interpreter to run: baked in by a global install; for a repository's copy (which lives in
// the work tree, so names no machine path) `periscope install-opencode` writes it beside the spool.
function periscopeCommand(where) {
  if (process.env.PERISCOPE_BIN) return [process.env.PERISCOPE_BIN];
  if (Array.isArray(BAKED_COMMAND) && BAKED_COMMAND.length && fs.existsSync(BAKED_COMMAND[0])) return BAKED_COMMAND;
  if (where && where.command === undefined) {
    where.command = null;
    try {
      const cmd = JSON.parse(readText(path.join(where.stateDir, "opencode-command.json")) || "null");
      if (Array.isArray(cmd) && cmd.length && cmd.every((c) => typeof c === "string") && fs.existsSync(cmd[0])) where.command = cmd;
    } catch {}
  }
  if (where && where.command) return where.command;
  return ["periscope"];
}

// What OpenCode hands over is trusted for nothing: a field recorded is a string or null.  Lone
// UTF-16 halves (a title cut through an emoji) become U+FFFD: ingest stores UTF-8.
function text(x, max) {
  if (typeof x !== "string" || !x) return null;
  // Cut to `max` code points (never through an emoji) from at most 2 * max code units: splitting a
  // whole 50 MB title first blocked OpenCode's event loop for 1.8 s (stop 33's plugin fuzzing).
  if (max !== undefined && x.length > max) x = Array.from(x.slice(0, 2 * max)).slice(0, max).join("");
  return x.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

// An id as recorded: a string (as text() makes it), one past MAX_ID_CHARS as "sha256:" + its
// digest (distinct ids stay distinct, the same id is the same record, shell.env's ids match).
function ident(x) {
  const t = text(x);
  return t && t.length > MAX_ID_CHARS ? "sha256:" + createHash("sha256").update(t).digest("hex") : t;
}

function readText(p) {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return null;
  }
}

function isSha(s) {
  return typeof s === "string" && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(s);
}

// HEAD's SHA and branch, read from files (a git process per message would cost milliseconds).
// A reftable repository (git 2.45+) keeps refs in binary tables, and its HEAD file is a stub
// naming refs/heads/.invalid: only there, and only once the files did not resolve, ask git.
function readHead(repo) {
  const head = (readText(path.join(repo.gitDir, "HEAD")) || "").trim();
  if (head.startsWith("ref: ")) {
    const ref = head.slice(5).trim();
    const branch = ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : ref;
    let sha = (readText(path.join(repo.commonDir, ref)) || readText(path.join(repo.gitDir, ref)) || "").trim();
    if (!isSha(sha)) {
      sha = null;
      const packed = readText(path.join(repo.commonDir, "packed-refs")) || "";
      for (const line of packed.split("\n")) {
        if (line.endsWith(" " + ref) && !line.startsWith("#") && !line.startsWith("^")) sha = line.split(" ")[0];
      }
    }
    if (!isSha(sha) && usesReftable(repo)) return gitHead(repo);
    return { branch, sha: isSha(sha) ? sha : null };
  }
  return { branch: null, sha: isSha(head) ? head : null };
}

function usesReftable(repo) {
  if (repo.reftable === undefined) {
    const config = (readText(path.join(repo.commonDir, "config")) || "").toLowerCase();
    repo.reftable = config.includes("refstorage") && config.includes("reftable");
  }
  return repo.reftable;
}

function gitOut(repo, args) {
  return new Promise((resolve) => {
    try {
      execFile("git", [`--git-dir=${repo.gitDir}`, ...args], { timeout: 5000, windowsHide: true }, (err, stdout) =>
        resolve(err ? null : String(stdout).trim()),
      );
    } catch {
      resolve(null);
    }
  });
}

async function gitHead(repo) {
  const [ref, sha] = await Promise.all([
    gitOut(repo, ["symbolic-ref", "-q", "HEAD"]),
    gitOut(repo, ["rev-parse", "-q", "--verify", "HEAD"]),
  ]);
  const branch = ref ? (ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : ref) : null;
  return { branch, sha: isSha(sha) ? sha : null };
}

function gitRevParse(dir) {
  return new Promise((resolve) => {
    try {
      execFile(
        "git",
        ["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir", "--show-toplevel"],
        { cwd: dir, timeout: 5000, windowsHide: true },
        (err, stdout) => {
          if (err) return resolve(null);
          const [gitDir, commonDir, top] = String(stdout).trim().split("\n");
          if (!gitDir || !commonDir) return resolve(null);
          resolve({ gitDir, commonDir, top: top || dir });
        },
      );
    } catch {
      resolve(null);
    }
  });
}

export const PeriscopePlugin = async (ctx) => {
  const repos = new Map(); // directory -> Promise<{spool, stateDir, repo|null, top}>
  const recorded = new Set(); // message ids already written
  const inflight = new Map(); // sessionID -> id of its unfinished assistant message
  const sessions = new Map(); // sessionID -> JSON of [title, parent, agent] last written
  const sessionDirs = new Map(); // sessionID -> directory
  let flushRunning = 0; // flushers started by this plugin and not yet exited
  let flushTimer = null;
  const flushWanted = new Map(); // stateDir -> where: repositories with records not yet flushed
  let loginStarted = false;

  // plugin.log beside the spool; where that folder cannot be written, the one in the user's state
  // folder (where the git hook logs then too: `periscope status` shows both).
  const log = (stateDir, message) => {
    for (const dir of [stateDir, path.join(stateHome(), "periscope")]) {
      try {
        makePrivateDir(dir);
        const file = path.join(dir, "plugin.log");
        try {
          if (fs.statSync(file).size > MAX_LOG_BYTES) fs.renameSync(file, file + ".1");
        } catch {}
        // One line that prints as it reads (logfile.CONTROL_ESCAPES): what it quotes (an event's
        // type, an error's text) could hold a line break or a terminal escape.
        const line = String(message).replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
        fs.appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
        return;
      } catch {}
    }
  };

  const locate = (dir) => {
    dir = dir || ctx.directory || process.cwd();
    if (!repos.has(dir)) {
      repos.set(
        dir,
        gitRevParse(dir).then((repo) => {
          let realTop = dir;
          try {
            realTop = fs.realpathSync(repo ? repo.top : dir);
          } catch {}
          const stateDir = repo ? path.join(repo.commonDir, "periscope") : path.join(stateHome(), "periscope", "no-repo");
          return { repo, stateDir, spool: path.join(stateDir, "spool.jsonl"), top: realTop, dir };
        }),
      );
      bound(repos);
    }
    return repos.get(dir);
  };

  // One write of whole lines with O_APPEND: concurrent writers never interleave within one.  A
  // record the spool cannot take is kept (unwritten) and written before the next one, in order, or
  // when the session goes idle; a message is marked recorded either way, so it is in the spool or
  // waiting here, never both.
  const unwritten = new Map(); // stateDir -> { where, lines } not written yet
  const writeWaiting = (where) => {
    const waiting = unwritten.get(where.stateDir);
    if (!waiting) return true;
    const { lines } = waiting;
    try {
      makePrivateDir(where.stateDir);
      // O_NONBLOCK: no effect on a file; a FIFO in the spool's place with no reader fails at once
      // (the records wait) where opening it blocked OpenCode's event loop for good.
      fs.appendFileSync(where.spool, lines.join(""), { mode: 0o600, flag: APPEND_NONBLOCK });
    } catch (e) {
      const dropped = lines.length > MAX_UNWRITTEN ? lines.splice(0, lines.length - MAX_UNWRITTEN).length : 0;
      if (!waiting.logged || dropped) {
        waiting.logged = true;
        log(
          where.stateDir,
          `cannot write ${where.spool}: ${e && (e.code || e.message)}; ${lines.length} record(s) wait in memory` +
            (dropped ? `, ${dropped} older one(s) dropped` : "") +
            ` until it can be written (is ${where.stateDir} a folder you can write?)`,
        );
      }
      return false;
    }
    unwritten.delete(where.stateDir);
    if (waiting.logged) log(where.stateDir, `wrote ${lines.length} record(s) that had waited for the spool`);
    return true;
  };
  const append = (where, record) => {
    if (!unwritten.has(where.stateDir)) unwritten.set(where.stateDir, { where, lines: [], logged: false });
    unwritten.get(where.stateDir).lines.push(JSON.stringify(record) + "\n");
    return writeWaiting(where);
  };

  // One flusher process per flush request, coalesced while the agent works: a request waits
  // until the session goes idle (OpenCode's `session.idle`), or FLUSH_QUIET_MS without another
  // message, or at most FLUSH_MAX_WAIT_MS; while a flusher runs, requests only mark their
  // repository, and one more flusher starts when it exits.  The flusher is run directly
  // (`<periscope> _background-flush <state dir>`), not through `periscope flush --background`,
  // which would start a second process to detach the first.
  let firstWanted = 0;
  const requestFlush = (where) => {
    if (process.env.PERISCOPE_BACKGROUND === "0") return; // records wait for the next `periscope flush`
    if (!flushWanted.size) firstWanted = Date.now();
    flushWanted.set(where.stateDir, where); // one per repository: a session may touch two
    scheduleFlush(Math.min(FLUSH_QUIET_MS, Math.max(0, firstWanted + FLUSH_MAX_WAIT_MS - Date.now())));
  };

  const scheduleFlush = (delay) => {
    if (flushRunning > 0 || !flushWanted.size) return;
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = setTimeout(startFlush, delay);
  };

  const startFlush = () => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    const batch = [...flushWanted.values()]; // every repository with records waiting: one flusher each
    flushWanted.clear();
    for (const where of batch) {
      flushRunning += 1;
      const [cmd, ...args] = periscopeCommand(where);
      const done = (problem) => {
        if (problem) log(where.stateDir, problem);
        flushRunning -= 1;
        scheduleFlush(FLUSH_QUIET_MS);
      };
      try {
        const child = spawn(cmd, [...args, "_background-flush", where.stateDir], {
          cwd: where.dir,
          detached: true,
          stdio: "ignore",
          env: { ...process.env, PERISCOPE_SESSION_ID: "", PERISCOPE_MESSAGE_ID: "" },
        });
        child.on("error", (e) => done(`could not start periscope (${cmd}): ${e.code || e.message}; records wait in the spool`));
        child.on("exit", (code) => done(code ? `periscope flush exited ${code}; records wait in the spool` : null));
        child.unref();
      } catch (e) {
        done(`could not start periscope: ${e && e.message}`);
      }
    }
  };

  const maybeStartLogin = (where) => {
    if (loginStarted) return;
    loginStarted = true;
    try {
      const cfg = JSON.parse(readText(path.join(configHome(), "opencode", "analytics.json")) || "{}") || {};
      if (!(process.env.PERISCOPE_ENDPOINT || cfg.endpoint)) return; // the local store needs no sign-in
      // Signed in, and no flusher has found the sign-in expired since: nothing to ask.
      const dir = path.join(configHome(), "periscope");
      if (fs.existsSync(path.join(dir, "token_cache.json")) && !fs.existsSync(path.join(dir, "sign-in-required"))) return;
      const [cmd, ...args] = periscopeCommand(where);
      const child = spawn(cmd, [...args, "login"], { cwd: where.dir, detached: true, stdio: "ignore" });
      child.on("error", (e) => log(where.stateDir, `could not start periscope login: ${e.code || e.message}`));
      child.unref();
    } catch (e) {
      log(where.stateDir, `sign-in check failed: ${e && e.message}`);
    }
  };

  const onAssistant = async (info) => {
    const id = ident(info.id);
    const sessionID = ident(info.sessionID);
    const time = (typeof info.time === "object" && info.time) || {};
    if (time.completed) {
      if (sessionID && inflight.get(sessionID) === id) inflight.delete(sessionID);
    } else {
      if (sessionID && id) inflight.set(sessionID, id);
      bound(inflight);
      return;
    }
    if (!id) return log((await locate(ctx.directory)).stateDir, "skipped a finished message without an id");
    if (recorded.has(id)) return;
    recorded.add(id);
    bound(recorded);
    const cwd = info.path && (text(info.path.cwd) || text(info.path.root));
    const where = await locate(cwd || sessionDirs.get(sessionID) || ctx.directory);
    const head = where.repo ? await readHead(where.repo) : { branch: null, sha: null };
    const t = (typeof info.tokens === "object" && info.tokens) || {};
    const cache = (typeof t.cache === "object" && t.cache) || {};
    const num = (x) => (typeof x === "number" && isFinite(x) && x >= 0 ? x : 0);
    const count = (x) => Math.floor(num(x)); // token counts are whole (the spool's schema)
    const completed = time.completed;
    append(where, {
      v: 1,
      kind: "message",
      id,
      session_id: sessionID,
      // Before the year 10000 (ingest skips a later time): a bogus one is replaced by the clock's.
      time: typeof completed === "number" && completed > 0 && completed < TIME_LIMIT_MS ? Math.floor(completed) : Date.now(),
      provider: text(info.providerID, MAX_NAME_CHARS),
      model: text(info.modelID, MAX_NAME_CHARS),
      agent: text(info.agent, MAX_NAME_CHARS) || text(info.mode, MAX_NAME_CHARS),
      tokens: {
        input: count(t.input),
        output: count(t.output),
        reasoning: count(t.reasoning),
        cache_read: count(cache.read),
        cache_write: count(cache.write),
      },
      cost: num(info.cost),
      cwd: where.top,
      git: { branch: head.branch, sha: head.sha },
    });
    maybeStartLogin(where);
    requestFlush(where);
  };

  const onSession = async (info) => {
    const id = ident(info.id);
    if (!id) return;
    const directory = text(info.directory);
    if (directory) {
      sessionDirs.set(id, directory);
      bound(sessionDirs);
    }
    const title = text(info.title, MAX_TITLE_CHARS);
    const parent = ident(info.parentID);
    const agent = text(info.agent, MAX_NAME_CHARS);
    const key = JSON.stringify([title, parent, agent]); // joined with a separator, "a\0" + "b" was "a" + "\0b"
    if (sessions.get(id) === key) return;
    sessions.set(id, key);
    bound(sessions);
    const where = await locate(directory || ctx.directory);
    append(where, { v: 1, kind: "session", session_id: id, title, parent_id: parent, agent, time: Date.now() });
  };

  return {
    event: async (input) => {
      const event = input && input.event;
      try {
        if (event && event.type === "session.idle") {
          for (const { where } of [...unwritten.values()]) writeWaiting(where); // a folder fixed meanwhile
          return scheduleFlush(0); // the agent's turn is over
        }
        const info = event && event.properties && event.properties.info;
        if (!info || typeof info !== "object") return;
        if (event.type === "message.updated" && info.role === "assistant") await onAssistant(info);
        else if (event.type === "session.created" || event.type === "session.updated") await onSession(info);
      } catch (e) {
        try {
          const where = await locate(ctx.directory);
          log(where.stateDir, `event ${event && event.type} failed: ${e && e.message}`);
        } catch {}
      }
    },
    // Every command the agent runs learns which session and (unfinished) message it
    // belongs to, so a `git commit` it makes is attributed to the agent.
    "shell.env": async (input, output) => {
      try {
        const sessionID = input && ident(input.sessionID);
        if (!sessionID || !output) return;
        output.env = output.env || {};
        output.env.PERISCOPE_SESSION_ID = sessionID;
        const mid = inflight.get(sessionID);
        if (mid) output.env.PERISCOPE_MESSAGE_ID = mid;
      } catch {}
    },
  };
};

