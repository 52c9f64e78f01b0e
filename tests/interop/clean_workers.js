"use strict";
// node-resque's queue.cleanOldWorkers(age) / forceCleanWorker(name) on a
// worker that holds a job through TQ.POP: node-resque reads tq's in-flight
// record, moves the job to failed (with the right payload, queue and
// worker), counts stat:failed and forgets the worker; retryStuckJobs then
// re-enqueues the job byte for byte.
//
// node-resque deletes `<ns>:worker:<name>` instead of the record key
// `<ns>:worker:<name>:<queues>` and knows nothing of tq's in-flight index,
// but it unregisters the worker from `<ns>:workers`: tq takes that as "the
// job was cleaned up", so the cleaned worker can pop again and its late
// TQ.ACK is refused (the job is not counted twice).

const L = require("./lib");
const { assert, assertBytes } = L;

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();
  const enc = (q, cls, args) => queue.encode(q, cls, args);
  const args = [{ id: 1, text: "é😀", n: 0.1 }];

  // ----------------------------------------------------- cleanOldWorkers
  await r.call("TQ.ENQUEUE", L.namespace, "q", "Job", JSON.stringify(args));
  await r.call("TQ.ENQUEUE", L.namespace, "q2", "Job", "[2]");
  const [, , dOld] = await r.call("TQ.POP", L.namespace, "tqhost:old", "q");
  await L.sleep(1500);
  const [, , dYoung] = await r.call("TQ.POP", L.namespace, "tqhost:young", "q2");
  // An age between the two pops: only the old worker is cleaned.
  const cleaned = await queue.cleanOldWorkers(1000);
  assert.deepEqual(Object.keys(cleaned), ["tqhost:old"], `cleanOldWorkers result ${JSON.stringify(cleaned)}`);
  const e = cleaned["tqhost:old"];
  assert.equal(e.worker, "tqhost:old");
  assert.equal(e.queue, "q");
  assert.deepEqual(e.payload, { class: "Job", queue: "q", args });
  assert.equal(e.exception, "Worker Timeout (killed manually)");
  assert.equal(e.backtrace[1], "queue#forceCleanWorker");
  const failed = await queue.failed(0, -1);
  assert.deepEqual(failed, [e], "the job is in failed");
  assert.equal(await r.get(L.key("stat:failed")), "1");
  assert.deepEqual(await queue.workers(), { "tqhost:young": "q2" }, "the old worker is forgotten");
  const working = await queue.allWorkingOn();
  assert.deepEqual(Object.keys(working), ["tqhost:young"]);

  // The cleaned worker is free again (its queue is empty now).
  assert.equal(await r.call("TQ.POP", L.namespace, "tqhost:old", "q"), null);

  // retryStuckJobs re-enqueues it with the original bytes.
  await queue.retryStuckJobs();
  assert.equal(await queue.failedCount(), 0);
  const requeued = await r.lrangeBuffer(L.key("queue", "q"), 0, -1);
  assert.equal(requeued.length, 1);
  assertBytes(requeued[0], Buffer.from(enc("q", "Job", args)), "job re-enqueued by retryStuckJobs");

  // The worker that was cleaned finishes late: refused, nothing counted.
  await assert.rejects(r.call("TQ.ACK", L.namespace, "tqhost:old", dOld), /NOJOB .*unregistered/);
  await assert.rejects(r.call("TQ.FAIL", L.namespace, "tqhost:old", dOld, "E", "late"), /NOJOB/);
  assert.equal(await r.get(L.key("stat:processed")), null);
  assert.equal(await queue.failedCount(), 0);

  // ----------------------------------------------------- forceCleanWorker
  const e2 = await queue.forceCleanWorker("tqhost:young");
  assert.equal(e2.worker, "tqhost:young");
  assert.equal(e2.queue, "q2");
  assert.deepEqual(e2.payload, { class: "Job", queue: "q2", args: [2] });
  assert.equal(await queue.failedCount(), 1);
  assert.equal(await r.get(L.key("stat:failed")), "2");
  assert.deepEqual(await queue.workers(), {});
  assert.deepEqual(await queue.allWorkingOn(), {});
  await queue.retryStuckJobs();
  assert.deepEqual(await queue.queued("q2", 0, -1), [{ class: "Job", queue: "q2", args: [2] }]);
  // Another tq worker can run the re-enqueued jobs.
  for (const qn of ["q", "q2"]) {
    const [q, payload, d] = await r.call("TQ.POP", L.namespace, "tqhost:new", qn);
    assert.equal(q, qn);
    assert.ok(payload.startsWith('{"class":"Job"'));
    assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:new", d), "OK");
  }
  await assert.rejects(r.call("TQ.ACK", L.namespace, "tqhost:young", dYoung), /NOJOB/);
  L.assertNoEmittedErrors();
});
