"use strict";
// Worker and MultiWorker: node-resque's events and records, driven by TQ.BPOP,
// leases, TQ.POP ... ACK and TQ.FAIL; interop with node-resque both ways.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn } = require("node:child_process");
const NR = require("node-resque");
const TQ = require("..");
const { startServer, waitFor, ns } = require("../support/helpers");

let server;
let r;
before(async () => {
  server = await startServer(); // the module's timer on: it promotes and takes back expired leases
  r = server.redis();
});
after(async () => {
  r.disconnect();
  await server.stop();
});

/** Collects a worker's events as [name, ...args]. */
function record(emitter, names) {
  const seen = [];
  for (const name of names) emitter.on(name, (...args) => seen.push([name, ...args]));
  return seen;
}

async function startWorker(t, n, jobs, opts = {}) {
  const worker = new TQ.Worker({ connection: server.connection(n), queues: ["q"], timeout: 200, ...opts }, jobs);
  await worker.connect();
  t.after(() => (worker.running || worker.loopDone ? worker.end() : worker.queueObject.end()));
  return worker;
}

test("success and failure: node-resque's events, stats and failure record", async (t) => {
  const n = ns("events");
  const jobs = {
    add: { perform: async (a, b) => a + b },
    boom: {
      perform: async () => {
        throw new TypeError("bad input");
      },
    },
  };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  t.after(() => queue.end());
  await queue.connect();
  await queue.enqueue("q", "add", [1, 2]);
  await queue.enqueue("q", "boom", [3]);
  await queue.enqueue("q", "nope", []);
  await queue.enqueue("q", "add", [4, 5]);
  const worker = await startWorker(t, n, jobs, { name: "host:1" });
  const seen = record(worker, ["start", "job", "success", "failure", "error", "end"]);
  await worker.start();
  await waitFor("4 jobs done", () => seen.filter(([e]) => e === "success" || e === "failure").length === 4);
  await worker.end();
  const events = seen.map(([e, ...a]) => [e, ...(e === "start" || e === "end" ? [] : a.slice(0, 2))]);
  assert.deepEqual(events.map(([e]) => e), ["start", "job", "success", "job", "failure", "failure", "job", "success", "end"]);
  const success = seen.filter(([e]) => e === "success");
  assert.deepEqual(success.map(([, q, job, result]) => [q, job, result]), [
    ["q", { class: "add", queue: "q", args: [1, 2] }, 3],
    ["q", { class: "add", queue: "q", args: [4, 5] }, 9],
  ]);
  for (const [, , , , duration] of success) assert.equal(typeof duration, "number");
  const failures = seen.filter(([e]) => e === "failure");
  assert.equal(failures[0][3].message, "bad input");
  assert.equal(failures[1][3].message, 'No job defined for class "nope"');

  // The failure records, in node-resque's shape.
  const failed = await queue.failed(0, -1);
  assert.equal(failed.length, 2);
  assert.deepEqual(Object.keys(failed[0]), ["worker", "queue", "payload", "exception", "error", "backtrace", "failed_at"]);
  assert.deepEqual(
    { ...failed[0], backtrace: "<stack>", failed_at: "<when>" },
    { worker: "host:1", queue: "q", payload: { class: "boom", queue: "q", args: [3] }, exception: "TypeError", error: "bad input", backtrace: "<stack>", failed_at: "<when>" },
  );
  assert.match(failed[0].backtrace[0], /at /);
  assert.ok(!Number.isNaN(Date.parse(failed[0].failed_at)));
  assert.equal(failed[1].exception, "Error");
  // Counters, and nothing of the worker left once it ended.
  assert.equal(await r.get(`${n}:stat:processed`), "2");
  assert.equal(await r.get(`${n}:stat:failed`), "2");
  assert.deepEqual(await queue.workers(), {});
  assert.equal(await r.exists(`${n}:worker:ping:host:1`), 0);
  assert.deepEqual(seen.filter(([e]) => e === "error"), []);
});

test("a job's failure record is node-resque's, field for field", async (t) => {
  // The same failing job run by node-resque's Worker and by tq-resque's.
  const jobs = {
    boom: {
      perform: async () => {
        throw new RangeError('out of range "é"');
      },
    },
  };
  const records = [];
  for (const Impl of [NR, TQ]) {
    const n = ns("record");
    const queue = new Impl.Queue({ connection: server.connection(n) }, jobs);
    await queue.connect();
    await queue.enqueue("q", "boom", [1, { a: 2 }]);
    const worker = new Impl.Worker({ connection: server.connection(n), queues: ["q"], name: "host:7", timeout: 100 }, jobs);
    await worker.connect();
    const failed = new Promise((res) => worker.once("failure", res));
    await worker.start();
    await failed;
    await worker.end();
    const [rec] = await queue.failed(0, -1);
    records.push({ ...rec, backtrace: rec.backtrace.length > 0, failed_at: typeof rec.failed_at });
    await queue.end();
  }
  assert.deepEqual(records[1], records[0]);
});

test("node-resque's Queue enqueues and this Worker runs; this Queue enqueues and node-resque's Worker runs", async (t) => {
  const n = ns("interop");
  const ran = [];
  const jobs = {
    add: {
      perform: async (a, b) => {
        ran.push([a, b]);
        return a + b;
      },
    },
  };
  const nrQueue = new NR.Queue({ connection: server.connection(n) }, jobs);
  await nrQueue.connect();
  t.after(() => nrQueue.end());
  for (let i = 0; i < 5; i++) await nrQueue.enqueue("q", "add", [i, 1]);
  await nrQueue.enqueueAt(Date.now() - 1000, "q", "add", [99, 1]);
  const worker = await startWorker(t, n, jobs);
  await worker.start();
  await waitFor("tq-resque's Worker to run node-resque's 6 jobs", () => ran.length === 6);
  await worker.end();
  assert.deepEqual(ran.slice(0, 5), [0, 1, 2, 3, 4].map((i) => [i, 1]));
  assert.deepEqual(ran[5], [99, 1]);

  ran.length = 0;
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  t.after(() => queue.end());
  for (let i = 0; i < 5; i++) await queue.enqueue("q", "add", [i, 2]);
  const nrWorker = new NR.Worker({ connection: server.connection(n), queues: ["q"], timeout: 50 }, jobs);
  await nrWorker.connect();
  await nrWorker.start();
  await waitFor("node-resque's Worker to run tq-resque's 5 jobs", () => ran.length === 5);
  await nrWorker.end();
  assert.deepEqual(ran, [0, 1, 2, 3, 4].map((i) => [i, 2]));
  assert.equal(await r.get(`${n}:stat:processed`), "11");
});

test("take and complete in one round trip: each success is acknowledged by the next take", async (t) => {
  const n = ns("ack");
  const jobs = { add: { perform: async (a) => a } };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  t.after(() => queue.end());
  for (let i = 0; i < 50; i++) await queue.enqueue("q", "add", [i]);
  await r.call("CONFIG", "RESETSTAT");
  const worker = await startWorker(t, n, jobs);
  let done = 0;
  worker.on("success", () => done++);
  await worker.start();
  await waitFor("50 jobs", () => done === 50);
  await worker.end();
  const info = await r.info("commandstats");
  const calls = (cmd) => Number((new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info) || [0, 0])[1]);
  assert.equal(calls("tq.ack"), 0, "no separate TQ.ACK while jobs keep coming");
  assert.ok(calls("tq.pop") >= 49, `TQ.POP ... ACK per job (${calls("tq.pop")})`);
  assert.equal(await r.get(`${n}:stat:processed`), "50");
});

test("end() cuts a wait short and leaves nothing registered", { timeout: 20000 }, async (t) => {
  const n = ns("end");
  const worker = await startWorker(t, n, {}, { timeout: 60000, name: "host:end" });
  const seen = record(worker, ["poll", "end"]);
  await worker.start();
  await waitFor("the worker to wait in TQ.BPOP", () => worker.waiting);
  await worker.end(); // would take the 60 s BPOP timeout without CLIENT UNBLOCK (the test's own timeout is 20 s)
  assert.deepEqual(seen.map(([e]) => e), ["poll", "end"]);
  const keys = await r.keys(`${n}:*`);
  assert.deepEqual(keys.filter((k) => !k.includes(":tq:")), []);
});

test("a job taken while stopping goes back to the head of its queue (TQ.NACK)", async (t) => {
  const n = ns("nack");
  const ran = [];
  const jobs = { add: { perform: async (a) => ran.push(a) } };
  const worker = await startWorker(t, n, jobs, { timeout: 60000 });
  await worker.start();
  await waitFor("the worker to wait in TQ.BPOP", () => worker.waiting);
  // Stop without the unblock: the wait ends with a job, taken while stopping.
  worker.unblock = async () => {};
  const ended = worker.end();
  await r.call("TQ.ENQUEUE", n, "q", "add", "[1]");
  await r.call("TQ.ENQUEUE", n, "q", "add", "[2]");
  await ended;
  assert.deepEqual(ran, []);
  assert.deepEqual(await r.lrange(`${n}:queue:q`, 0, -1), ['{"class":"add","queue":"q","args":[1]}', '{"class":"add","queue":"q","args":[2]}']);
});

test("a worker killed mid-job (SIGKILL) loses nothing: the job runs again after its lease", { timeout: 60000 }, async (t) => {
  const n = ns("kill");
  const child = spawn(process.execPath, [path.join(__dirname, "..", "support", "slow_worker.js"), String(server.port), n], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  await r.call("TQ.ENQUEUE", n, "q", "slow", "[42]");
  await new Promise((resolve) => child.stdout.on("data", (d) => String(d).includes("started 42") && resolve()));
  child.kill("SIGKILL");
  await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(await r.llen(`${n}:queue:q`), 0, "the job is held by the dead worker");
  const ran = [];
  const jobs = { slow: { perform: async (x) => ran.push(x) } };
  const worker = await startWorker(t, n, jobs, { leaseMs: 500 });
  await worker.start();
  await waitFor("the job to come back and run", () => ran.length === 1);
  await worker.end();
  assert.deepEqual(ran, [42]);
  assert.equal(await r.llen(`${n}:failed`), 0);
});

test("a long job keeps its lease by heartbeats", { timeout: 30000 }, async (t) => {
  const n = ns("heartbeat");
  let runs = 0;
  const jobs = {
    long: {
      perform: async () => {
        runs++;
        await new Promise((res) => setTimeout(res, 3000));
      },
    },
  };
  // Heartbeats every 333 ms keep a 1 s lease through a 3 s job.
  const worker = await startWorker(t, n, jobs, { leaseMs: 1000 });
  const errors = record(worker, ["error"]);
  let done = false;
  worker.on("success", () => (done = true));
  await r.call("TQ.ENQUEUE", n, "q", "long", "[]");
  await worker.start();
  await waitFor("the long job", () => done);
  await worker.end();
  assert.equal(runs, 1, "its lease never ran out, so it ran once");
  assert.deepEqual(errors, []);
});

test("Retry: TQ.FAIL ... RETRY re-enqueues, emits reEnqueue, then fails for good", { timeout: 30000 }, async (t) => {
  const n = ns("retry");
  let attempts = 0;
  const jobs = {
    flaky: {
      plugins: [TQ.Plugins.Retry],
      pluginOptions: { Retry: { retryLimit: 3, backoffStrategy: [10, 20] } },
      perform: async () => {
        attempts++;
        throw new Error(`attempt ${attempts}`);
      },
    },
  };
  const worker = await startWorker(t, n, jobs);
  const seen = record(worker, ["reEnqueue", "failure"]);
  await r.call("TQ.ENQUEUE", n, "q", "flaky", "[1]");
  await worker.start();
  await waitFor("the final failure", () => seen.some(([e]) => e === "failure"));
  await worker.end();
  assert.equal(attempts, 3);
  assert.deepEqual(
    seen.map(([e, , , x]) => (e === "reEnqueue" ? [e, x.delay, x.remainingAttempts] : [e, x.message])),
    [
      ["reEnqueue", 10, 2],
      ["reEnqueue", 20, 1],
      ["failure", "attempt 3"],
    ],
  );
  assert.equal(await r.llen(`${n}:failed`), 1);
});

test("MultiWorker scales up under load, runs every job once, and stops", { timeout: 60000 }, async (t) => {
  const n = ns("multi");
  const ran = new Map();
  const jobs = {
    work: {
      perform: async (i) => {
        ran.set(i, (ran.get(i) || 0) + 1);
        await new Promise((res) => setTimeout(res, 20));
      },
    },
  };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  t.after(() => queue.end());
  for (let i = 0; i < 300; i++) await queue.enqueue("q", "work", [i]);
  const multi = new TQ.MultiWorker(
    { connection: server.connection(n), queues: ["q"], timeout: 100, checkTimeout: 50, minTaskProcessors: 1, maxTaskProcessors: 5, maxEventLoopDelay: 1000 },
    jobs,
  );
  const actions = record(multi, ["multiWorkerAction"]);
  const errors = record(multi, ["error"]);
  let most = 0;
  multi.on("job", () => (most = Math.max(most, multi.workers.length)));
  multi.start();
  t.after(() => multi.end());
  await waitFor("300 jobs", () => ran.size === 300, 50000);
  await multi.end();
  assert.ok(most > 1, `more than one worker ran jobs (${most})`);
  assert.ok(actions.some(([, verb]) => verb === "+"));
  assert.deepEqual([...ran.values()].filter((c) => c !== 1), [], "each job ran once");
  assert.deepEqual(await queue.workers(), {});
  assert.deepEqual(errors, []);
});

test("a job whose lease ran out: its late success is refused (error event) and the worker goes on", { timeout: 30000 }, async (t) => {
  const n = ns("late");
  let runs = 0;
  const jobs = {
    late: {
      perform: async () => {
        runs++;
        // The first run outlives its lease (no heartbeat: see below).
        if (runs === 1) await new Promise((res) => setTimeout(res, 1000));
      },
    },
  };
  const worker = await startWorker(t, n, jobs, { leaseMs: 200 });
  worker.startHeartbeat = () => null; // a worker too busy to send heartbeats
  const seen = record(worker, ["success", "error"]);
  await r.call("TQ.ENQUEUE", n, "q", "late", "[]");
  await worker.start();
  await waitFor("the job to run again and succeed", () => seen.some(([e]) => e === "success"));
  await worker.end();
  assert.equal(runs, 2);
  assert.deepEqual(seen.map(([e, x]) => (e === "error" ? [e, x.message.split(" ")[0]] : [e])), [["error", "LEASELOST"], ["success"]]);
});

test("lost replies: connections killed again and again while jobs run; every job runs once and counts once", { timeout: 120000 }, async (t) => {
  const n = ns("lost");
  const N = 2000;
  // Reconnect at once after each kill.
  const connection = { ...server.connection(n), options: { retryStrategy: () => 2 } };
  const ran = new Map();
  const jobs = { add: { perform: async (i) => ran.set(i, (ran.get(i) || 0) + 1) } };
  const queue = new TQ.Queue({ connection }, jobs);
  queue.on("error", () => {}); // its connection is killed too
  await queue.connect();
  t.after(() => queue.end());
  await Promise.all(Array.from({ length: N }, (_, i) => queue.enqueue("q", "add", [i])));
  const worker = await startWorker(t, n, jobs, { connection });
  worker.on("error", () => {}); // connection errors are expected here
  await worker.start();
  const killer = server.redis();
  t.after(() => killer.disconnect());
  let kills = 0;
  while (ran.size < N) {
    // Every client but this one, the worker's included, between two of its commands.
    kills += await killer.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
    await new Promise((res) => setTimeout(res, 5));
  }
  await waitFor("the last completion", async () => (await r.get(`${n}:stat:processed`)) === String(N) || worker.working === false);
  await worker.end();
  t.diagnostic(`connections killed: ${kills}`);
  assert.ok(kills > 10, `connections killed (${kills})`);
  assert.deepEqual([...ran.entries()].filter(([, c]) => c !== 1), [], "no job ran twice");
  assert.equal(ran.size, N);
  assert.equal(await r.get(`${n}:stat:processed`), String(N), "each completion counted once");
  assert.equal(await r.llen(`${n}:failed`), 0);
});

test("queues '*' (the default): every registered queue, in sorted order", { timeout: 30000 }, async (t) => {
  const n = ns("star");
  const ran = [];
  const jobs = { add: { perform: async (x) => ran.push(x) } };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  t.after(() => queue.end());
  await queue.enqueue("b", "add", ["b1"]);
  await queue.enqueue("a", "add", ["a1"]);
  await queue.enqueue("b", "add", ["b2"]);
  const worker = new TQ.Worker({ connection: server.connection(n), timeout: 100, name: "host:star" }, jobs);
  await worker.connect();
  t.after(() => worker.running && worker.end());
  assert.deepEqual(worker.queues, ["*"]);
  await worker.start();
  await waitFor("three jobs", () => ran.length === 3);
  assert.deepEqual(ran, ["a1", "b1", "b2"]);
  assert.deepEqual(await queue.workers(), { "host:star": "*" });
  // A queue registered after the worker started is found by a later wait.
  await queue.enqueue("c", "add", ["c1"]);
  await waitFor("the new queue's job", () => ran.length === 4);
  await worker.end();
  assert.deepEqual(await queue.workers(), {});
});

test("MultiWorker.end() while a job runs: the job finishes and end() returns", { timeout: 15000 }, async (t) => {
  const n = ns("multi-end");
  let finished = 0;
  const jobs = {
    slow: {
      perform: async () => {
        await new Promise((res) => setTimeout(res, 300));
        finished++;
      },
    },
  };
  const multi = new TQ.MultiWorker({ connection: server.connection(n), queues: ["q"], timeout: 100, checkTimeout: 50, minTaskProcessors: 1, maxTaskProcessors: 1, maxEventLoopDelay: 1000 }, jobs);
  const started = new Promise((res) => multi.once("job", res));
  multi.start();
  await r.call("TQ.ENQUEUE", n, "q", "slow", "[]");
  await started;
  // The stop sees a worker working; once it ended, end() must not wait for a check that never comes.
  await multi.end();
  assert.equal(finished, 1, "the running job finished");
  assert.deepEqual(multi.workers, []);
  assert.equal(await r.get(`${n}:stat:processed`), "1");
});

test("end() called while start() is still registering: the worker never starts its loop", { timeout: 15000 }, async (t) => {
  const n = ns("early-end");
  const worker = await startWorker(t, n, { add: { perform: async () => {} } });
  const started = worker.start();
  await worker.end();
  await started.catch(() => {});
  assert.equal(worker.running, false);
  assert.equal(worker.loopDone, null, "no loop left running after end()");
});
