"use strict";
// Both kinds of worker on the same queues at the same time: the tq side
// (`tq work` or the Rust library Worker, started by the Rust test, appending
// "tq <args-json>" lines to $LEDGER) and a node-resque MultiWorker plus a
// plain Worker (appending "node <args-json>"). $TOTAL jobs, half written by
// TQ.ENQUEUE and half by node-resque's queue.enqueue, most while everyone
// runs, on two queues. Every job runs exactly once; the counters add up.

const fs = require("node:fs");
const L = require("./lib");
const { assert } = L;

const LEDGER = process.env.LEDGER;
const TOTAL = Number(process.env.TOTAL || 3000);
const QUEUES = ["mixed-a", "mixed-b"];
const ledger = () => (fs.existsSync(LEDGER) ? fs.readFileSync(LEDGER, "utf8").split("\n").filter(Boolean) : []);

L.main(async () => {
  assert.ok(LEDGER, "LEDGER is set");
  const r = L.redis();
  const jobs = {
    Track: {
      perform: async function (arg) {
        fs.appendFileSync(LEDGER, `node ${JSON.stringify([arg])}\n`);
        if (Math.random() < 0.3) await L.sleep(1);
      },
    },
  };
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  let next = 0;
  const enqueueBatch = async (n) => {
    const pipe = r.pipeline();
    const nr = [];
    for (let k = 0; k < n; k++) {
      const i = next++;
      const q = QUEUES[i % 2];
      if (i % 4 < 2) pipe.call("TQ.ENQUEUE", L.namespace, q, "Track", JSON.stringify([{ id: `j${i}`, via: "tq" }]));
      else nr.push(queue.enqueue(q, "Track", [{ id: `j${i}`, via: "node-resque" }]));
    }
    for (const [err] of await pipe.exec()) assert.equal(err, null);
    await Promise.all(nr);
  };
  await enqueueBatch(Math.floor(TOTAL / 5));

  const multi = L.track(
    new L.NR.MultiWorker(
      {
        connection: L.connection(),
        queues: QUEUES,
        minTaskProcessors: 1,
        maxTaskProcessors: 4,
        timeout: 20,
        checkTimeout: 100,
        maxEventLoopDelay: 100,
        name: "nodemulti",
      },
      jobs,
    ),
  );
  L.collectErrors(multi, "multiWorker");
  const solo = L.track(new L.NR.Worker({ connection: L.connection(), queues: QUEUES, timeout: 20, name: "nodehost:solo" }, jobs));
  L.collectErrors(solo, "worker");
  await solo.connect();
  multi.start();
  await solo.start();

  while (next < TOTAL) {
    await enqueueBatch(Math.min(100, TOTAL - next));
    await L.sleep(5);
  }
  try {
    await L.waitFor(`${TOTAL} ledger lines`, () => ledger().length >= TOTAL, 90000, 50);
    await L.waitFor(`stat:processed = ${TOTAL}`, async () => Number(await r.get(L.key("stat:processed"))) >= TOTAL, 30000);
    await L.sleep(500); // anything that would run a job twice has its chance
  } finally {
    await multi.end();
    await solo.end();
  }

  const runs = new Map(); // id -> [runner...]
  for (const line of ledger()) {
    const sp = line.indexOf(" ");
    const runner = line.slice(0, sp);
    const [arg] = JSON.parse(line.slice(sp + 1));
    if (!runs.has(arg.id)) runs.set(arg.id, []);
    runs.get(arg.id).push(runner);
  }
  const twice = [...runs.entries()].filter(([, v]) => v.length !== 1);
  assert.deepEqual(twice.slice(0, 20), [], `${twice.length} jobs ran more than once`);
  const missing = [...Array(TOTAL).keys()].map((i) => `j${i}`).filter((id) => !runs.has(id));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} jobs never ran`);
  const by = {};
  for (const [, [runner]] of runs) by[runner] = (by[runner] || 0) + 1;
  console.log(`runs by kind of worker: ${JSON.stringify(by)}`);
  assert.ok(by.tq > 0, "the tq side ran jobs");
  assert.ok(by.node > 0, "node-resque ran jobs");
  assert.equal(await r.get(L.key("stat:processed")), String(TOTAL));
  assert.equal(await queue.failedCount(), 0);
  for (const q of QUEUES) assert.equal(await queue.length(q), 0);
  L.assertNoEmittedErrors();
});
