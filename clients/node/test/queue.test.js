"use strict";
// The Queue API against node-resque 9.7.1's: one scenario run once with
// node-resque's Queue and once with tq-resque's, each on its own namespace of
// the same server; every answer and the keys left behind must agree.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const util = require("node:util");
const NR = require("node-resque");
const TQ = require("..");
const { startServer, ns } = require("../support/helpers");

let server;
let r;
before(async () => {
  // Automatic promotion off: the delayed jobs stay where the scenario put them.
  server = await startServer(["auto-promote", "no"]);
  r = server.redis();
});
after(async () => {
  r.disconnect();
  await server.stop();
});

const TRICKY = [{ b: 1, 10: [0.1, 1e21], a: 'é😀\u2028"\\/' }, 123456789.123, "a/b"];
const jobs = {
  Add: { perform: async (a, b) => a + b },
  Unique: { plugins: ["QueueLock"], perform: async () => {} },
  UniqueShort: { plugins: ["QueueLock"], pluginOptions: { QueueLock: { lockTimeout: 60 } }, perform: async () => {} },
};

function globEscape(s) {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

/** Every key of the namespace but tq's own (`tq:*`) and node-resque's connection test key. */
async function snapshot(namespace) {
  const out = {};
  let cursor = "0";
  const names = [];
  do {
    const [next, batch] = await r.scan(cursor, "MATCH", globEscape(namespace) + ":*", "COUNT", 1000);
    names.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  for (const k of names.sort()) {
    const name = k.slice(namespace.length + 1);
    if (name.startsWith("tq:") || name === "connection_test_key") continue;
    const type = await r.type(k);
    let value;
    if (type === "string") value = await r.get(k);
    else if (type === "list") value = await r.lrange(k, 0, -1);
    else if (type === "set") value = (await r.smembers(k)).sort();
    else if (type === "zset") value = await r.zrange(k, 0, -1, "WITHSCORES");
    else value = type;
    // A lock's value is a deadline in seconds: one second apart between the two runs is the same.
    if (/^(lock|workerslock):/.test(name)) value = "<deadline>";
    // Failure records written by forceCleanWorker name the time and host.
    if (name === "failed") value = value.map((rec) => JSON.stringify(normRecord(JSON.parse(rec))));
    if (/^worker:/.test(name) && type === "string" && value.startsWith("{")) value = JSON.stringify(normRunAt(JSON.parse(value)));
    out[name] = { type, value };
  }
  return out;
}

function normRecord(rec) {
  if (rec && rec.exception === "Worker Timeout (killed manually)") {
    return { ...rec, backtrace: ["<killed by>", rec.backtrace[1], "<cleaner>"], failed_at: "<failed_at>" };
  }
  // A failure reported during the scenario carries the server's clock, and the
  // two runs may fall in different seconds: the time must be JavaScript's
  // Date text of a moment within the last minutes, and is then compared as such.
  if (rec && typeof rec.failed_at === "string" && recent(rec.failed_at)) return { ...rec, failed_at: "<recent>" };
  return rec;
}

function recent(text) {
  const m = /^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4}(?= \(.+\)$)/.exec(text);
  const at = m ? Date.parse(m[0]) : NaN;
  return Number.isFinite(at) && Math.abs(Date.now() - at) < 300000;
}

function normRunAt(rec) {
  return rec && typeof rec === "object" && rec.run_at ? { ...rec, run_at: "<run_at>" } : rec;
}

async function settle(p) {
  try {
    return { ok: await p };
  } catch (e) {
    return { error: e.message };
  }
}

/** The scenario, on `queue` (either implementation) over namespace `n`. */
async function scenario(queue, n, base) {
  const out = {};
  const log = async (name, p) => {
    out[name] = await settle(p);
  };
  const tq = (cmd, ...args) => r.call(cmd, n, ...args);

  await log("enqueue 1", queue.enqueue("alpha", "Add", [1, 2]));
  await log("enqueue tricky", queue.enqueue("alpha", "Add", TRICKY));
  await log("enqueue again", queue.enqueue("alpha", "Add", [1, 2]));
  await log("enqueue not an array", queue.enqueue("beta", "Add", 5));
  await log("enqueue no args", queue.enqueue("beta", "Sub"));
  for (let i = 0; i < 5; i++) await queue.enqueue("gamma", i % 2 ? "Add" : "Sub", [i]);
  await log("unique", queue.enqueue("uq", "Unique", [1]));
  await log("unique twin", queue.enqueue("uq", "Unique", [1]));
  await log("unique other", queue.enqueue("uq", "Unique", [2]));
  await log("unique short", queue.enqueue("uq", "UniqueShort", [1]));
  await log("unique short twin", queue.enqueue("uq", "UniqueShort", [1]));

  const t1 = base + 3600000 + 400; // rounds down
  const t2 = base + 7200000 + 500; // rounds up
  await log("enqueueAt t1", queue.enqueueAt(t1, "later", "Add", [1]));
  await log("enqueueAt t2", queue.enqueueAt(t2, "later", "Add", [1]));
  await log("enqueueAt t2 tricky", queue.enqueueAt(t2, "later", "Add", TRICKY));
  await log("enqueueAt t1 other", queue.enqueueAt(t1, "other", "Add", 1));
  await log("enqueueAt duplicate", queue.enqueueAt(t1 + 99, "later", "Add", [1]));
  await log("enqueueAt duplicate suppressed", queue.enqueueAt(t1, "later", "Add", [1], true));

  await log("queues", queue.queues().then((q) => q.sort()));
  for (const q of ["alpha", "beta", "gamma", "uq", "nope"]) {
    await log(`length ${q}`, queue.length(q));
    await log(`queued ${q}`, queue.queued(q, 0, -1));
  }
  await log("queued 1..2", queue.queued("gamma", 1, 2));
  await log("scheduledAt", queue.scheduledAt("later", "Add", [1]).then((t) => t.sort()));
  await log("scheduledAt none", queue.scheduledAt("later", "Add", [9]));
  await log("timestamps", queue.timestamps());
  for (const at of [t1, t2, t1 - 400, t1 + 100000]) await log(`delayedAt ${at - base}`, queue.delayedAt(at));
  await log("allDelayed", queue.allDelayed());

  await log("del", queue.del("alpha", "Add", [1, 2]));
  await log("del count", queue.del("gamma", "Sub", [0], 1));
  await log("del none", queue.del("alpha", "Nope"));
  await log("delByFunction", queue.delByFunction("gamma", "Add"));
  await log("queued gamma after", queue.queued("gamma", 0, -1));
  await log("delDelayed", queue.delDelayed("later", "Add", [1]).then((t) => t.sort()));
  await log("delDelayed none", queue.delDelayed("later", "Add", [9]));
  await log("scheduledAt after delDelayed", queue.scheduledAt("later", "Add", [1]));

  // Workers, through tq's commands on both namespaces (the same data).
  await tq("TQ.POP", "host:1", "beta");
  const [, , d2] = await tq("TQ.POP", "host:2", "beta");
  await tq("TQ.FAIL", "host:2", String(d2), "TypeError", "boom", '["at x"]');
  await tq("TQ.POP", "host:3", "gamma");
  await log("workers", queue.workers());
  await log("workingOn", queue.workingOn("host:1", "beta").then((s) => normRunAt(JSON.parse(s))));
  await log("workingOn none", queue.workingOn("host:2", "beta"));
  await log(
    "allWorkingOn",
    queue.allWorkingOn().then((all) => Object.fromEntries(Object.entries(all).map(([k, v]) => [k, normRunAt(v)]))),
  );
  await log("stats", queue.stats());
  await log("locks", queue.locks().then((l) => Object.keys(l).sort()));
  await log("delLock", queue.delLock("lock:Unique:uq:[2]"));
  await log("delLock none", queue.delLock("lock:Unique:uq:[9]"));

  // Failed jobs.
  const rec = (i) =>
    JSON.stringify({
      worker: "host:9",
      queue: "alpha",
      payload: { class: "Add", queue: "alpha", args: [i] },
      exception: "Error",
      error: `e${i}`,
      backtrace: [],
      failed_at: "Thu Jan 01 2026 00:00:00 GMT+0000 (Coordinated Universal Time)",
    });
  for (let i = 0; i < 4; i++) await r.rpush(`${n}:failed`, rec(i));
  await log("failedCount", queue.failedCount());
  const failed = await queue.failed(0, -1);
  out.failed = { ok: failed.map(normRecord) };
  await log("failed 1..2", queue.failed(1, 2).then((l) => l.map(normRecord)));
  await log("removeFailed", queue.removeFailed(failed[1]));
  await log("removeFailed again", queue.removeFailed(failed[1]));
  await log("retryAndRemoveFailed", queue.retryAndRemoveFailed(failed[2]));
  await log("retryAndRemoveFailed again", queue.retryAndRemoveFailed(failed[2]));
  await log("queued alpha after retry", queue.queued("alpha", 0, -1));

  await log("forceCleanWorker", queue.forceCleanWorker("host:1").then(normRecord));
  await log("forceCleanWorker idle", queue.forceCleanWorker("host:2").then(normRecord));
  await log("cleanOldWorkers", queue.cleanOldWorkers(0).then((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, normRecord(v)]))));
  await log("workers after cleaning", queue.workers());

  await r.set(`${n}:resque_scheduler_leader_lock`, "sched:1");
  await log("leader", queue.leader());
  await log("leaderKey", Promise.resolve(queue.leaderKey().slice(n.length)));
  await log("encode", Promise.resolve(queue.encode("q", "C", [1, { a: 2 }])));

  await log("delQueue", queue.delQueue("beta"));
  await log("queues after delQueue", queue.queues().then((q) => q.sort()));
  await log("length after delQueue", queue.length("beta"));
  return out;
}

test("Queue answers and writes as node-resque's Queue does", async (t) => {
  const a = ns("nr");
  const b = ns("tq");
  const nrQueue = new NR.Queue({ connection: server.connection(a) }, jobs);
  const tqQueue = new TQ.Queue({ connection: server.connection(b) }, jobs);
  const errors = [];
  nrQueue.on("error", (e) => errors.push(`node-resque: ${e}`));
  tqQueue.on("error", (e) => errors.push(`tq: ${e}`));
  t.after(() => Promise.all([nrQueue.end(), tqQueue.end()]));
  await nrQueue.connect();
  await tqQueue.connect();
  const [s] = await r.time();
  const base = (Number(s) + 10) * 1000;
  const want = await scenario(nrQueue, a, base);
  const got = await scenario(tqQueue, b, base);
  // node-resque emits an error for forceCleanWorker of a worker it cannot find; so does tq.
  for (const name of Object.keys(want)) {
    assert.deepEqual(got[name], want[name], `${name}: tq-resque ${util.inspect(got[name], { depth: 6 })} vs node-resque ${util.inspect(want[name], { depth: 6 })}`);
  }
  assert.deepEqual(Object.keys(got), Object.keys(want));
  const sa = await snapshot(a);
  const sb = await snapshot(b);
  const names = [...new Set([...Object.keys(sa), ...Object.keys(sb)])].sort();
  const differ = names.filter((k) => !util.isDeepStrictEqual(sa[k], sb[k]));
  // Intended differences, all from node-resque's forceCleanWorker: it
  // deletes `worker:<name>` where the record is `worker:<name>:<queues>`, so
  // the in-flight records of the workers it cleaned stay behind (TQ.FORCECLEAN
  // removes them), and it counts a failure for a worker that held no job.
  assert.deepEqual(differ, ["stat:failed", "worker:host:1:beta", "worker:host:3:gamma"], "keys that differ");
  assert.equal(sb["worker:host:1:beta"], undefined);
  assert.equal(sb["worker:host:3:gamma"], undefined);
  assert.equal(Number(sa["stat:failed"].value), Number(sb["stat:failed"].value) + 1, "node-resque counts the idle worker");
});

test("enqueueIn counts from now; a delay already past files the job due at once", async (t) => {
  const n = ns("in");
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  t.after(() => queue.end());
  await queue.connect();
  const [s] = await r.time();
  assert.equal(await queue.enqueueIn(60000, "q", "Add", [1]), true);
  const [at] = await queue.scheduledAt("q", "Add", [1]);
  assert.ok(Math.abs(at - (Number(s) + 60)) <= 1, `bucket ${at} is about 60 s from ${s}`);
  await assert.rejects(queue.enqueueIn(60000, "q", "Add", [1]).then(() => queue.enqueueAt(at * 1000, "q", "Add", [1])), {
    message: "Job already enqueued at this time with same arguments",
  });
  assert.equal(await queue.enqueueIn(-5000, "q", "Add", [2]), true);
  const [past] = await queue.scheduledAt("q", "Add", [2]);
  assert.ok(past <= Number(s), "a negative delay files the job in a past bucket");
});

test("details gives ActionHero's api.tasks.details() shape in one read", async (t) => {
  const n = ns("details");
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  t.after(() => queue.end());
  await queue.connect();
  await queue.enqueue("a", "Add", [1]);
  await queue.enqueue("a", "Add", [2]);
  await queue.enqueue("b", "Add", [3]);
  await r.call("TQ.POP", n, "w:1", "b");
  const d = await queue.details();
  assert.deepEqual(d.queues, { a: { length: 2 }, b: { length: 0 } });
  assert.deepEqual(Object.keys(d.workers), ["w:1"]);
  assert.equal(d.workers["w:1"].payload.args[0], 3);
  assert.deepEqual(d.stats, {});
  assert.equal(d.leader, null);
});

test("connect emits an error when the module is not loaded", async (t) => {
  const plain = await startServer([], { module: false });
  t.after(() => plain.stop());
  const queue = new TQ.Queue({ connection: plain.connection(ns("plain")) });
  const errors = [];
  queue.on("error", (e) => errors.push(e));
  t.after(() => queue.end());
  await queue.connect();
  assert.equal(errors.length, 1, "one error event");
  assert.match(errors[0].message, /the tq module is not loaded/);
  assert.equal(queue.connection.connected, false);
});

test("connect emits an error when the user may not run COMMAND", async (t) => {
  const n = ns("acl");
  await r.call("ACL", "SETUSER", "nocmd", "on", "nopass", "~*", "+@all", "-command");
  const queue = new TQ.Queue({ connection: { ...server.connection(n), options: { username: "nocmd", password: "x" } } });
  const errors = [];
  queue.on("error", (e) => errors.push(e));
  t.after(() => queue.end());
  await queue.connect();
  assert.equal(errors.length, 1, "one error event");
  assert.match(String(errors[0].message), /NOPERM|command/i);
});
