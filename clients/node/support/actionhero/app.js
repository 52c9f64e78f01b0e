"use strict";
// A real ActionHero 29 process on the test's redis-server, with node-resque
// swapped for tq-resque (see alias.js). Usage:
//   node -r ./alias.js app.js <project-root> <port> <scenario>
// Scenarios print `RESULT <json>` before stopping; `worker` runs until killed.
const fs = require("node:fs");
const path = require("node:path");

const [, , root, port, scenario] = process.argv;

// The project: ActionHero's own default config, this test's tasks, no servers.
fs.mkdirSync(path.join(root, "dist", "config"), { recursive: true });
fs.mkdirSync(path.join(root, "dist", "tasks"), { recursive: true });
fs.writeFileSync(path.join(root, "package.json"), JSON.stringify({ name: "tq-actionhero-app", version: "0.0.1", private: true }));
const ahConfig = path.join(path.dirname(require.resolve("actionhero/package.json")), "dist", "config");
for (const f of fs.readdirSync(ahConfig)) if (f.endsWith(".js")) fs.copyFileSync(path.join(ahConfig, f), path.join(root, "dist", "config", f));
fs.copyFileSync(path.join(__dirname, "tasks.js"), path.join(root, "dist", "tasks", "tasks.js"));

process.env.PROJECT_ROOT = root;
process.env.ACTIONHERO_TYPESCRIPT_MODE = "false";
process.env.REDIS_PORT = port;
process.env.ACTIONHERO_CONFIG_OVERRIDES = JSON.stringify({
  general: { paths: { task: [path.join(root, "dist", "tasks")], pid: [path.join(root, "pids")], log: [path.join(root, "log")] } },
  tasks: {
    scheduler: scenario !== "worker",
    queues: ["*"],
    timeout: 100,
    checkTimeout: 50,
    minTaskProcessors: 1,
    maxTaskProcessors: 2,
    maxEventLoopDelay: 1000,
    connectionOptions: { tasks: { leaseMs: Number(process.env.LEASE_MS || 60000) } },
  },
  web: { enabled: false },
  websocket: { enabled: false },
  logger: { loggers: [] },
});

const { Process, api, task } = require("actionhero");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 30000) {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(20);
  }
}

(async () => {
  const app = new Process();
  await app.start();
  const result = { queueClass: api.resque.queue.constructor.name, fromPackage: require.resolve("node-resque") };
  if (scenario === "tasks") {
    const [s, us] = await api.redis.clients.tasks.time();
    const now = Number(s) * 1000 + Math.floor(Number(us) / 1000);
    result.enqueue = await task.enqueue("hello", { who: "now" });
    result.enqueueIn = await task.enqueueIn(300, "hello", { who: "in" });
    result.enqueueAt = await task.enqueueAt(now + 400, "hello", { who: "at" });
    result.scheduledAt = (await task.scheduledAt("default", "hello", { who: "at" })).length;
    result.locked = [await task.enqueue("locked", { n: 1 }), await task.enqueue("locked", { n: 1 })];
    result.flaky = await task.enqueue("flaky", {});
    const runs = () => global.tqRuns || {};
    await until(() => `the tasks (runs: ${JSON.stringify(runs())})`, () => {
      const r = runs();
      return r.hello >= 3 && r.locked >= 1 && r.flaky >= 3 && r.tick >= 2;
    });
    result.details = await task.details();
    result.failedCount = await task.failedCount();
    // Periodic: registered once with TQ.RECUR (a second boot's
    // enqueueAllRecurrentTasks adds nothing), never a delayed instance.
    const q = api.resque.queue;
    result.recursBefore = (await q.recurs()).filter((r) => r.job.class === "tick");
    result.enqueueAllAgain = await task.enqueueAllRecurrentTasks();
    result.tickDelayed = (await task.scheduledAt("default", "tick", {})).length;
    // Stopped while an instance waits: the queue paused (TQ.PAUSE) so the
    // timer's next instance stays waiting.
    await q.connection.tq("PAUSE", "default");
    const lockKey = q.connection.key("lock", "tick", "default", "[{}]");
    const tickWaiting = async () => (await q.queued("default", 0, -1)).some((j) => j.class === "tick");
    await until("a tick instance waiting", async () => {
      const [waiting, locked] = [await tickWaiting(), await api.redis.clients.tasks.exists(lockKey)];
      return waiting && locked === 1;
    });
    result.stopRecurrent = await task.stopRecurrentTask("tick");
    result.tickWaitingAfterStop = await tickWaiting();
    result.tickLockAfterStop = await api.redis.clients.tasks.exists(lockKey);
    result.recursAfterStop = (await q.recurs()).filter((r) => r.job.class === "tick").length;
    await q.connection.tq("RESUME", "default");
    const runsAtStop = runs().tick;
    await sleep(1000); // five periods
    result.tickRunsAfterStop = runs().tick - runsAtStop;
    result.stopAgain = await task.stopRecurrentTask("tick");
    result.tickMaxActive = global.tqTickMaxActive;
  } else if (scenario === "worker") {
    // Runs until killed (or SLOW done); enqueues nothing.
    await new Promise(() => {});
  } else if (scenario === "enqueue-slow") {
    result.enqueue = await task.enqueue("slow", { id: 7 });
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  await app.stop();
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`FAIL ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
