"use strict";
// Scheduler: leader election through TQ.LEADER/TQ.RESIGN, node-resque's
// stuck-worker check and events, promotion that is never early; periodic
// tasks through TQ.RECUR.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const NR = require("node-resque");
const TQ = require("..");
const { startServer, waitFor, ns, sleep } = require("../support/helpers");

let server;
let r;
before(async () => {
  server = await startServer(["auto-promote", "no"]); // promotion by the Scheduler's TQ.PROMOTE only
  r = server.redis();
});
after(async () => {
  r.disconnect();
  await server.stop();
});

function record(emitter, names) {
  const seen = [];
  for (const name of names) emitter.on(name, (...args) => seen.push([name, ...args]));
  return seen;
}

test("one leader at a time; it hands over when it ends", { timeout: 30000 }, async (t) => {
  const n = ns("leader");
  const a = new TQ.Scheduler({ connection: server.connection(n), name: "sched:a", timeout: 50 });
  const b = new TQ.Scheduler({ connection: server.connection(n), name: "sched:b", timeout: 50 });
  const seenA = record(a, ["start", "leader", "end", "error"]);
  const seenB = record(b, ["start", "leader", "end", "error"]);
  t.after(async () => {
    if (a.running) await a.end();
    if (b.running) await b.end();
  });
  await a.connect();
  await b.connect();
  await a.start();
  await waitFor("a to lead", () => a.leader);
  await b.start();
  await sleep(300); // several polls of b
  assert.equal(b.leader, false, "b does not lead while a does");
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  assert.equal(await queue.leader(), "sched:a");
  assert.ok((await r.pttl(queue.leaderKey())) > 170000, "the lock's ttl is leaderLockTimeout (180 s)");
  await a.end();
  await waitFor("b to lead once a resigned", () => b.leader);
  assert.equal(await queue.leader(), "sched:b");
  await b.end();
  assert.equal(await queue.leader(), null, "the last leader resigned");
  assert.deepEqual(seenA.map(([e]) => e), ["start", "leader", "end"]);
  assert.deepEqual(seenB.map(([e]) => e), ["start", "leader", "end"]);
});

test("due delayed jobs are promoted by the leader, and never before their time", { timeout: 30000 }, async (t) => {
  const n = ns("promote");
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  const [s, us] = await r.time();
  const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  await queue.enqueueAt(now - 1000, "q", "past", []);
  await queue.enqueueAt(now + 1400, "q", "soon", []);
  const scheduler = new TQ.Scheduler({ connection: server.connection(n), timeout: 20 });
  await scheduler.connect();
  t.after(() => scheduler.running && scheduler.end());
  await scheduler.start();
  await waitFor("the past job", async () => (await queue.length("q")) === 1);
  // Poll until the soon job arrives; each look notes the server time.
  let arrivedAt = null;
  while (arrivedAt === null) {
    const [len, [ss, uss]] = await Promise.all([queue.length("q"), r.time()]);
    const at = Number(ss) * 1000 + Math.floor(Number(uss) / 1000);
    if (len === 2) arrivedAt = at;
    await sleep(10);
  }
  assert.ok(arrivedAt >= now + 1400, `promoted at ${arrivedAt - now} ms, not before 1400`);
  await scheduler.end();
  assert.deepEqual((await queue.queued("q", 0, -1)).map((j) => j.class), ["past", "soon"]);
});

test("stuck workers: node-resque's check, events and failure records", { timeout: 30000 }, async () => {
  const results = [];
  for (const Impl of [NR, TQ]) {
    const n = ns(`stuck-${Impl === NR ? "nr" : "tq"}`);
    // The same data: a worker holding a job whose ping is two hours old, and a live one.
    await r.call("TQ.ENQUEUE", n, "q", "job", "[1]");
    await r.call("TQ.POP", n, "dead:1", "q");
    const old = Math.round(Date.now() / 1000) - 7200;
    await r.set(`${n}:worker:ping:dead:1`, JSON.stringify({ time: old, name: "dead:1", queues: "q" }));
    await r.set(`${n}:worker:ping:live:1`, JSON.stringify({ time: Math.round(Date.now() / 1000), name: "live:1", queues: "q" }));
    await r.sadd(`${n}:workers`, "live:1:q");
    const scheduler = new Impl.Scheduler({ connection: server.connection(n), timeout: 20, stuckWorkerTimeout: 60000 });
    const seen = record(scheduler, ["cleanStuckWorker", "error"]);
    await scheduler.connect();
    await scheduler.start();
    await waitFor("the dead worker cleaned", () => seen.length > 0);
    await scheduler.end();
    const failed = JSON.parse(await r.lindex(`${n}:failed`, 0));
    const norm = (p) => p && { ...p, backtrace: [p.backtrace[1]], failed_at: typeof p.failed_at };
    results.push({
      events: seen.map(([e, name, payload, delta]) => [e, name, norm(payload), delta >= 7200]),
      failed: norm(failed),
      workers: (await r.smembers(`${n}:workers`)).sort(),
      pings: [await r.exists(`${n}:worker:ping:dead:1`), await r.exists(`${n}:worker:ping:live:1`)],
    });
  }
  assert.deepEqual(results[1], results[0]);
  assert.equal(results[0].events[0][1], "dead:1");
});

test("periodic tasks: TQ.RECUR runs one instance at a time, again and again, until TQ.UNRECUR", { timeout: 30000 }, async (t) => {
  const timerServer = await startServer(); // the module's timer enqueues periodic runs
  t.after(() => timerServer.stop());
  const n = ns("recur");
  let runs = 0;
  let running = 0;
  let most = 0;
  const jobs = {
    tick: {
      perform: async () => {
        runs++;
        running++;
        most = Math.max(most, running);
        await sleep(50);
        running--;
      },
    },
  };
  const queue = new TQ.Queue({ connection: timerServer.connection(n) }, jobs);
  await queue.connect();
  t.after(() => queue.end());
  assert.equal(await queue.recur("q", "tick", 100), 1);
  assert.equal(await queue.recur("q", "tick", 100), 0, "registered once");
  const [task] = await queue.recurs();
  assert.deepEqual(task.job, { class: "tick", queue: "q", args: [] });
  assert.equal(task.everyMs, 100);
  const workers = [1, 2].map((i) => new TQ.Worker({ connection: timerServer.connection(n), queues: ["q"], timeout: 50, name: `host:${i}` }, jobs));
  for (const w of workers) {
    await w.connect();
    await w.start();
  }
  t.after(async () => {
    for (const w of workers) if (w.running) await w.end();
  });
  await waitFor("three runs", () => runs >= 3);
  assert.equal(await queue.unrecur("q", "tick"), 1);
  assert.deepEqual(await queue.recurs(), []);
  for (const w of workers) await w.end();
  assert.equal(most, 1, "never two instances at once");
});
