"use strict";
// TQ.PROMOTE moves jobs written by node-resque's queue.enqueueAt/enqueueIn
// once due (oldest bucket first, FIFO within a bucket), removes their
// timestamps markers and empty buckets, leaves future jobs alone, and TQ.POP
// then gets them byte for byte.

const L = require("./lib");
const { assert, assertBytes } = L;

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  const now = await L.serverNowMs(r);
  const oldAt = now - 20000;
  const pastAt = now - 10000;
  const futureAt = now + 3600000;
  // Enqueued out of order on purpose.
  await queue.enqueueAt(pastAt, "dq", "Job", [1, { a: "é" }]);
  await queue.enqueueAt(futureAt, "dq", "Job", ["future"]);
  await queue.enqueueAt(pastAt, "dq", "Job", [2, 0.1]);
  await queue.enqueueAt(oldAt, "other", "Job", ["old"]);
  await queue.enqueueAt(pastAt, "dq", "Job", [3, "😀\u2028"]);
  await queue.enqueueIn(7200000, "dq", "Job", ["future2"]);
  // The same job in two due buckets and one future bucket.
  await queue.enqueueAt(oldAt, "dq", "Twice", ["same"]);
  await queue.enqueueAt(pastAt, "dq", "Twice", ["same"]);
  await queue.enqueueAt(futureAt, "dq", "Twice", ["same"]);
  const b = (ms) => Math.round(ms / 1000);
  assert.deepEqual((await queue.scheduledAt("dq", "Twice", ["same"])).sort(), [b(oldAt), b(pastAt), b(futureAt)].sort());

  assert.equal(await r.call("TQ.PROMOTE", L.namespace), 6, "TQ.PROMOTE count");
  assert.equal(await r.call("TQ.PROMOTE", L.namespace), 0, "nothing left to promote");

  const enc = (q, cls, args) => Buffer.from(queue.encode(q, cls, args));
  // Oldest bucket first, FIFO inside: the old bucket holds other/old then dq/Twice.
  assertBytes((await r.lrangeBuffer(L.key("queue", "other"), 0, -1))[0], enc("other", "Job", ["old"]), "other queue");
  const dq = await r.lrangeBuffer(L.key("queue", "dq"), 0, -1);
  const want = [
    enc("dq", "Twice", ["same"]),
    enc("dq", "Job", [1, { a: "é" }]),
    enc("dq", "Job", [2, 0.1]),
    enc("dq", "Job", [3, "😀\u2028"]),
    enc("dq", "Twice", ["same"]),
  ];
  assert.equal(dq.length, want.length, "dq length");
  want.forEach((w, i) => assertBytes(dq[i], w, `dq[${i}]`));
  assert.deepEqual((await queue.queues()).sort(), ["dq", "other"]);

  // Only the future buckets are left, with their markers.
  const left = await r.zrange(L.key("delayed_queue_schedule"), 0, -1);
  assert.equal(left.length, 2, `future buckets left: ${left}`);
  assert.equal(Number(left[0]), b(futureAt));
  assert.ok(Math.abs(Number(left[1]) - b(now + 7200000)) <= 5, `enqueueIn bucket ${left[1]}`);
  assert.deepEqual(await queue.scheduledAt("dq", "Twice", ["same"]), [b(futureAt)], "markers of promoted copies removed");
  assert.deepEqual(await queue.scheduledAt("dq", "Job", [1, { a: "é" }]), []);
  assert.deepEqual(
    await L.keys(r, "delayed:*"),
    left.map((t) => L.key("delayed:" + t)).sort(),
    "only future delayed lists remain",
  );
  assert.deepEqual(
    await L.keys(r, "timestamps:*"),
    [enc("dq", "Job", ["future"]), enc("dq", "Job", ["future2"]), enc("dq", "Twice", ["same"])].map((p) => L.key("timestamps:" + p)).sort(),
  );

  // TQ.POP gets them in order.
  for (const [i, w] of want.entries()) {
    const [q, payload, delivery] = await r.callBuffer("TQ.POP", L.namespace, "tqhost:1", "dq");
    assert.equal(q.toString(), "dq");
    assertBytes(payload, w, `TQ.POP #${i}`);
    assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:1", delivery), "OK");
  }
  assert.equal(await r.call("TQ.POP", L.namespace, "tqhost:1", "dq"), null);

  // LIMIT: promotion in slices, still oldest first.
  for (let i = 0; i < 5; i++) await queue.enqueueAt(now - 50000 + i * 1000, "lim", "Job", [i]);
  assert.equal(await r.call("TQ.PROMOTE", L.namespace, "LIMIT", "2"), 2);
  assert.deepEqual((await queue.queued("lim", 0, -1)).map((j) => j.args[0]), [0, 1]);
  assert.equal(await r.call("TQ.PROMOTE", L.namespace, "LIMIT", "2"), 2);
  assert.equal(await r.call("TQ.PROMOTE", L.namespace, "LIMIT", "2"), 1);
  assert.equal(await r.call("TQ.PROMOTE", L.namespace, "LIMIT", "2"), 0);
  assert.deepEqual((await queue.queued("lim", 0, -1)).map((j) => j.args[0]), [0, 1, 2, 3, 4]);

  // A bucket emptied by node-resque's delDelayed (it leaves the schedule
  // entry behind) is cleaned up without counting anything.
  await queue.enqueueAt(now - 5000, "gone", "Job", ["deleted"]);
  assert.deepEqual(await queue.delDelayed("gone", "Job", ["deleted"]), [b(now - 5000)]);
  assert.equal(await r.zscore(L.key("delayed_queue_schedule"), String(b(now - 5000))), String(b(now - 5000)));
  assert.equal(await r.call("TQ.PROMOTE", L.namespace), 0);
  assert.equal(await r.zscore(L.key("delayed_queue_schedule"), String(b(now - 5000))), null, "orphan schedule entry removed");
  assert.equal(await queue.length("gone"), 0);
  L.assertNoEmittedErrors();
});
