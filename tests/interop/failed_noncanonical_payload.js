"use strict";
// A job whose payload is valid JSON but not in JSON.stringify form (written by
// another Resque client: spaces, 1.0, \u escapes, member order) fails.
// node-resque's own Worker stores the failure with `payload: <parsed job>`, so
// the record is JSON.stringify output and queue.retryAndRemoveFailed (an LREM
// of JSON.stringify(record)) finds it. The same job failed through TQ.POP +
// TQ.FAIL must be retryable the same way.

const L = require("./lib");
const { assert } = L;

const RAW = '{"class": "Job", "queue": "ext", "args": [1.0, "\\u00e9", {"b": 1, "a": 2}]}';

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  // Control: node-resque's Worker fails the job; the record is retryable.
  await r.rpush(L.key("queue", "ext"), RAW);
  await r.sadd(L.key("queues"), "ext");
  const worker = L.track(
    new L.NR.Worker({ connection: L.connection(), queues: ["ext"], timeout: 50, name: "nodehost:1" }, {
      Job: async () => {
        throw new Error("failing on purpose");
      },
    }),
  );
  await worker.connect();
  await worker.start();
  await L.waitFor("node-resque failure", async () => (await queue.failedCount()) === 1);
  await worker.end();
  const [nodeFailure] = await queue.failed(0, -1);
  await queue.retryAndRemoveFailed(nodeFailure);
  assert.equal(await queue.failedCount(), 0, "control: node-resque's own failure record is retryable");
  await r.del(L.key("queue", "ext"));

  // The same job through tq.
  await r.rpush(L.key("queue", "ext"), RAW);
  const [, popped, delivery] = await r.call("TQ.POP", L.namespace, "tqhost:1", "ext");
  assert.equal(popped, RAW);
  assert.equal(await r.call("TQ.FAIL", L.namespace, "tqhost:1", delivery, "Error", "failing on purpose"), "OK");
  const [tqFailure] = await queue.failed(0, -1);
  assert.deepEqual(tqFailure.payload, JSON.parse(RAW));
  const stored = await r.lindex(L.key("failed"), 0);
  assert.equal(stored, JSON.stringify(tqFailure), "the TQ.FAIL record is JSON.stringify of itself, so removeFailed can match it");
  await queue.retryAndRemoveFailed(tqFailure);
  assert.equal(await queue.failedCount(), 0);
  assert.deepEqual(await queue.queued("ext", 0, -1), [JSON.parse(RAW)]);
});
