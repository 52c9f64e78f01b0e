"use strict";
// `tq work` (started by tests/interop.rs, worker name $TQ_NAME, handlers
// writing $LEDGER) runs jobs node-resque's Queue wrote: enqueue and enqueueIn
// (promoted by the module's timer, no node-resque scheduler). Each command
// gets the args exactly as node-resque stored them on stdin; a failing
// command leaves a failure record node-resque's Queue API reads and retries.

const fs = require("node:fs");
const L = require("./lib");
const { assert } = L;

const LEDGER = process.env.LEDGER;
const NAME = process.env.TQ_NAME;
const ledger = () => (fs.existsSync(LEDGER) ? fs.readFileSync(LEDGER, "utf8").split("\n").filter(Boolean) : []);

L.main(async () => {
  assert.ok(LEDGER && NAME, "LEDGER and TQ_NAME are set");
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  // Arguments with everything JSON text can differ on.
  const argsOf = (i) => [{ i, s: `é😀 \u2028 "q" \\ /`, n: i / 7, big: 1e21, neg: -0.5, nested: [null, true, { k: [] }] }, `#${i}`];
  const N = 60;
  const expected = new Map(); // JSON args -> [class, queue]
  for (let i = 0; i < N; i++) {
    const q = i % 2 === 0 ? "high" : "low";
    await queue.enqueue(q, "Add", argsOf(i));
    expected.set(JSON.stringify(argsOf(i)), ["Add", q]);
  }
  for (let i = N; i < N + 5; i++) {
    await queue.enqueueIn(300 + 50 * i - 50 * N, "low", "Add", argsOf(i));
    expected.set(JSON.stringify(argsOf(i)), ["Add", "low"]);
  }
  await queue.enqueue("low", "Fail", ["bad", 1]);

  await L.waitFor(`${expected.size} jobs run by tq work`, () => ledger().length >= expected.size, 60000);
  await L.waitFor("the failing job recorded", async () => (await queue.failedCount()) === 1, 30000);
  // A handler writes its ledger line before it exits and tq work acknowledges the job.
  await L.waitFor("every job acknowledged", async () => (await queue.stats()).processed === String(expected.size), 30000);

  // Every job once, with node-resque's exact args text, env as documented.
  const seen = new Map();
  for (const line of ledger()) {
    const [cls, q, worker, deliveries, ns, ...rest] = line.split(" ");
    const args = rest.join(" ");
    assert.ok(expected.has(args), `unexpected args on stdin: ${args}`);
    assert.deepEqual([cls, q], expected.get(args), `class and queue of ${args}`);
    assert.ok(worker.startsWith(`${NAME}+`), `TQ_WORKER ${worker}`);
    assert.equal(deliveries, "1");
    assert.equal(ns, L.namespace);
    assert.ok(!seen.has(args), `ran twice: ${args}`);
    seen.set(args, true);
  }
  assert.equal(seen.size, expected.size);

  // node-resque's view: stats, workers, the failure record.
  const stats = await queue.stats();
  assert.equal(stats.processed, String(expected.size));
  assert.equal(stats.failed, "1");
  const workers = await queue.workers();
  const mine = Object.keys(workers).filter((w) => w.startsWith(`${NAME}+`));
  assert.ok(mine.length >= 1, `node-resque lists the tq slots: ${JSON.stringify(workers)}`);
  for (const w of mine) assert.equal(workers[w], "high,low");
  const [failed] = await queue.failed(0, -1);
  assert.equal(failed.exception, "ExitStatus");
  assert.equal(failed.error, "bad input: [\"bad\",1]");
  assert.deepEqual(failed.payload, { class: "Fail", queue: "low", args: ["bad", 1] });
  assert.ok(failed.worker.startsWith(`${NAME}+`));
  assert.equal(failed.queue, "low");
  assert.ok(Array.isArray(failed.backtrace) && /exited with status 4/.test(failed.backtrace[0]), JSON.stringify(failed));
  // Retried from node-resque: tq work runs it again (and it fails again).
  await queue.retryAndRemoveFailed(failed);
  await L.waitFor("the retried job to fail again", async () => (await queue.stats()).failed === "2", 30000);
  assert.equal(await queue.failedCount(), 1);
  assert.equal(await queue.length("high"), 0);
  assert.equal(await queue.length("low"), 0);
  assert.deepEqual(await r.zrange(L.key("delayed_queue_schedule"), 0, -1), []);
  L.assertNoEmittedErrors();
});
