"use strict";
// A node-resque Worker performs jobs written by TQ.ENQUEUE, and jobs written
// by TQ.ENQUEUEAT (in the past) once TQ.PROMOTE has moved them: each job
// function gets the right arguments, stat:processed counts them, and a job
// that throws lands in failed as usual.

const L = require("./lib");
const { assert } = L;

L.main(async () => {
  const r = L.redis();
  const performed = []; // [class, queue, args]
  const jobs = {
    add: {
      perform: async function (a, b) {
        performed.push(["add", this.queue, [...arguments]]);
        return a + b;
      },
    },
    echo: {
      perform: async function () {
        performed.push(["echo", this.queue, [...arguments]]);
        return "ok";
      },
    },
    "Ünïcode \"job\"": {
      perform: async function () {
        performed.push(["Ünïcode \"job\"", this.queue, [...arguments]]);
      },
    },
    boom: {
      perform: async () => {
        throw new Error("boom from a tq job");
      },
    },
  };

  // Written before the worker starts: plain queue jobs and due delayed jobs.
  const now = await L.serverNowMs(r);
  const immediate = [
    ["math", "add", "[1,2]", [1, 2]],
    ["math", "add", '[0.1,{"x":[1e21,-0]}]', [0.1, { x: [1e21, 0] }]],
    ["math", "echo", undefined, []],
    ["math", "echo", "5", [5]],
    ["math", "echo", "null", [null]],
    ["math", "echo", '{"10":1,"a":2,"2":3}', [{ 2: 3, 10: 1, a: 2 }]],
    // No lone surrogates: node-resque's own pop script (cjson) rejects them and loses the job.
    ["text", "echo", '["\\u00e9\\ud83d\\ude00","😀",{"k":"\\"\\\\/"}]', ["é😀", "😀", { k: '"\\/' }]],
    ["text", 'Ünïcode "job"', '[{"a":1,"a":2}]', [{ a: 2 }]],
  ];
  for (const [i, [q, cls, text]] of immediate.entries()) {
    const n = await r.call("TQ.ENQUEUE", L.namespace, q, cls, ...(text === undefined ? [] : [text]));
    assert.equal(n, immediate.slice(0, i + 1).filter((j) => j[0] === q).length, `TQ.ENQUEUE reply for job ${i}`);
  }
  const delayed = [
    [now - 60000, "math", "add", "[10,20]", [10, 20]],
    [now - 30000, "text", "echo", '["delayed",1]', ["delayed", 1]],
    [now - 30000, "text", "echo", '["delayed",2]', ["delayed", 2]],
    [now - 2000, "math", "echo", '[{"when":"past"}]', [{ when: "past" }]],
  ];
  for (const [at, q, cls, text] of delayed) {
    assert.equal(await r.call("TQ.ENQUEUEAT", L.namespace, String(at), q, cls, text), Math.round(at / 1000));
  }
  const future = await r.call("TQ.ENQUEUEIN", L.namespace, "3600000", "math", "add", "[999,999]");

  // Promotion before the worker runs, so the order within a queue is known.
  assert.equal(await r.call("TQ.PROMOTE", L.namespace), delayed.length, "TQ.PROMOTE moved the due jobs");
  assert.deepEqual(await r.zrange(L.key("delayed_queue_schedule"), 0, -1), [String(future)], "only the future bucket is left");

  const worker = L.track(
    new L.NR.Worker({ connection: L.connection(), queues: ["math", "text"], timeout: 50, name: "nodehost:1" }, jobs),
  );
  L.collectErrors(worker, "worker");
  await worker.connect();
  await worker.start();

  const expectTotal = immediate.length + delayed.length;
  await L.waitFor(`${expectTotal} jobs performed`, () => performed.length >= expectTotal).catch((e) => {
    throw new Error(`${e.message}; performed so far: ${JSON.stringify(performed)}`);
  });

  // Then a failing job and a job enqueued while the worker is polling.
  await r.call("TQ.ENQUEUE", L.namespace, "math", "boom", "[]");
  await r.call("TQ.ENQUEUE", L.namespace, "text", "echo", '["late"]');
  await L.waitFor("late job", () => performed.length >= expectTotal + 1);
  await L.waitFor("stats", async () => (await r.get(L.key("stat:processed"))) === String(expectTotal + 1) && (await r.get(L.key("stat:failed"))) === "1");

  // Per queue, jobs ran in FIFO order: TQ.ENQUEUE ones, then promoted ones (oldest bucket first).
  const byQueue = (q) => performed.filter((p) => p[1] === q).map((p) => [p[0], p[2]]);
  const want = (q) => [
    ...immediate.filter((j) => j[0] === q).map((j) => [j[1], j[3]]),
    ...delayed.filter((j) => j[1] === q).map((j) => [j[2], j[4]]),
  ];
  assert.deepEqual(byQueue("math"), want("math"), "math jobs and their arguments");
  assert.deepEqual(byQueue("text"), [...want("text"), ["echo", ["late"]]], "text jobs and their arguments");

  assert.equal(await r.get(L.key("stat:processed")), String(expectTotal + 1), "stat:processed");
  assert.equal(await r.get(L.key("stat:processed", "nodehost:1")), String(expectTotal + 1), "stat:processed:<worker>");
  const failed = (await r.lrange(L.key("failed"), 0, -1)).map((f) => JSON.parse(f));
  assert.equal(failed.length, 1);
  assert.equal(failed[0].error, "boom from a tq job");
  assert.deepEqual(failed[0].payload, { class: "boom", queue: "math", args: [] });
  assert.equal(await r.llen(L.key("queue", "math")), 0);
  assert.equal(await r.llen(L.key("queue", "text")), 0);
  // The future job is untouched.
  assert.equal(await r.llen(L.key("delayed:" + future)), 1);
  assert.deepEqual(await L.keys(r, "timestamps:*"), [L.key('timestamps:{"class":"add","queue":"math","args":[999,999]}')]);

  await worker.end();
  L.assertNoEmittedErrors();
  console.log(`node-resque Worker ran ${performed.length} tq jobs`);
});
