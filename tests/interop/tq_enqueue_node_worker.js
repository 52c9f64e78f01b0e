"use strict";
// Jobs written by the `tq` binary ($TQ_BIN enqueue, now / --in / --at) and by
// TQ.ENQUEUE are run by a node-resque MultiWorker; the delayed ones are
// promoted by the module's timer (no node-resque scheduler). Every job runs
// once with the arguments given.

const { execFileSync } = require("node:child_process");
const L = require("./lib");
const { assert } = L;

const TQ = process.env.TQ_BIN;

function tq(...args) {
  return execFileSync(TQ, ["--redis", `redis://127.0.0.1:${L.port}/`, "--ns", L.namespace, "enqueue", ...args], {
    encoding: "utf8",
  }).trim();
}

L.main(async () => {
  assert.ok(TQ, "TQ_BIN is set");
  const r = L.redis();
  const ran = new Map(); // key -> count
  const record = (key) => ran.set(key, (ran.get(key) || 0) + 1);
  const jobs = {
    add: { perform: async (a, b) => record(`add:${a}+${b}`) },
    echo: { perform: async (...args) => record(`echo:${JSON.stringify(args)}`) },
  };

  // With the tq binary.
  assert.equal(tq("math", "add", "[1,2]"), "1", "queue length after the push");
  assert.equal(tq("math", "add", "[3,4]"), "2");
  assert.equal(tq("math", "echo"), "3", "no args = []");
  assert.equal(tq("math", "echo", '{"solo":true}'), "4", "a non-array is wrapped");
  const now = await L.serverNowMs(r);
  const inBucket = Number(tq("math", "add", "[5,6]", "--in", "300ms"));
  assert.ok(Math.abs(inBucket - Math.round((now + 300) / 1000)) <= 2, `--in bucket ${inBucket}`);
  const at = new Date(now + 700).toISOString();
  assert.equal(tq("math", "add", "[7,8]", "--at", at), String(Math.round((now + 700) / 1000)));
  assert.equal(tq("math", "add", "[9,10]", "--at", String(now - 5000)), String(Math.round((now - 5000) / 1000)));

  // And many with TQ.ENQUEUE.
  const N = 500;
  const pipe = r.pipeline();
  for (let i = 0; i < N; i++) pipe.call("TQ.ENQUEUE", L.namespace, i % 2 ? "math" : "text", "echo", JSON.stringify([i, `t${i}`]));
  for (const [err] of await pipe.exec()) assert.equal(err, null);

  const multi = L.track(
    new L.NR.MultiWorker(
      {
        connection: L.connection(),
        queues: ["math", "text"],
        minTaskProcessors: 2,
        maxTaskProcessors: 4,
        timeout: 50,
        checkTimeout: 100,
        maxEventLoopDelay: 100,
      },
      jobs,
    ),
  );
  L.collectErrors(multi, "multiWorker");
  multi.start();
  const total = 7 + N;
  try {
    await L.waitFor(`${total} jobs run`, () => [...ran.values()].reduce((a, b) => a + b, 0) >= total, 60000);
    await L.sleep(300);
  } finally {
    await multi.end();
  }
  for (const k of ["add:1+2", "add:3+4", "echo:[]", 'echo:[{"solo":true}]', "add:5+6", "add:7+8", "add:9+10"]) {
    assert.equal(ran.get(k), 1, `${k} ran once: ${ran.get(k)}`);
  }
  for (let i = 0; i < N; i++) assert.equal(ran.get(`echo:${JSON.stringify([i, `t${i}`])}`), 1, `job ${i}`);
  assert.equal(ran.size, total);
  assert.equal(await r.get(L.key("stat:processed")), String(total));
  assert.equal(await r.zcard(L.key("delayed_queue_schedule")), 0, "the delayed jobs were promoted");
  L.assertNoEmittedErrors();
});
