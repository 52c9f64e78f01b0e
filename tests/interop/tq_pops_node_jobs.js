"use strict";
// TQ.POP takes jobs written by node-resque's queue.enqueue: the payload bytes
// come back unchanged, FIFO, in queue priority order; the in-flight record is
// what node-resque's workingOn reads; TQ.ACK counts the job.

const L = require("./lib");
const { assert, assertBytes } = L;

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  const argsList = [
    [],
    [1, 2],
    [{ b: 1, 10: 2, a: [0.1, 1e21, 5e-324] }],
    ["é\ud800😀\u2028", '"\\/'],
    [null, true, { nested: { deeper: [[], {}] } }],
    ["x".repeat(50000)],
  ];
  const jobs = [];
  for (const [i, args] of argsList.entries()) {
    const q = i % 2 ? "low" : "high";
    await queue.enqueue(q, "Job", args);
    jobs.push({ q, args, bytes: Buffer.from(queue.encode(q, "Job", args)) });
  }
  await queue.enqueue('ünï "q"', "Klass\u2029", [1]);

  // high before low; FIFO within each.
  const order = [...jobs.filter((j) => j.q === "high"), ...jobs.filter((j) => j.q === "low")];
  const worker = "tqhost:1";
  let processed = 0;
  for (const job of order) {
    const before = Date.now();
    const reply = await r.callBuffer("TQ.POP", L.namespace, worker, "high", "low");
    // [queue, payload, delivery, deliveries, lease-deadline-ms]
    assert.ok(Array.isArray(reply) && reply.length === 5, `TQ.POP reply ${reply}`);
    const delivery = reply[2];
    assert.ok(Number.isSafeInteger(delivery) && delivery > 0, `delivery id ${delivery}`);
    assert.equal(reply[3], 1, "first delivery");
    assert.equal(reply[0].toString(), job.q, "TQ.POP queue");
    assertBytes(reply[1], job.bytes, `TQ.POP payload of ${JSON.stringify(job.args).slice(0, 80)}`);

    // The in-flight record, through node-resque's own reader.
    const raw = await queue.workingOn(worker, "high,low");
    assert.ok(raw, "workingOn finds the tq in-flight record");
    const rec = JSON.parse(raw);
    assert.deepEqual(Object.keys(rec), ["run_at", "queue", "worker", "payload"]);
    assert.equal(rec.queue, job.q);
    assert.equal(rec.worker, worker);
    assert.deepEqual(rec.payload, JSON.parse(job.bytes.toString()));
    // The payload is embedded verbatim.
    assert.ok(Buffer.from(raw).includes(job.bytes), "record embeds the payload bytes");
    const runAt = Date.parse(rec.run_at);
    assert.ok(Math.abs(runAt - before) < 5000, `run_at ${rec.run_at} is about now`);
    assert.equal(new Date(runAt).toISOString(), rec.run_at, "run_at is ISO-8601");
    assert.deepEqual(await r.smembers(L.key("workers")), [`${worker}:high,low`]);
    // A second pop while holding a job hands the same job out again.
    const again = await r.callBuffer("TQ.POP", L.namespace, worker, "high", "low");
    assert.equal(again[2], delivery, "second pop while holding a job: the same delivery");
    assertBytes(again[1], job.bytes, "the same job");

    assert.equal(await r.call("TQ.ACK", L.namespace, worker, delivery), "OK");
    processed++;
    assert.equal(await queue.workingOn(worker, "high,low"), null, "record removed by TQ.ACK");
    assert.equal(await r.get(L.key("stat:processed")), String(processed));
    assert.equal(await r.get(L.key("stat:processed", worker)), String(processed));
  }
  assert.equal(await r.call("TQ.POP", L.namespace, worker, "high", "low"), null, "queues drained");

  // '*' reads every queue in <ns>:queues (node-resque registered them).
  const star = await r.callBuffer("TQ.POP", L.namespace, "tqhost:2", "*");
  assert.equal(star[0].toString(), 'ünï "q"');
  assertBytes(star[1], Buffer.from(queue.encode('ünï "q"', "Klass\u2029", [1])), "TQ.POP * payload");
  assert.ok(await queue.workingOn("tqhost:2", "*"), "record under queues '*'");
  assert.equal(await r.call("TQ.ACK", L.namespace, "tqhost:2", star[2]), "OK");
  assert.equal(await r.get(L.key("stat:processed")), String(processed + 1));
  for (const q of ["high", "low", 'ünï "q"']) assert.equal(await queue.length(q), 0);

  // '*' walks the queues in the order a node-resque Worker with queues '*'
  // uses: smembers(<ns>:queues).sort(), JavaScript's UTF-16 order.
  const names = ["b", "B", "a", "é", "😀", "\uff61", "Z9", "a:b", "10", "9"];
  for (const name of names) await queue.enqueue(name, "Order", [name]);
  const popped = [];
  for (;;) {
    const reply = await r.call("TQ.POP", L.namespace, "tqhost:3", "*");
    if (!reply) break;
    popped.push(reply[0]);
    await r.call("TQ.ACK", L.namespace, "tqhost:3", reply[2]);
  }
  const nodeOrder = (await queue.queues()).sort().filter((q) => names.includes(q));
  assert.deepEqual(popped, nodeOrder, "TQ.POP * queue order vs node-resque's");
  L.assertNoEmittedErrors();
  console.log(`TQ.POP/TQ.ACK processed ${processed + 1} node-resque jobs`);
});
