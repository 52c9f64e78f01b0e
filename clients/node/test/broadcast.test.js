"use strict";
// Broadcasts per server: a MultiWorker's first slot takes the broadcasts
// for its process (the others heartbeat with NOBROADCAST), so a broadcast
// runs once on each server, not once per slot. The seed table's four kinds:
// once / periodically × one server / all servers, with delayed ones.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const Redis = require("ioredis");
const TQ = require("..");
const { startServer, waitFor } = require("../support/helpers");

let server;
let r;
before(async () => {
  server = await startServer();
  r = new Redis(server.port, "127.0.0.1");
});
after(async () => {
  r.disconnect();
  await server.stop();
});

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** Two servers (MultiWorkers with 3 slots each) recording each run as [server, class, args]. */
async function twoServers(t, n) {
  const runs = [];
  const jobs = (serverName) => {
    const record = (cls) =>
      async function (...args) {
        runs.push([serverName, cls, JSON.stringify(args), this.name]);
      };
    return { Flush: { perform: record("Flush") }, Work: { perform: record("Work") } };
  };
  const multis = ["alpha", "beta"].map(
    (name) =>
      new TQ.MultiWorker(
        { connection: server.connection(n), name, queues: ["q"], timeout: 100, checkTimeout: 50, minTaskProcessors: 3, maxTaskProcessors: 3, maxEventLoopDelay: 1000 },
        jobs(name),
      ),
  );
  const errors = [];
  for (const m of multis) {
    m.on("error", (e) => errors.push(e));
    m.start();
  }
  t.after(() => Promise.all(multis.map((m) => m.end())));
  await waitFor("six slots", () => multis.every((m) => m.workers.length === 3 && m.workers.every((w) => w.running)), 20000);
  // Alive for broadcasts: one slot per server.
  await waitFor("one live worker per server", async () => (await r.zcard(`${n}:tq:alive`)) === 2, 20000);
  return { runs, multis, errors };
}

const of = (runs, cls, args) => runs.filter(([, c, a]) => c === cls && a === JSON.stringify(args)).map(([s]) => s).sort();

test("a broadcast runs once on each server, not once per slot; a normal job on one", { timeout: 60000 }, async (t) => {
  const n = "bc-once";
  const { runs, errors } = await twoServers(t, n);
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  assert.equal(await queue.broadcast("Flush", [1]), 2, "it reached two servers");
  await queue.enqueue("q", "Work", [1]);
  await waitFor("the broadcast on both servers", () => of(runs, "Flush", [1]).length === 2 && of(runs, "Work", [1]).length === 1);
  await sleep(300);
  assert.deepEqual(of(runs, "Flush", [1]), ["alpha", "beta"], "once on each server");
  assert.equal(of(runs, "Work", [1]).length, 1, "the normal job once, on one server");
  // Taken by each server's first slot.
  for (const [, c, , w] of runs.filter(([, c]) => c === "Flush")) assert.match(w, /\+1$/, `${c} ran on ${w}`);
  assert.deepEqual(errors, []);
});

test("delayed broadcasts run once on each server at their time", { timeout: 60000 }, async (t) => {
  const n = "bc-delayed";
  const { runs, errors } = await twoServers(t, n);
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  const [s, us] = await r.time();
  const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
  assert.equal(await queue.broadcastIn(300, "q", "Flush", ["in"]), true);
  assert.equal(await queue.broadcastAt(now + 400, "q", "Flush", ["at"]), true);
  await queue.enqueueIn(300, "q", "Work", ["in"]); // delayed, one server
  assert.equal(of(runs, "Flush", ["in"]).length, 0, "not before its time");
  await waitFor("both delayed broadcasts", () => of(runs, "Flush", ["in"]).length === 2 && of(runs, "Flush", ["at"]).length === 2, 20000);
  await waitFor("the delayed job", () => of(runs, "Work", ["in"]).length === 1, 20000);
  await sleep(300);
  assert.deepEqual(of(runs, "Flush", ["in"]), ["alpha", "beta"]);
  assert.deepEqual(of(runs, "Flush", ["at"]), ["alpha", "beta"]);
  assert.equal(of(runs, "Work", ["in"]).length, 1);
  assert.deepEqual(errors, []);
});

test("a periodic broadcast runs on each server every period; a periodic job on one; both stop", { timeout: 60000 }, async (t) => {
  const n = "bc-periodic";
  const { runs, errors } = await twoServers(t, n);
  const queue = new TQ.Queue({ connection: server.connection(n) });
  await queue.connect();
  t.after(() => queue.end());
  assert.equal(await queue.recurBroadcast("q", "Flush", 150, ["tick"]), 1);
  assert.equal(await queue.recur("q", "Work", 150, ["tick"]), 1);
  await waitFor("three periods", () => of(runs, "Flush", ["tick"]).length >= 6 && of(runs, "Work", ["tick"]).length >= 3, 20000);
  assert.equal(await queue.unrecurBroadcast("q", "Flush", ["tick"]), 1);
  assert.equal(await queue.unrecur("q", "Work", ["tick"]), 1);
  await sleep(500); // an instance under way finishes
  const flush = of(runs, "Flush", ["tick"]);
  const work = of(runs, "Work", ["tick"]);
  const alpha = flush.filter((s) => s === "alpha").length;
  const beta = flush.length - alpha;
  // Each period reaches both servers once (the one running at the stop may
  // have reached them already).
  assert.ok(Math.abs(alpha - beta) <= 1 && alpha >= 3 && beta >= 3, `alpha ${alpha}, beta ${beta}`);
  // The periodic job: one instance per period, on either server.
  const perPeriod = work.length;
  await sleep(500);
  assert.equal(of(runs, "Flush", ["tick"]).length, flush.length, "stopped");
  assert.equal(of(runs, "Work", ["tick"]).length, perPeriod, "stopped");
  assert.ok(perPeriod * 2 <= flush.length + 2, `the periodic job ran once a period (${perPeriod} vs ${flush.length} broadcast runs)`);
  assert.deepEqual(errors, []);
});
