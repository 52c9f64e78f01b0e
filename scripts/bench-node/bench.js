// Node side of tq's benchmarks, run by scripts/bench_all.sh against servers it
// started. Each mode prints one line of key=value pairs. Timing figures live
// in benchmarks, never in tests.
//
//   node bench.js cycle <tq|node-resque|bullmq> <port> <jobs> <consumers> [batch|live]
//     Full job cycle in one Node process: a producer keeps WINDOW enqueues
//     outstanding on its own connection and <consumers> consumers run a
//     no-op job each; jobs/s = jobs / (first enqueue sent .. last job done).
//     batch: enqueue all, then start the consumers (drain_rate: from their
//     start to the last job done); live: the consumers wait on the empty
//     queue while the producer sends.
//       tq:          TQ.ENQUEUE; consumers TQ.BPOP, then loop no-op ->
//                    TQ.POP ... ACK (completes the job and takes the next)
//                    while that finds jobs (one ioredis connection each)
//       node-resque: Queue.enqueue; <consumers> Workers (own connections)
//       tq-resque:   the Node package (clients/node): Queue.enqueue;
//                    <consumers> Workers (tq-resque-multi: one MultiWorker
//                    of <consumers>), each a TQ.BPOP / TQ.POP ... ACK loop
//       bullmq:      Queue.add; one Worker with concurrency <consumers>,
//                    removeOnComplete (node-resque and tq keep nothing either)
//
//   node bench.js pickup <tq-resque|node-resque> <port> <jobs> <consumers>
//     Pickup latency from enqueue to the job starting (see pickup()).
//
//   node bench.js mem-waiting <system> <port> <jobs>
//     Keyspace memory per waiting job: <jobs> jobs enqueued by the system's
//     own producer (same class and args), delta / jobs.
//
//   node bench.js mem-inflight <system> <port> <workers>
//     Keyspace memory per job in flight: <workers> distinct workers, idle
//     after a first round of jobs (baseline), then each holding one job
//     (queue empty again): delta / workers. The keyspace holds 100k filler
//     keys throughout (see fillKeyspace).
//
// "Keyspace memory" is INFO's used_memory less client buffers
// (mem_clients_normal) and cached scripts (used_memory_scripts), so it counts
// keys, values and the keyspace's own tables.
"use strict";

const Redis = require("ioredis");
const NR = require("node-resque");
const { Queue, Worker } = require("bullmq");

const WINDOW = 50; // enqueues outstanding at once
const NS = "resque"; // node-resque's default namespace, also used for tq
const QUEUE = "bench";
const CLASS = "add";
const args = (i) => [i, 2];

const [mode, system, portArg, nArg, cArg, shape = "live"] = process.argv.slice(2);
const port = Number(portArg);
const n = Number(nArg);
const connection = { host: "127.0.0.1", port };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (kv) =>
  console.log(
    Object.entries(kv)
      .map(([k, v]) => `${k}=${v}`)
      .join(" "),
  );

async function waitFor(what, cond, ms = 120000) {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// Runs enqueue(0..count-1), `WINDOW` at a time.
async function produce(count, enqueue) {
  let next = 0;
  const lane = async () => {
    while (next < count) await enqueue(next++);
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
}

async function keyspaceMemory(redis) {
  await sleep(200); // let the server's cron settle client buffers
  const info = await redis.info("memory");
  const f = (name) => Number((info.match(new RegExp(`^${name}:(\\d+)`, "m")) || [])[1] || 0);
  return f("used_memory") - f("mem_clients_normal") - f("used_memory_scripts");
}

// ------------------------------------------------------------------ cycle

async function cycle() {
  const consumers = Number(cArg);
  let done = 0;
  let t0 = 0;
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const oneDone = () => {
    if (++done === n) finished(process.hrtime.bigint());
  };
  let start, stop, enqueue;

  if (system === "tq") {
    const prod = new Redis(connection);
    const conns = Array.from({ length: consumers }, () => new Redis(connection));
    let running = true;
    start = async () => {
      for (const [w, c] of conns.entries()) {
        (async () => {
          const worker = `bench:${w + 1}`;
          while (running) {
            let job = await c.call("TQ.BPOP", NS, worker, QUEUE, 200);
            while (job) {
              JSON.parse(job[1]); // what a worker does with the payload
              // Complete this delivery (job[2]) and take the next job.
              job = await c.call("TQ.POP", NS, worker, QUEUE, "ACK", job[2]);
              oneDone();
            }
          }
        })().catch((e) => running && console.error(e));
      }
    };
    enqueue = (i) => prod.call("TQ.ENQUEUE", NS, QUEUE, CLASS, JSON.stringify(args(i)));
    stop = async () => {
      running = false;
      prod.disconnect();
      conns.forEach((c) => c.disconnect());
    };
  } else if (system === "node-resque") {
    const queue = new NR.Queue({ connection });
    await queue.connect();
    const jobs = { [CLASS]: { perform: async () => oneDone() } };
    // timeout: the pause after an empty poll (and the ping interval);
    // node-resque's default is 5000 ms.
    const workers = Array.from(
      { length: consumers },
      (_, w) => new NR.Worker({ connection, queues: [QUEUE], timeout: 100, name: `bench:${w + 1}` }, jobs),
    );
    for (const w of workers) {
      w.on("error", (e) => console.error(e));
      await w.connect();
    }
    start = async () => {
      for (const w of workers) await w.start();
    };
    enqueue = (i) => queue.enqueue(QUEUE, CLASS, args(i));
    stop = async () => {
      await Promise.all(workers.map((w) => w.end()));
      await queue.end();
    };
  } else if (system === "tq-resque" || system === "tq-resque-multi") {
    // The Node package (clients/node): node-resque's API on TQ commands;
    // <consumers> Workers, or one MultiWorker of <consumers> (which, as
    // node-resque's, starts one worker per checkTimeout).
    const TQ = require("../../clients/node");
    const queue = new TQ.Queue({ connection });
    await queue.connect();
    const jobs = { [CLASS]: { perform: async () => oneDone() } };
    let workers = [];
    let multi = null;
    if (system === "tq-resque") {
      workers = Array.from({ length: consumers }, (_, w) => new TQ.Worker({ connection, queues: [QUEUE], timeout: 100, name: `bench:${w + 1}` }, jobs));
      for (const w of workers) {
        w.on("error", (e) => console.error(e));
        await w.connect();
      }
    } else {
      multi = new TQ.MultiWorker({ connection, queues: [QUEUE], timeout: 100, minTaskProcessors: consumers, maxTaskProcessors: consumers }, jobs);
      multi.on("error", (e) => console.error(e));
    }
    start = async () => {
      if (multi) {
        multi.start();
        await waitFor("the MultiWorker's workers", () => multi.workers.length === consumers);
      }
      for (const w of workers) await w.start();
    };
    enqueue = (i) => queue.enqueue(QUEUE, CLASS, args(i));
    stop = async () => {
      if (multi) await multi.end();
      await Promise.all(workers.map((w) => w.end()));
      await queue.end();
    };
  } else if (system === "bullmq") {
    const queue = new Queue(QUEUE, { connection });
    const worker = new Worker(QUEUE, async () => {}, {
      connection: { ...connection, maxRetriesPerRequest: null },
      concurrency: consumers,
      autorun: false,
    });
    worker.on("completed", oneDone);
    worker.on("error", (e) => console.error(e));
    await queue.waitUntilReady();
    await worker.waitUntilReady();
    start = async () => {
      worker.run().catch((e) => console.error(e));
    };
    enqueue = (i) => queue.add(CLASS, args(i), { removeOnComplete: true });
    stop = async () => {
      await worker.close();
      await queue.close();
    };
  } else {
    throw new Error(`unknown system ${system}`);
  }

  if (shape !== "batch" && shape !== "live") throw new Error(`unknown shape ${shape}`);
  const batch = shape === "batch";
  if (!batch) {
    await start();
    await sleep(300); // every consumer waiting
  }
  t0 = process.hrtime.bigint();
  await produce(n, enqueue);
  const enqueued = process.hrtime.bigint();
  if (batch) await start();
  const t1 = await allDone;
  const secs = Number(t1 - t0) / 1e9;
  const drain = Number(t1 - enqueued) / 1e9;
  out({
    rate: Math.round(n / secs),
    secs: secs.toFixed(2),
    enqueue_rate: Math.round(n / (Number(enqueued - t0) / 1e9)),
    ...(batch ? { drain_rate: Math.round(n / drain) } : {}),
    jobs: done,
  });
  await stop();
}

// ----------------------------------------------------------------- pickup

// node bench.js pickup <tq-resque|node-resque> <port> <jobs> <consumers>
// Pickup latency: <consumers> idle Workers (timeout 100 ms: tq-resque's
// TQ.BPOP wait, node-resque's pause between polls), then <jobs> enqueued in
// an open loop at PICKUP_RATE jobs/s by Queue.enqueue; each job's latency is
// from just before its enqueue call to the start of its perform, both read
// from this process's clock. Prints p50/p99/max ms.
const PICKUP_RATE = 100;
async function pickup() {
  const consumers = Number(cArg);
  const sent = new Map();
  const lat = [];
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const perform = async (i) => {
    const t = sent.get(i);
    if (t !== undefined) lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (lat.length === n) finished();
  };
  const jobs = { [CLASS]: { perform } };
  const lib = system === "tq-resque" ? require("../../clients/node") : system === "node-resque" ? NR : null;
  if (!lib) throw new Error(`pickup: unknown system ${system}`);
  const queue = new lib.Queue({ connection });
  await queue.connect();
  const workers = Array.from({ length: consumers }, (_, w) => new lib.Worker({ connection, queues: [QUEUE], timeout: 100, name: `pick:${w + 1}` }, jobs));
  for (const w of workers) {
    w.on("error", (e) => console.error(e));
    await w.connect();
    await w.start();
  }
  await sleep(500); // every worker idle
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    // Open loop: job i is sent at t0 + i / rate, whatever came before.
    const due = t0 + BigInt(Math.round((i * 1e9) / PICKUP_RATE));
    const wait = Number(due - process.hrtime.bigint()) / 1e6;
    if (wait > 0) await sleep(wait);
    sent.set(i, process.hrtime.bigint());
    queue.enqueue(QUEUE, CLASS, [i]).catch((e) => console.error(e));
  }
  await allDone;
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3);
  out({ p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1].toFixed(3), jobs: lat.length, rate: PICKUP_RATE });
  await Promise.all(workers.map((w) => w.end()));
  await queue.end();
}

// ----------------------------------------------------------------- memory

// Every mode first runs a warm-up round of the same operations, so that
// one-off allocations (the first key of a kind, a module's namespace cache,
// command tables growing) fall before the baseline, not into the figure.
const WARM = 1000;

async function memWaiting() {
  const admin = new Redis(connection);
  let enqueue, drain, close;
  if (system === "tq") {
    const c = new Redis(connection);
    enqueue = (i) => c.call("TQ.ENQUEUE", NS, QUEUE, CLASS, JSON.stringify(args(i)));
    drain = () => c.del(`${NS}:queue:${QUEUE}`);
    close = () => c.quit();
  } else if (system === "node-resque") {
    const queue = new NR.Queue({ connection });
    await queue.connect();
    enqueue = (i) => queue.enqueue(QUEUE, CLASS, args(i));
    drain = () => queue.delQueue(QUEUE);
    close = () => queue.end();
  } else if (system === "bullmq") {
    const queue = new Queue(QUEUE, { connection });
    await queue.waitUntilReady();
    enqueue = (i) => queue.add(CLASS, args(i), { removeOnComplete: true });
    drain = () => queue.drain();
    close = () => queue.close();
  } else {
    throw new Error(`unknown system ${system}`);
  }
  await produce(WARM, enqueue);
  await drain();
  const m0 = await keyspaceMemory(admin);
  await produce(n, enqueue);
  await close(); // only the measuring connection left
  const m1 = await keyspaceMemory(admin);
  out({ bytes_per_job: Math.round((m1 - m0) / n), jobs: n, bytes: m1 - m0 });
  admin.disconnect();
}

// FILLER keys of the benchmark's own, so that the keyspace's bucket array
// (which doubles as keys are added) stays the same size while measuring:
// the figures are then the keys and values themselves, not where a power of
// two happened to fall.
const FILLER = 100000;
async function fillKeyspace(redis) {
  for (let i = 0; i < FILLER; i += 1000) {
    const kv = [];
    for (let j = i; j < Math.min(i + 1000, FILLER); j++) kv.push(`filler:${j}`, "1");
    await redis.mset(kv);
  }
  await sleep(1000); // the server's cron finishes rehashing
}

// The workers of each system, `w` of them, each able to take one job:
// round(false) puts `w` jobs through them to completion (the warm-up: the
// workers end up registered and idle), round(true) has each hold one job.
async function inflightRig(w) {
  const names = Array.from({ length: w }, (_, i) => `bench:${i + 1}`);
  if (system === "tq") {
    const c = new Redis(connection);
    const each = async (f) => {
      const p = c.pipeline();
      names.forEach((name, i) => f(p, name, i));
      return (await p.exec()).map(([e, v]) => (e ? null : v));
    };
    return async (hold) => {
      await each((p, _, i) => p.call("TQ.ENQUEUE", NS, QUEUE, CLASS, JSON.stringify(args(i))));
      const popped = await each((p, name) => p.call("TQ.POP", NS, name, QUEUE));
      // Each ACK names the delivery its pop replied.
      if (!hold) await each((p, name, i) => popped[i] && p.call("TQ.ACK", NS, name, popped[i][2]));
      return popped.filter((v) => v).length;
    };
  }
  let hold = false;
  let holding = 0;
  let completed = 0;
  let release;
  const released = new Promise((r) => (release = r));
  const perform = async () => {
    if (hold) {
      holding++;
      await released;
    }
  };
  let enqueue;
  if (system === "node-resque") {
    // One shared connection: thousands of workers, one process.
    const shared = new Redis(connection);
    shared.setMaxListeners(0); // every worker listens on it
    const queue = new NR.Queue({ connection: { redis: shared } });
    await queue.connect();
    for (const name of names) {
      const wk = new NR.Worker(
        { connection: { redis: shared }, queues: [QUEUE], timeout: 1000, name },
        { [CLASS]: { perform } },
      );
      wk.on("error", (e) => console.error(e));
      wk.on("success", () => completed++);
      await wk.connect();
      await wk.start();
    }
    enqueue = () => produce(w, (i) => queue.enqueue(QUEUE, CLASS, args(i)));
  } else if (system === "bullmq") {
    const queue = new Queue(QUEUE, { connection });
    await queue.waitUntilReady();
    const worker = new Worker(QUEUE, perform, {
      connection: { ...connection, maxRetriesPerRequest: null },
      concurrency: w,
    });
    worker.on("error", (e) => console.error(e));
    worker.on("completed", () => completed++);
    await worker.waitUntilReady();
    enqueue = () =>
      queue.addBulk(Array.from({ length: w }, (_, i) => ({ name: CLASS, data: args(i), opts: { removeOnComplete: true } })));
  } else {
    throw new Error(`unknown system ${system}`);
  }
  return async (h) => {
    hold = h;
    await enqueue();
    if (h) await waitFor("every worker holding a job", async () => holding === w);
    else await waitFor("every job done", async () => completed === w);
    return h ? holding : completed;
  };
}

async function memInflight() {
  const admin = new Redis(connection);
  await fillKeyspace(admin);
  const round = await inflightRig(n);
  await round(false);
  await sleep(300);
  const m0 = await keyspaceMemory(admin);
  const held = await round(true);
  const m1 = await keyspaceMemory(admin);
  out({ bytes_per_job: Math.round((m1 - m0) / n), workers: n, held, bytes: m1 - m0 });
  process.exit(0); // workers still hold their jobs; the server is thrown away
}

const modes = { cycle, pickup, "mem-waiting": memWaiting, "mem-inflight": memInflight };
if (!modes[mode] || !port || !n) {
  console.error("usage: node bench.js <cycle|mem-waiting|mem-inflight> <tq|node-resque|bullmq> <port> <n> [consumers]");
  process.exit(2);
}
modes[mode]()
  .then(() => process.exit(0))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
