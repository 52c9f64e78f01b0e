"use strict";
// Both kinds of worker on one queue at the same time. 2000 jobs, half
// written by TQ.ENQUEUE and half by node-resque's queue.enqueue (interleaved,
// most of them while the workers run), are consumed concurrently by a
// node-resque MultiWorker, a plain node-resque Worker and two TQ.POP/TQ.ACK
// loops with their own worker names. A ledger keyed by each job's unique id
// shows every job ran exactly once, and the shared counters add up.

const L = require("./lib");
const { assert } = L;

const TOTAL = 2000;
const QUEUE = "mixed";

L.main(async () => {
  const r = L.redis();
  const ledger = new Map(); // id -> [runner, ...]
  const strange = [];
  const record = (job, runner) => {
    const id = job && job.args && job.args[0] && job.args[0].id;
    if (typeof id !== "string") {
      strange.push([runner, job]);
      return;
    }
    if (!ledger.has(id)) ledger.set(id, []);
    ledger.get(id).push(runner);
  };
  // A job takes a moment, so that the consumers interleave.
  const work = () => new Promise((res) => setTimeout(res, Math.random() < 0.5 ? 0 : 1));

  const jobs = {
    Track: {
      perform: async function (arg) {
        record({ args: [arg] }, `node:${this.name}`);
        await work();
        return arg.id;
      },
    },
  };

  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  let nextTq = 0;
  let nextNr = 0;
  const enqueueBatch = async (n) => {
    const pipe = r.pipeline();
    const nr = [];
    for (let i = 0; i < n; i++) {
      if (i % 2 === 0) {
        const id = `tq-${nextTq++}`;
        pipe.call("TQ.ENQUEUE", L.namespace, QUEUE, "Track", JSON.stringify({ id, via: "tq", n: i / 7 }));
      } else {
        const id = `nr-${nextNr++}`;
        nr.push(queue.enqueue(QUEUE, "Track", [{ id, via: "node-resque", n: i / 7 }]));
      }
    }
    const results = await pipe.exec();
    for (const [err] of results) assert.equal(err, null, `TQ.ENQUEUE in pipeline: ${err}`);
    await Promise.all(nr);
  };

  // A first slice before anyone runs.
  await enqueueBatch(400);

  const multi = L.track(
    new L.NR.MultiWorker(
      {
        connection: L.connection(),
        queues: [QUEUE],
        minTaskProcessors: 2,
        maxTaskProcessors: 6,
        timeout: 50,
        checkTimeout: 100,
        maxEventLoopDelay: 100,
        name: "nodemulti",
      },
      jobs,
    ),
  );
  L.collectErrors(multi, "multiWorker");
  const solo = L.track(new L.NR.Worker({ connection: L.connection(), queues: [QUEUE], timeout: 50, name: "nodehost:solo" }, jobs));
  L.collectErrors(solo, "worker");
  await solo.connect();

  let stop = false;
  const loopErrors = [];
  const tqLoop = async (name) => {
    const conn = L.redis();
    let held = false;
    try {
      while (!stop) {
        const reply = await conn.call("TQ.POP", L.namespace, name, QUEUE);
        if (!reply) {
          await L.sleep(5);
          continue;
        }
        held = true;
        assert.equal(reply[0], QUEUE);
        const job = JSON.parse(reply[1]);
        assert.equal(job.class, "Track");
        record(job, `tq:${name}`);
        await work();
        assert.equal(await conn.call("TQ.ACK", L.namespace, name, reply[2]), "OK");
        held = false;
      }
    } catch (e) {
      loopErrors.push(`${name}: ${e.stack || e}`);
      if (held) stop = true;
    }
  };

  multi.start();
  await solo.start();
  const loops = [tqLoop("tqloop:1"), tqLoop("tqloop:2")];

  // The rest while everything runs.
  while (nextTq + nextNr < TOTAL) {
    await enqueueBatch(Math.min(80, TOTAL - nextTq - nextNr));
    await L.sleep(2);
  }
  assert.equal(nextTq, TOTAL / 2);
  assert.equal(nextNr, TOTAL / 2);

  try {
    await L.waitFor(`${TOTAL} jobs run`, () => ledger.size >= TOTAL || loopErrors.length > 0, 60000);
    await L.waitFor(`stat:processed = ${TOTAL}`, async () => Number(await r.get(L.key("stat:processed"))) >= TOTAL, 30000);
    // A little longer: anything that would run a job twice has its chance.
    await L.sleep(300);
  } finally {
    stop = true;
    await Promise.all(loops);
    await multi.end();
    await solo.end();
  }
  assert.deepEqual(loopErrors, [], "TQ.POP/TQ.ACK loop errors");
  assert.deepEqual(strange, [], "jobs without an id");

  // Exactly once.
  const twice = [...ledger.entries()].filter(([, runners]) => runners.length !== 1);
  assert.deepEqual(twice.slice(0, 20), [], `${twice.length} jobs ran more than once`);
  const want = new Set([...Array(TOTAL / 2).keys()].flatMap((i) => [`tq-${i}`, `nr-${i}`]));
  const missing = [...want].filter((id) => !ledger.has(id));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} jobs never ran`);
  assert.equal(ledger.size, TOTAL);

  const by = {};
  for (const [, [runner]] of ledger) by[runner] = (by[runner] || 0) + 1;
  const tqRan = Object.entries(by).filter(([k]) => k.startsWith("tq:")).reduce((a, [, v]) => a + v, 0);
  const nodeRan = TOTAL - tqRan;
  console.log(`runs by consumer: ${JSON.stringify(by)}`);
  assert.ok(tqRan > 0, "the TQ.POP loops ran jobs");
  assert.ok(nodeRan > 0, "the node-resque workers ran jobs");

  // Shared counters and leftovers.
  assert.equal(await r.get(L.key("stat:processed")), String(TOTAL), "stat:processed counts both kinds of worker");
  const perWorker = await L.keys(r, "stat:processed:tqloop:*");
  let tqCounted = 0;
  for (const k of perWorker) tqCounted += Number(await r.get(k));
  assert.equal(tqCounted, tqRan, "stat:processed:<tq worker> adds up to the TQ.POP loops' share");
  assert.equal(await queue.length(QUEUE), 0);
  assert.equal(await queue.failedCount(), 0);
  for (const name of ["tqloop:1", "tqloop:2"]) {
    // No job left in flight: TQ.ACK has nothing to acknowledge.
    // A pop gets nil: the name holds no job it would hand out again.
    assert.equal(await r.call("TQ.POP", L.namespace, name, "no-such-queue"), null, `${name} holds no job`);
  }
  assert.deepEqual(await L.keys(r, `worker:tqloop:*`), [], "no tq in-flight record left");
  L.assertNoEmittedErrors();
});
