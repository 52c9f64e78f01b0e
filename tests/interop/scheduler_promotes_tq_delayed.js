"use strict";
// node-resque's Scheduler promotes jobs written by TQ.ENQUEUEAT/TQ.ENQUEUEIN
// and a node-resque Worker runs them. The scheduler's cleanup (LPOP, SREM
// of the timestamps marker, DEL + ZREM of the empty bucket) leaves no
// delayed:* or timestamps:* keys for the jobs it moved; a future job stays.

const L = require("./lib");
const { assert } = L;

L.main(async () => {
  const r = L.redis();
  const performed = [];
  const jobs = {
    record: async (...args) => {
      performed.push(args);
    },
  };

  const now = await L.serverNowMs(r);
  const due = [
    [now - 40000, '[1,"a"]', [1, "a"]],
    [now - 20000, '[2,{"10":1,"b":[0.5]}]', [2, { 10: 1, b: [0.5] }]],
    [now - 20000, '[3,"\\u00e9\\ud83d\\ude00\u2028"]', [3, "é😀\u2028"]],
    [now - 1000, "[4]", [4]],
  ];
  for (const [at, text] of due) await r.call("TQ.ENQUEUEAT", L.namespace, String(at), "sched", "record", text);
  // Due about a second from now: the scheduler picks it up on a later poll.
  await r.call("TQ.ENQUEUEIN", L.namespace, "1000", "sched", "record", "[5]");
  const futureBucket = await r.call("TQ.ENQUEUEIN", L.namespace, "3600000", "sched", "record", '["future"]');
  assert.equal(await r.zcard(L.key("delayed_queue_schedule")), 5);

  const scheduler = L.track(new L.NR.Scheduler({ connection: L.connection(), timeout: 50, name: "sched:1" }));
  L.collectErrors(scheduler, "scheduler");
  const transferred = [];
  scheduler.on("transferredJob", (ts, job) => transferred.push([ts, job]));
  await scheduler.connect();
  await scheduler.start();
  const worker = L.track(new L.NR.Worker({ connection: L.connection(), queues: ["sched"], timeout: 50, name: "nodehost:2" }, jobs));
  L.collectErrors(worker, "worker");
  await worker.connect();
  await worker.start();

  await L.waitFor("5 jobs performed", () => performed.length >= 5, 30000);
  // Oldest bucket first; FIFO inside a bucket; the ENQUEUEIN job last.
  assert.deepEqual(performed, [...due.map((d) => d[2]), [5]]);
  assert.equal(transferred.length, 5, "scheduler transferred 5 jobs");
  await L.waitFor("stat:processed = 5", async () => (await r.get(L.key("stat:processed"))) === "5");

  // The scheduler's cleanup runs after the transfer: poll until it is done.
  await L.waitFor("scheduler cleanup", async () => (await r.zcard(L.key("delayed_queue_schedule"))) === 1, 10000);
  assert.deepEqual(await r.zrange(L.key("delayed_queue_schedule"), 0, -1), [String(futureBucket)]);
  assert.deepEqual(await L.keys(r, "delayed:*"), [L.key("delayed:" + futureBucket)], "only the future bucket's list");
  assert.deepEqual(
    await L.keys(r, "timestamps:*"),
    [L.key('timestamps:{"class":"record","queue":"sched","args":["future"]}')],
    "only the future job's timestamps set",
  );
  assert.deepEqual(await r.smembers(L.key('timestamps:{"class":"record","queue":"sched","args":["future"]}')), [
    "delayed:" + futureBucket,
  ]);
  assert.equal(await r.llen(L.key("queue", "sched")), 0);

  await worker.end();
  await scheduler.end();
  // Nothing was failed by the scheduler or the worker.
  assert.equal(await r.llen(L.key("failed")), 0);
  L.assertNoEmittedErrors();
  console.log(`scheduler promoted ${transferred.length} tq delayed jobs; worker ran them`);
});
