"use strict";
// Plugins: node-resque's hooks run as node-resque runs them, and the
// built-in plugins the module does atomically behave as node-resque's.
// Each scenario runs once with node-resque 9.7.1 and once with tq-resque.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const NR = require("node-resque");
const TQ = require("..");
const { startServer, waitFor, ns, sleep } = require("../support/helpers");

let server;
let r;
before(async () => {
  server = await startServer();
  r = server.redis();
});
after(async () => {
  r.disconnect();
  await server.stop();
});

/** Runs `scenario(Impl, namespace)` for node-resque and tq-resque: [node-resque's, tq-resque's]. */
async function both(name, scenario) {
  const out = [];
  for (const Impl of [NR, TQ]) out.push(await scenario(Impl, ns(`${name}-${Impl === NR ? "nr" : "tq"}`)));
  return out;
}

/** A Queue and a Worker of `Impl` on `n`; `run(queue, worker, events)` then both end. */
async function withWorker(Impl, n, jobs, run, workerOpts = {}) {
  const connection = server.connection(n);
  const queue = new Impl.Queue({ connection }, jobs);
  await queue.connect();
  const worker = new Impl.Worker({ connection: server.connection(n), queues: ["q"], timeout: 50, name: "host:1", ...workerOpts }, jobs);
  await worker.connect();
  const events = [];
  for (const e of ["job", "success", "failure", "reEnqueue"]) {
    worker.on(e, (queueName, job, x) => events.push([e, job.class, JSON.stringify(job.args), e === "failure" ? x.message : undefined].filter((v) => v !== undefined)));
  }
  const errors = [];
  worker.on("error", (e) => errors.push(String(e)));
  try {
    return await run(queue, worker, events, errors);
  } finally {
    if (worker.running) await worker.end();
    else await worker.queueObject.end();
    await queue.end();
  }
}

test("custom plugins: hooks, their order, and what a false or a throw does", async () => {
  const results = await both("hooks", async (Impl, n) => {
    const calls = [];
    function makePlugin(tag) {
      return class extends Impl.Plugin {
        constructor(...a) {
          super(...a);
          this.name = `P${tag}`;
        }
        async beforeEnqueue() {
          calls.push([tag, "beforeEnqueue", this.func, this.queue, this.args, this.options.mode]);
          return this.options.mode !== "noEnqueue";
        }
        async afterEnqueue() {
          calls.push([tag, "afterEnqueue", this.func]);
          return true;
        }
        async beforePerform() {
          calls.push([tag, "beforePerform", this.func, this.args]);
          return this.options.mode !== "noPerform";
        }
        async afterPerform() {
          calls.push([tag, "afterPerform", this.func, this.worker.error ? this.worker.error.message : null, this.worker.result]);
          if (this.options.mode === "swallow") delete this.worker.error;
          return true;
        }
      };
    }
    const A = makePlugin("A");
    const B = makePlugin("B");
    const jobs = {
      ok: { plugins: [A, B], perform: async (x) => x * 2 },
      refused: { plugins: [A, B], pluginOptions: { PA: { mode: "noEnqueue" } }, perform: async () => "never" },
      skipped: { plugins: [A, B], pluginOptions: { PB: { mode: "noPerform" } }, perform: async () => "never" },
      throws: {
        plugins: [A],
        perform: async () => {
          throw new Error("thrown");
        },
      },
      swallowed: {
        plugins: [A],
        pluginOptions: { PA: { mode: "swallow" } },
        perform: async () => {
          throw new Error("swallowed");
        },
      },
    };
    return withWorker(Impl, n, jobs, async (queue, worker, events, errors) => {
      const replies = [];
      for (const [cls, args] of [
        ["ok", [21]],
        ["refused", [1]],
        ["skipped", [2]],
        ["throws", [3]],
        ["swallowed", [4]],
      ]) {
        replies.push(await queue.enqueue("q", cls, args));
      }
      const queued = await queue.queued("q", 0, -1);
      await worker.start();
      await waitFor("the jobs", async () => (await queue.length("q")) === 0 && events.filter(([e]) => e === "job").length === 4 && !worker.working);
      await sleep(100);
      return { replies, queued, calls, events, failed: (await queue.failed(0, -1)).map((f) => [f.payload.class, f.error]), errors };
    });
  });
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[0].replies, [true, false, true, true, true]);
});

test("QueueLock: a waiting twin is refused; once a worker takes the job, it may be enqueued again", async () => {
  const results = await both("queuelock", async (Impl, n) => {
    const jobs = { uniq: { plugins: ["QueueLock"], perform: async () => "done" } };
    return withWorker(Impl, n, jobs, async (queue, worker, events) => {
      const replies = [await queue.enqueue("q", "uniq", [1]), await queue.enqueue("q", "uniq", [1]), await queue.enqueue("q", "uniq", [2])];
      const locks = Object.keys(await queue.locks()).sort();
      await worker.start();
      await waitFor("both jobs", () => events.filter(([e]) => e === "success").length === 2);
      await worker.end();
      replies.push(await queue.enqueue("q", "uniq", [1]));
      return { replies, locks, events, lengthAfter: await queue.length("q") };
    });
  });
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[0].replies, [true, false, true, true]);
});

test("DelayQueueLock: an enqueue is refused while the same job waits in the delayed queues", async () => {
  const results = await both("delayqueuelock", async (Impl, n) => {
    const jobs = { d: { plugins: ["DelayQueueLock"], perform: async () => {} } };
    const queue = new Impl.Queue({ connection: server.connection(n) }, jobs);
    await queue.connect();
    try {
      await queue.enqueueIn(3600000, "q", "d", [1]);
      return [await queue.enqueue("q", "d", [1]), await queue.enqueue("q", "d", [2]), await queue.length("q")];
    } finally {
      await queue.end();
    }
  });
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[0], [false, true, 1]);
});

test("Noop: a failing job's error goes to its logger and it counts as a success", async () => {
  const results = await both("noop", async (Impl, n) => {
    const logged = [];
    const jobs = {
      n: {
        plugins: ["Noop"],
        pluginOptions: { Noop: { logger: (e) => logged.push(e.message) } },
        perform: async () => {
          throw new Error("ignored");
        },
      },
    };
    return withWorker(Impl, n, jobs, async (queue, worker, events) => {
      await queue.enqueue("q", "n", [1]);
      await worker.start();
      await waitFor("the job", () => events.some(([e]) => e === "success" || e === "failure"));
      return { logged, events, failed: await queue.failedCount() };
    });
  });
  assert.deepEqual(results[1], results[0]);
  assert.deepEqual(results[0].logged, ["ignored"]);
});

test("Retry: the same events, attempts and final failure as node-resque's plugin", { timeout: 60000 }, async () => {
  const results = await both("retry", async (Impl, n) => {
    let attempts = 0;
    const jobs = {
      flaky: {
        plugins: ["Retry"],
        pluginOptions: { Retry: { retryLimit: 3, retryDelay: 100 } },
        perform: async (x) => {
          attempts++;
          throw new Error(`attempt ${attempts} of ${x}`);
        },
      },
    };
    const scheduler = Impl === NR ? new NR.Scheduler({ connection: server.connection(n), timeout: 50 }) : null;
    if (scheduler) {
      await scheduler.connect();
      await scheduler.start();
    }
    try {
      return await withWorker(Impl, n, jobs, async (queue, worker, events) => {
        await queue.enqueue("q", "flaky", [7]);
        await worker.start();
        await waitFor("the final failure", () => events.some(([e]) => e === "failure"), 30000);
        const failed = await queue.failed(0, -1);
        return { attempts, events, failed: failed.map((f) => [f.payload, f.error]) };
      });
    } finally {
      if (scheduler) await scheduler.end();
    }
  });
  assert.deepEqual(results[1], results[0]);
  assert.equal(results[0].attempts, 3);
});

test("JobLock on the take: identical jobs never run at once, and both run", { timeout: 30000 }, async () => {
  const n = ns("joblock");
  let running = 0;
  let most = 0;
  const ran = [];
  const jobs = {
    locked: {
      plugins: ["JobLock"],
      perform: async (x) => {
        running++;
        most = Math.max(most, running);
        await sleep(150);
        running--;
        ran.push(x);
      },
    },
  };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  const workers = [1, 2].map((i) => new TQ.Worker({ connection: server.connection(n), queues: ["q"], timeout: 50, name: `host:${i}` }, jobs));
  try {
    for (const w of workers) await w.connect();
    assert.ok(workers[0].joblockMs > 0, "every job uses JobLock: the take locks (TQ.POP ... JOBLOCK)");
    await queue.enqueue("q", "locked", [1]);
    await queue.enqueue("q", "locked", [1]);
    for (const w of workers) await w.start();
    await waitFor("both runs", () => ran.length === 2);
    assert.equal(most, 1, "never two at once");
    assert.deepEqual(await queue.locks(), {}, "the lock is released with the last ACK");
  } finally {
    for (const w of workers) await w.end();
    await queue.end();
  }
});

test("JobLock beside jobs without it: node-resque's plugin code, with its re-enqueue", { timeout: 30000 }, async () => {
  const n = ns("joblock-mixed");
  let running = 0;
  let most = 0;
  const ran = [];
  const jobs = {
    locked: {
      plugins: ["JobLock"],
      pluginOptions: { JobLock: { enqueueTimeout: 100 } },
      perform: async (x) => {
        running++;
        most = Math.max(most, running);
        await sleep(300);
        running--;
        ran.push(x);
      },
    },
    free: { perform: async () => {} },
  };
  const queue = new TQ.Queue({ connection: server.connection(n) }, jobs);
  await queue.connect();
  const workers = [1, 2].map((i) => new TQ.Worker({ connection: server.connection(n), queues: ["q"], timeout: 50, name: `host:${i}` }, jobs));
  try {
    for (const w of workers) await w.connect();
    assert.equal(workers[0].joblockMs, null, "not every job uses JobLock: no JOBLOCK on the take");
    await queue.enqueue("q", "locked", [1]);
    await queue.enqueue("q", "locked", [1]);
    for (const w of workers) await w.start();
    await waitFor("both runs", () => ran.length === 2);
    assert.equal(most, 1, "never two at once");
    assert.deepEqual(await queue.locks(), {}, "afterPerform released the lock");
  } finally {
    for (const w of workers) await w.end();
    await queue.end();
  }
});
