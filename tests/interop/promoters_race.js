"use strict";
// node-resque's Scheduler and TQ.PROMOTE promoting the same delayed jobs.
//
// 1. Deterministic: the scheduler's cleanupTimestamp WATCHes the bucket and
//    the schedule, sees an empty bucket, then MULTI/DEL/ZREM/EXEC. A
//    TQ.ENQUEUEAT into that bucket in between must abort the EXEC (tq's
//    writes must touch WATCHed keys like ordinary commands do), or the new
//    job would be deleted with the bucket.
// 2. Concurrent: 600 delayed jobs in 60 due buckets (half TQ.ENQUEUEAT, half
//    node-resque enqueueAt) promoted by a running Scheduler and a TQ.PROMOTE
//    loop at once, while TQ.ENQUEUEAT/enqueueAt keep adding due jobs: every
//    job reaches the queue exactly once and no delayed state is left.

const L = require("./lib");
const { assert } = L;

L.main(async () => {
  const r = L.redis();
  const other = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  // ------------------------------------------------------ 1. WATCH
  const scheduler = L.track(new L.NR.Scheduler({ connection: L.connection(), timeout: 20, name: "sched:race" }));
  L.collectErrors(scheduler, "scheduler");
  await scheduler.connect();
  const now = await L.serverNowMs(r);
  const bucketMs = Math.floor(now / 1000) * 1000 - 30000;
  const bucket = bucketMs / 1000;
  // An empty bucket as the scheduler sees it after moving its last job.
  await r.zadd(L.key("delayed_queue_schedule"), bucket, String(bucket));
  const redis = scheduler.connection.redis;
  const origLlen = redis.llen.bind(redis);
  let injected = 0;
  redis.llen = async (...a) => {
    const n = await origLlen(...a);
    if (injected++ === 0) {
      // Between the WATCH and the MULTI: tq files a job into the bucket.
      assert.equal(await other.call("TQ.ENQUEUEAT", L.namespace, String(bucketMs), "race", "Job", '["watched"]'), bucket);
    }
    return n;
  };
  await scheduler.cleanupTimestamp(bucket);
  redis.llen = origLlen;
  assert.equal(injected, 1, "cleanupTimestamp ran LLEN once");
  assert.equal(await r.llen(L.key("delayed:" + bucket)), 1, "the job filed during the scheduler's WATCH survived (EXEC aborted)");
  assert.equal(await r.zscore(L.key("delayed_queue_schedule"), String(bucket)), String(bucket), "its bucket is still scheduled");
  // The same with the other tq writers of those keys: TQ.PROMOTE (empties the bucket).
  assert.equal(await r.call("TQ.PROMOTE", L.namespace), 1);
  assert.deepEqual(await queue.queued("race", 0, -1), [{ class: "Job", queue: "race", args: ["watched"] }]);
  await queue.delQueue("race");

  // WATCH on a queue list and a worker record sees TQ.ENQUEUE, TQ.POP and TQ.ACK.
  let last = null;
  for (const [what, setup, write, watched] of [
    ["TQ.ENQUEUE", [], ["TQ.ENQUEUE", L.namespace, "w", "Job"], L.key("queue", "w")],
    [
      "TQ.POP",
      [["TQ.ENQUEUE", L.namespace, "w", "Job"]],
      ["TQ.POP", L.namespace, "tqhost:w", "w"],
      L.key("queue", "w"),
    ],
    // The ACK names the delivery the pop above replied.
    ["TQ.ACK", [], (popped) => ["TQ.ACK", L.namespace, "tqhost:w", popped[2]], L.key("worker", "tqhost:w", "w")],
    ["TQ.PROMOTE", [["TQ.ENQUEUEAT", L.namespace, String(bucketMs), "w", "Job", "[1]"]], ["TQ.PROMOTE", L.namespace], L.key("delayed_queue_schedule")],
  ]) {
    for (const s of setup) await r.call(...s);
    const w = L.redis();
    await w.watch(watched);
    last = await other.call(...(typeof write === "function" ? write(last) : write));
    const res = await w.multi().del(L.key("watch-probe")).exec();
    assert.equal(res, null, `${what} must abort a transaction WATCHing ${watched}`);
    await w.quit();
  }
  await r.del(L.key("queue", "w"));
  await scheduler.end();

  // ------------------------------------------------------ 2. concurrent
  const base = Math.floor((await L.serverNowMs(r)) / 1000) * 1000 - 120000;
  const written = new Set();
  let seq = 0;
  const add = async (viaTq, at) => {
    const id = `${viaTq ? "tq" : "nr"}-${seq++}`;
    written.add(id);
    if (viaTq) await r.call("TQ.ENQUEUEAT", L.namespace, String(at), "promoted", "Job", JSON.stringify([{ id }]));
    else await queue.enqueueAt(at, "promoted", "Job", [{ id }]);
  };
  for (let i = 0; i < 600; i++) await add(i % 2 === 0, base + (i % 60) * 1000);

  const sched = L.track(new L.NR.Scheduler({ connection: L.connection(), timeout: 5, name: "sched:1" }));
  L.collectErrors(sched, "scheduler");
  await sched.connect();
  let transferred = 0;
  sched.on("transferredJob", () => transferred++);
  let stop = false;
  let tqMoved = 0;
  const promoteLoop = (async () => {
    const c = L.redis();
    while (!stop) {
      tqMoved += await c.call("TQ.PROMOTE", L.namespace, "LIMIT", "3");
      await L.sleep(3);
    }
  })();
  await sched.start();
  // More due jobs while both promote.
  for (let i = 0; i < 200; i++) {
    await add(i % 2 === 1, base + ((i * 7) % 90) * 1000);
    if (i % 20 === 0) await L.sleep(2);
  }
  const total = written.size;
  try {
    await L.waitFor(`${total} jobs promoted`, async () => (await queue.length("promoted")) >= total, 60000);
    await L.waitFor("schedule empty", async () => (await r.zcard(L.key("delayed_queue_schedule"))) === 0, 30000);
  } finally {
    stop = true;
    await promoteLoop;
    await sched.end();
  }
  const jobs = await queue.queued("promoted", 0, -1);
  const seen = new Map();
  for (const j of jobs) seen.set(j.args[0].id, (seen.get(j.args[0].id) || 0) + 1);
  const dup = [...seen].filter(([, n]) => n > 1);
  const lost = [...written].filter((id) => !seen.has(id));
  assert.deepEqual(dup.slice(0, 10), [], `${dup.length} jobs promoted twice`);
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} jobs lost`);
  assert.equal(jobs.length, total);
  assert.equal(tqMoved + transferred, total, `TQ.PROMOTE moved ${tqMoved}, the scheduler ${transferred}`);
  console.log(`${total} delayed jobs: TQ.PROMOTE moved ${tqMoved}, node-resque's scheduler ${transferred}`);
  assert.deepEqual(await L.keys(r, "delayed:*"), []);
  assert.deepEqual(await L.keys(r, "timestamps:*"), []);
  L.assertNoEmittedErrors();
});
