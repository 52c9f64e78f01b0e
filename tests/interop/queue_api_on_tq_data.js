"use strict";
// node-resque's Queue API reads and edits data written by tq:
//   stats, failed, failedCount, removeFailed/retryAndRemoveFailed (TQ.FAIL
//   records), workingOn, allWorkingOn, workers (TQ.POP records), queued,
//   length, queues, del, delByFunction (TQ.ENQUEUE), scheduledAt,
//   delDelayed, timestamps, delayedAt, allDelayed (TQ.ENQUEUEAT).
// Units, as node-resque uses them: scheduledAt and delDelayed return bucket
// seconds, timestamps() and allDelayed() keys are bucket * 1000 (ms),
// delayedAt takes ms and answers rTimestamp in seconds.

const L = require("./lib");
const { assert, assertBytes } = L;

const TRICKY = '[{"b":1,"10":[0.1,1e21,5e-324,-0],"a":"é😀\\u2028\\"\\\\/","2":null},123456789.123]';

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();
  const enc = (q, cls, args) => queue.encode(q, cls, args);
  const TRICKY_ARGS = JSON.parse(JSON.stringify(JSON.parse(TRICKY))); // -0 reads back as 0

  // ---------------------------------------------------------- queue jobs
  await r.call("TQ.ENQUEUE", L.namespace, "work", "Job", "[1]");
  await r.call("TQ.ENQUEUE", L.namespace, "work", "Job", TRICKY);
  await r.call("TQ.ENQUEUE", L.namespace, "work", "Other", '["x"]');
  await r.call("TQ.ENQUEUE", L.namespace, "work", "Job", "[1]");
  await r.call("TQ.ENQUEUE", L.namespace, "spare", "Job");
  assert.deepEqual((await queue.queues()).sort(), ["spare", "work"]);
  assert.equal(await queue.length("work"), 4);
  assert.deepEqual(await queue.queued("work", 0, -1), [
    { class: "Job", queue: "work", args: [1] },
    { class: "Job", queue: "work", args: TRICKY_ARGS },
    { class: "Other", queue: "work", args: ["x"] },
    { class: "Job", queue: "work", args: [1] },
  ]);
  // del matches by re-encoded bytes (LREM): works only if tq's bytes are node-resque's.
  assert.equal(await queue.del("work", "Job", TRICKY_ARGS), 1, "queue.del finds the TQ.ENQUEUE job by its encoding");
  assert.equal(await queue.del("work", "Job", [1], 1), 1);
  assert.equal(await queue.delByFunction("work", "Other"), 1);
  assert.deepEqual(await queue.queued("work", 0, -1), [{ class: "Job", queue: "work", args: [1] }]);
  await queue.delQueue("work");
  await queue.delQueue("spare");
  assert.deepEqual(await queue.queues(), []);

  // ---------------------------------------------------- in-flight records
  await r.call("TQ.ENQUEUE", L.namespace, "hi", "Job", TRICKY);
  await r.call("TQ.ENQUEUE", L.namespace, "lo", "Job", "[2]");
  await r.call("TQ.ENQUEUE", L.namespace, "lo", "Job", "[3]");
  const t0 = Date.now();
  const [, , d1] = await r.call("TQ.POP", L.namespace, "tqhost:1", "hi", "lo"); // takes hi's job
  const [, , d2] = await r.call("TQ.POP", L.namespace, "tqhost:2", "lo"); // takes [2]
  const rec1 = JSON.parse(await queue.workingOn("tqhost:1", "hi,lo"));
  assert.equal(rec1.queue, "hi");
  assert.equal(rec1.worker, "tqhost:1");
  assert.deepEqual(rec1.payload, { class: "Job", queue: "hi", args: TRICKY_ARGS });
  assert.ok(Math.abs(Date.parse(rec1.run_at) - t0) < 5000, `run_at ${rec1.run_at}`);
  assert.deepEqual(await queue.workers(), { "tqhost:1": "hi,lo", "tqhost:2": "lo" });
  const all = await queue.allWorkingOn();
  assert.deepEqual(Object.keys(all).sort(), ["tqhost:1", "tqhost:2"]);
  assert.deepEqual(all["tqhost:1"], rec1);
  assert.deepEqual(all["tqhost:2"].payload, { class: "Job", queue: "lo", args: [2] });
  assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:2", d2), "OK");
  // tq keeps the worker in <ns>:workers after its job ends (node-resque shows it idle).
  const afterAck = await queue.allWorkingOn();
  assert.deepEqual(afterAck["tqhost:1"], rec1);
  assert.ok(afterAck["tqhost:2"] === undefined || afterAck["tqhost:2"] === "started", `idle tq worker: ${JSON.stringify(afterAck["tqhost:2"])}`);

  // ------------------------------------------------------ failure records
  const backtrace = ["    at perform (/app/jobs.js:10:5)", "    at ünïcode \"frame\" \\ \u2028 \u0001"];
  const error = 'bad "input"\nline 2 é😀 \\ \t';
  assert.equal(await r.call("TQ.FAIL", L.namespace, "tqhost:1", d1, "TypeError", error, JSON.stringify(backtrace)), "OK");
  const [, , d3] = await r.call("TQ.POP", L.namespace, "tqhost:2", "lo"); // [3]
  assert.equal(await r.call("TQ.FAIL", L.namespace, "tqhost:2", d3, "Error", "no backtrace"), "OK");
  assert.equal(await queue.workingOn("tqhost:1", "hi,lo"), null, "TQ.FAIL removed the record");

  assert.equal(await queue.failedCount(), 2);
  const failed = await queue.failed(0, -1);
  assert.equal(failed.length, 2);
  const [f1, f2] = failed;
  assert.deepEqual(Object.keys(f1), ["worker", "queue", "payload", "exception", "error", "backtrace", "failed_at"], "node-resque's member order");
  assert.equal(f1.worker, "tqhost:1");
  assert.equal(f1.queue, "hi");
  assert.deepEqual(f1.payload, { class: "Job", queue: "hi", args: TRICKY_ARGS });
  assert.equal(f1.exception, "TypeError");
  assert.equal(f1.error, error);
  assert.deepEqual(f1.backtrace, backtrace);
  const failedAt = Date.parse(f1.failed_at);
  assert.ok(Math.abs(failedAt - Date.now()) < 10000, `failed_at ${f1.failed_at}`);
  if (new Date().getTimezoneOffset() === 0) {
    // Same text as node-resque's `new Date().toString()` (the runner sets TZ=UTC).
    assert.equal(f1.failed_at, new Date(failedAt).toString(), "failed_at format");
  }
  assert.deepEqual(f2.backtrace, [], "omitted backtrace is []");
  assert.deepEqual(f2.payload, { class: "Job", queue: "lo", args: [3] });
  // removeFailed matches JSON.stringify(record): the stored bytes must be exactly that.
  const rawFailed = await r.lrangeBuffer(L.key("failed"), 0, -1);
  failed.forEach((f, i) => assertBytes(rawFailed[i], Buffer.from(JSON.stringify(f)), `failed[${i}] is JSON.stringify of its parse`));

  const stats = await queue.stats();
  assert.deepEqual(stats, {
    processed: "1",
    "processed:tqhost:2": "1",
    failed: "2",
    "failed:tqhost:1": "1",
    "failed:tqhost:2": "1",
  });

  // retryAndRemoveFailed: LREM of the record, then enqueue of payload.class/args.
  await queue.retryAndRemoveFailed(f1);
  assert.equal(await queue.failedCount(), 1);
  assert.equal(await queue.length("hi"), 1);
  assertBytes((await r.lrangeBuffer(L.key("queue", "hi"), 0, -1))[0], Buffer.from(enc("hi", "Job", TRICKY_ARGS)), "retried job");
  // ... and tq can run it again.
  const [q, payload, d4] = await r.call("TQ.POP", L.namespace, "tqhost:1", "hi");
  assert.equal(q, "hi");
  assert.equal(payload, enc("hi", "Job", TRICKY_ARGS));
  assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:1", d4), "OK");
  assert.equal(await queue.removeFailed(f2), 1, "removeFailed on a TQ.FAIL record");
  assert.equal(await queue.failedCount(), 0);

  // A corrupt payload moved to failed by TQ.POP is a record node-resque can read and remove.
  await r.rpush(L.key("queue", "bad"), "not json \u00e9");
  await r.call("TQ.ENQUEUE", L.namespace, "bad", "Job", "[7]");
  const [, good, d5] = await r.call("TQ.POP", L.namespace, "tqhost:3", "bad");
  assert.equal(good, enc("bad", "Job", [7]), "TQ.POP skips the corrupt payload");
  const [corrupt] = await queue.failed(0, -1);
  assert.equal(corrupt.payload, "not json \u00e9");
  assert.equal(corrupt.queue, "bad");
  assert.equal(typeof corrupt.exception, "string");
  assert.equal(await queue.removeFailed(corrupt), 1);
  assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:3", d5), "OK");

  // ------------------------------------------------------- delayed jobs
  const now = await L.serverNowMs(r);
  const at1 = Math.floor(now / 1000) * 1000 + 3600000 + 499; // rounds down
  const at2 = Math.floor(now / 1000) * 1000 + 7200000 + 500; // rounds up
  const b1 = Math.round(at1 / 1000);
  const b2 = Math.round(at2 / 1000);
  assert.equal(await r.call("TQ.ENQUEUEAT", L.namespace, String(at1), "later", "Job", TRICKY), b1);
  assert.equal(await r.call("TQ.ENQUEUEAT", L.namespace, String(at2), "later", "Job", TRICKY), b2);
  assert.equal(await r.call("TQ.ENQUEUEAT", L.namespace, String(at2), "later", "Job", "[9]"), b2);
  const b3 = await r.call("TQ.ENQUEUEIN", L.namespace, "10800000", "later", "Other");
  assert.ok(Math.abs(b3 - Math.round((now + 10800000) / 1000)) <= 5, `ENQUEUEIN bucket ${b3}`);

  assert.deepEqual((await queue.scheduledAt("later", "Job", TRICKY_ARGS)).sort(), [b1, b2], "scheduledAt: seconds");
  assert.deepEqual(await queue.scheduledAt("later", "Other", []), [b3]);
  assert.deepEqual(await queue.timestamps(), [b1 * 1000, b2 * 1000, b3 * 1000], "timestamps: ms");
  const at2Tasks = await queue.delayedAt(at2);
  assert.equal(at2Tasks.rTimestamp, b2, "delayedAt rTimestamp: seconds");
  assert.deepEqual(at2Tasks.tasks, [
    { class: "Job", queue: "later", args: TRICKY_ARGS },
    { class: "Job", queue: "later", args: [9] },
  ]);
  assert.deepEqual((await queue.delayedAt(b1 * 1000)).tasks, [{ class: "Job", queue: "later", args: TRICKY_ARGS }]);
  const allDelayed = await queue.allDelayed();
  assert.deepEqual(Object.keys(allDelayed).sort(), [b1, b2, b3].map((b) => String(b * 1000)).sort());

  // delDelayed removes every copy; returns seconds.
  assert.deepEqual((await queue.delDelayed("later", "Job", TRICKY_ARGS)).sort(), [b1, b2], "delDelayed: seconds");
  assert.deepEqual(await queue.scheduledAt("later", "Job", TRICKY_ARGS), []);
  assert.equal(await r.exists(L.key("timestamps:" + enc("later", "Job", TRICKY_ARGS))), 0);
  assert.deepEqual((await queue.delayedAt(at2)).tasks, [{ class: "Job", queue: "later", args: [9] }]);
  assert.deepEqual(await queue.timestamps(), [b2 * 1000, b3 * 1000], "the emptied bucket's list is gone");
  // A job TQ.ENQUEUEAT'ed again after delDelayed is fine.
  assert.equal(await r.call("TQ.ENQUEUEAT", L.namespace, String(at1), "later", "Job", TRICKY), b1);
  assert.deepEqual(await queue.scheduledAt("later", "Job", TRICKY_ARGS), [b1]);
  L.assertNoEmittedErrors();
});
