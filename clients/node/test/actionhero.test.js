"use strict";
// A real ActionHero 29 app (pinned in package-lock.json) with node-resque
// swapped for tq-resque: normal, delayed and periodic tasks run, QueueLock
// and Retry behave as ActionHero documents, api.tasks inspection answers in
// its shapes, and a TaskProcessor process killed mid-task loses nothing.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const TQ = require("..");
const { startServer, waitFor } = require("../support/helpers");

const APP = path.join(__dirname, "..", "support", "actionhero");

let server;
const roots = [];
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** Starts the app process; its stdout lines collect in `lines`. */
function app(scenario, env = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "tq-actionhero-"));
  roots.push(root);
  const child = spawn(process.execPath, ["-r", path.join(APP, "alias.js"), path.join(APP, "app.js"), root, String(server.port), scenario], {
    // The project lives in a temporary folder: its config and tasks find
    // actionhero, ioredis and winston in this package's node_modules.
    env: { ...process.env, TZ: "UTC", NODE_PATH: path.join(__dirname, "..", "node_modules"), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines = [];
  let err = "";
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop();
    lines.push(...parts);
  });
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const output = () => `--- stdout ---\n${lines.filter((l) => !l.startsWith("RAN tick")).join("\n")}\n${buf}\n--- stderr ---\n${err}`;
  /** The exit, or a failure showing the output if it takes longer than `ms`. */
  const exit = (ms) =>
    Promise.race([
      exited,
      new Promise((_, reject) => setTimeout(() => reject(new Error(`the app did not exit within ${ms} ms\n${output()}`)), ms).unref()),
    ]);
  return { child, lines, exited, exit, output, stderr: () => err };
}

function ranLines(lines, name) {
  return lines.filter((l) => l.startsWith(`RAN ${name} `)).map((l) => JSON.parse(l.slice(`RAN ${name} `.length)));
}

test("ActionHero 29 runs normal, delayed and periodic tasks, QueueLock and Retry, on tq-resque", { timeout: 60000 }, async (t) => {
  const a = app("tasks");
  t.after(() => a.child.exitCode === null && a.child.kill("SIGKILL"));
  const { code } = await a.exit(45000);
  assert.equal(code, 0, `the app failed:\n${a.output()}`);
  const line = a.lines.find((l) => l.startsWith("RESULT "));
  assert.ok(line, "the app reported");
  const result = JSON.parse(line.slice("RESULT ".length));
  assert.equal(result.fromPackage, require.resolve(".."), "ActionHero's require('node-resque') loaded tq-resque");
  assert.deepEqual(
    ranLines(a.lines, "hello").map((p) => p.who).sort(),
    ["at", "in", "now"],
    "the normal task and both delayed ones ran, once each",
  );
  assert.equal(result.enqueue, true);
  assert.equal(result.enqueueIn, true);
  assert.equal(result.enqueueAt, true);
  assert.equal(result.scheduledAt, 1, "scheduledAt found the delayed task");
  // QueueLock: the second enqueue of a waiting twin is refused.
  assert.deepEqual(result.locked, [true, false]);
  assert.equal(ranLines(a.lines, "locked").length, 1);
  // Retry: three runs, the last one succeeds; nothing left failed.
  assert.equal(ranLines(a.lines, "flaky").length, 3);
  assert.equal(result.failedCount, 0);
  // Periodic: ran more than once, one instance at a time.
  assert.ok(ranLines(a.lines, "tick").length >= 2, `tick ran ${ranLines(a.lines, "tick").length} times`);
  // Periodic on TQ.RECUR: registered once, no delayed instances, never two at once.
  assert.deepEqual(
    result.recursBefore.map((r) => [r.job, r.everyMs]),
    [[{ class: "tick", queue: "default", args: [{}] }, 200]],
    "tick is registered once, every 200 ms",
  );
  assert.deepEqual(result.enqueueAllAgain, [], "a second boot registers nothing more");
  assert.equal(result.tickDelayed, 0, "no delayed tick instance");
  assert.equal(result.tickMaxActive, 1, "never two tick instances at once");
  // stopRecurrentTask: the waiting instance and its lock removed, counted.
  assert.equal(result.stopRecurrent, 1, "stopRecurrentTask removed the waiting instance");
  assert.equal(result.tickWaitingAfterStop, false);
  assert.equal(result.tickLockAfterStop, 0, "its QueueLock key is gone");
  assert.equal(result.recursAfterStop, 0, "tick is no longer registered");
  assert.equal(result.tickRunsAfterStop, 0, "tick does not run after it was stopped");
  assert.equal(result.stopAgain, 0, "a second stop removes nothing");
  // api.tasks.details(): ActionHero's shape.
  assert.deepEqual(Object.keys(result.details).sort(), ["leader", "queues", "stats", "workers"]);
  assert.ok(result.details.leader, "the scheduler leads");
  assert.ok(Number(result.details.stats.processed) >= 6, JSON.stringify(result.details.stats));
  assert.equal(typeof result.details.queues.default.length, "number");
});

test("a TaskProcessor process killed mid-task (SIGKILL): the task runs again after its lease, not after an hour", { timeout: 60000 }, async (t) => {
  const n = "resque";
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  const first = app("worker", { LEASE_MS: "1000", SLOW_MS: "600000" });
  t.after(() => first.child.exitCode === null && first.child.kill("SIGKILL"));
  await waitFor("the first app's workers", async () => Object.keys(await queue.workers()).length > 0, 30000);
  await queue.enqueue("slow", "slow", [{ id: 7 }]); // what api.tasks.enqueue("slow", {id: 7}) writes
  await waitFor("the first run", () => ranLines(first.lines, "slow").length === 1, 30000);
  first.child.kill("SIGKILL");
  await first.exited;
  const second = app("worker", { LEASE_MS: "1000", SLOW_MS: "10" });
  t.after(() => second.child.exitCode === null && second.child.kill("SIGKILL"));
  await waitFor("the task to run again and finish", () => second.lines.includes('DONE slow {"id":7}'), 30000);
  second.child.kill("SIGKILL");
  await second.exited;
  assert.equal(await queue.failedCount(), 0);
});
