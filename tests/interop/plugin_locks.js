"use strict";
// node-resque's QueueLock and JobLock plugins and tq's UNIQUE / JOBLOCK
// options use the same keys, so whichever takes a lock first blocks the other.

const L = require("./lib");
const { assert } = L;

L.main(async () => {
  const r = L.redis();
  let running = 0;
  const ran = [];
  const slowJob = {
    plugins: [L.NR.Plugins.JobLock],
    pluginOptions: { JobLock: { reEnqueue: false } },
    perform: async function (n) {
      running++;
      ran.push(n);
      await L.sleep(1500);
      running--;
    },
  };
  const jobs = {
    Unique: { plugins: [L.NR.Plugins.QueueLock], pluginOptions: { QueueLock: { lockTimeout: 60 } }, perform: async () => {} },
    Slow: slowJob,
  };
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }, jobs));
  L.collectErrors(queue, "queue");
  await queue.connect();

  // ------------------------------------------------ QueueLock vs UNIQUE
  // node-resque first: tq refuses the twin.
  assert.equal(await queue.enqueue("uq", "Unique", [1]), true);
  const lockKey = L.key("lock", "Unique", "uq", "[1]");
  assert.ok(await r.exists(lockKey), "node-resque's QueueLock key");
  assert.equal(await r.call("TQ.ENQUEUE", L.namespace, "uq", "Unique", "[1]", "UNIQUE"), null);
  assert.equal(await r.llen(L.key("queue", "uq")), 1);
  // The pop by tq releases the lock; tq enqueues once, node-resque is refused.
  const [, , d1] = await r.call("TQ.POP", L.namespace, "tq:1", "uq");
  assert.equal(await r.exists(lockKey), 0, "TQ.POP released the QueueLock");
  await r.call("TQ.ACK", L.namespace, "tq:1", d1);
  assert.equal(await r.call("TQ.ENQUEUE", L.namespace, "uq", "Unique", "[1]", "UNIQUE", "60000"), 1);
  assert.equal(await queue.enqueue("uq", "Unique", [1]), false, "node-resque sees tq's lock");
  assert.equal(await r.llen(L.key("queue", "uq")), 1);
  // Other args are another job for both.
  assert.equal(await queue.enqueue("uq", "Unique", [2]), true);
  assert.equal(await r.call("TQ.ENQUEUE", L.namespace, "uq", "Unique", "[3]", "UNIQUE"), 3);

  // ------------------------------------------------ JobLock vs JOBLOCK
  // A node-resque Worker runs Slow [7] (holding its JobLock); tq may not run
  // the identical job meanwhile, but may run Slow [8].
  await queue.enqueue("slow", "Slow", [7]);
  const worker = L.track(new L.NR.Worker({ connection: L.connection(), queues: ["slow"], timeout: 50 }, jobs));
  L.collectErrors(worker, "worker");
  await worker.connect();
  worker.start();
  await L.waitFor("the node-resque worker to start Slow [7]", async () => running === 1);
  const jobLockKey = L.key("workerslock", "Slow", "slow", "[7]");
  assert.ok(await r.exists(jobLockKey), "node-resque's JobLock key");
  // Stop the worker polling; it finishes Slow [7] meanwhile.
  const ending = worker.end();
  await r.call("TQ.ENQUEUE", L.namespace, "slow", "Slow", "[7]");
  await r.call("TQ.ENQUEUE", L.namespace, "slow", "Slow", "[8]");
  const got = await r.call("TQ.POP", L.namespace, "tq:2", "slow", "JOBLOCK", "60000");
  assert.equal(got[1], '{"class":"Slow","queue":"slow","args":[8]}', "the locked twin was skipped");
  assert.equal(await r.call("TQ.POP", L.namespace, "tq:3", "slow", "JOBLOCK", "60000"), null);
  assert.equal(await r.llen(L.key("queue", "slow")), 1, "the twin waits in its queue");
  assert.equal(running, 1, "the checks above ran while node-resque held its JobLock");
  await ending;
  await L.waitFor("node-resque to finish Slow [7]", async () => running === 0 && !(await r.exists(jobLockKey)));
  // Now tq takes the job and its lock; a node-resque Worker must not run it.
  const got2 = await r.call("TQ.POP", L.namespace, "tq:3", "slow", "JOBLOCK", "60000");
  assert.equal(got2[1], '{"class":"Slow","queue":"slow","args":[7]}');
  assert.ok(await r.exists(jobLockKey), "tq's JobLock key");
  await queue.enqueue("slow", "Slow", [7]);
  const worker2 = L.track(new L.NR.Worker({ connection: L.connection(), queues: ["slow"], timeout: 50 }, jobs));
  L.collectErrors(worker2, "worker2");
  await worker2.connect();
  worker2.start();
  // node-resque's JobLock (reEnqueue false) drops the job it cannot lock.
  await L.waitFor("node-resque to take the twin", async () => (await r.llen(L.key("queue", "slow"))) === 0);
  await L.sleep(200);
  assert.deepEqual(ran, [7], "node-resque did not run the job tq holds the lock of");
  await worker2.end();
  // Only tq's own completion releases its lock.
  await r.call("TQ.ACK", L.namespace, "tq:2", got[2]);
  assert.ok(await r.exists(jobLockKey));
  await r.call("TQ.ACK", L.namespace, "tq:3", got2[2]);
  assert.equal(await r.exists(jobLockKey), 0);
  L.assertNoEmittedErrors();
});
