"use strict";
// node-resque 9's MultiWorker: between minTaskProcessors and
// maxTaskProcessors Workers in this process, one more while more than half
// are busy and the event loop keeps up, one fewer while it lags or most
// are idle. Its Workers are tq-resque's.

const os = require("node:os");
const { EventEmitter } = require("node:events");
const { Worker } = require("./worker");

const EVENTS = ["start", "end", "cleaning_worker", "poll", "ping", "job", "reEnqueue", "success", "failure", "error", "pause", "multiWorkerAction"];

/** node-resque's EventLoopDelay (after tj/node-blocked). */
function eventLoopDelay(limit, interval, fn) {
  let start = process.hrtime.bigint();
  const timer = setInterval(() => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6 - interval;
    fn(ms > limit, Math.round(ms));
    start = process.hrtime.bigint();
  }, interval);
  timer.unref();
  return timer;
}

class MultiWorker extends EventEmitter {
  constructor(options, jobs) {
    super();
    options.name = options.name ?? os.hostname();
    options.minTaskProcessors = options.minTaskProcessors ?? 1;
    options.maxTaskProcessors = options.maxTaskProcessors ?? 10;
    options.timeout = options.timeout ?? 5000;
    options.checkTimeout = options.checkTimeout ?? 500;
    options.maxEventLoopDelay = options.maxEventLoopDelay ?? 10;
    if (options.connection && options.connection.redis && typeof options.connection.redis.setMaxListeners === "function") {
      options.connection.redis.setMaxListeners(options.connection.redis.getMaxListeners() + options.maxTaskProcessors);
    }
    this.workers = [];
    this.options = options;
    this.jobs = jobs;
    this.running = false;
    this.working = false;
    this.name = options.name;
    this.eventLoopBlocked = true;
    this.eventLoopDelay = Infinity;
    this.eventLoopCheckCounter = 0;
    this.stopInProcess = false;
    this.checkTimer = null;
    this.delayTimer = eventLoopDelay(options.maxEventLoopDelay, options.checkTimeout, (blocked, ms) => {
      this.eventLoopBlocked = blocked;
      this.eventLoopDelay = ms;
      this.eventLoopCheckCounter++;
    });
  }

  async startWorker() {
    const id = this.workers.length + 1;
    const worker = new Worker(
      {
        connection: this.options.connection,
        queues: this.options.queues,
        timeout: this.options.timeout,
        leaseMs: this.options.leaseMs,
        name: this.options.name + ":" + process.pid + "+" + id,
        // The first slot takes the process's broadcasts (it is the last
        // one a scale-down stops); the others are not reached by them.
        broadcasts: id === 1,
      },
      this.jobs,
    );
    worker.id = id;
    worker.on("start", () => this.emit("start", worker.id));
    worker.on("end", () => this.emit("end", worker.id));
    worker.on("cleaning_worker", (w, pid) => this.emit("cleaning_worker", worker.id, w, pid));
    worker.on("poll", (queue) => this.emit("poll", worker.id, queue));
    worker.on("ping", (time) => this.emit("ping", worker.id, time));
    worker.on("job", (queue, job) => this.emit("job", worker.id, queue, job));
    worker.on("reEnqueue", (queue, job, plugin) => this.emit("reEnqueue", worker.id, queue, job, plugin));
    worker.on("success", (queue, job, result, duration) => this.emit("success", worker.id, queue, job, result, duration));
    worker.on("failure", (queue, job, failure, duration) => this.emit("failure", worker.id, queue, job, failure, duration));
    worker.on("error", (error, queue, job) => this.emit("error", error, worker.id, queue, job));
    worker.on("pause", () => this.emit("pause", worker.id));
    this.workers.push(worker);
    await worker.connect();
    await worker.start();
  }

  async checkWorkers() {
    let verb;
    const workingCount = this.workers.filter((w) => w.working === true).length;
    this.working = workingCount > 0;
    const n = this.workers.length;
    const { minTaskProcessors: min, maxTaskProcessors: max } = this.options;
    if (this.running === false && n > 0) verb = "--";
    else if (this.running === false && n === 0) verb = "x";
    else if (this.eventLoopBlocked && n > min) verb = "-";
    else if (this.eventLoopBlocked && n === min) verb = "x";
    else if (!this.eventLoopBlocked && n < min) verb = "+";
    else if (!this.eventLoopBlocked && n < max && (n === 0 || workingCount / n > 0.5)) verb = "+";
    else if (!this.eventLoopBlocked && n > min && workingCount / n < 0.5) verb = "-";
    else verb = "x";

    if (verb === "-") {
      const worker = this.workers.pop();
      if (worker) {
        await worker.end();
        this.cleanupWorker(worker);
      }
    } else if (verb === "--") {
      this.stopInProcess = true;
      await Promise.all(
        this.workers.map(async (worker) => {
          await worker.end();
          this.cleanupWorker(worker);
        }),
      );
      this.stopInProcess = false;
      this.workers = [];
      // Nothing is working now (no later check recomputes it once stopped).
      this.working = false;
    } else if (verb === "+") {
      await this.startWorker();
    }
    return { verb, eventLoopDelay: this.eventLoopDelay };
  }

  cleanupWorker(worker) {
    for (const e of EVENTS) worker.removeAllListeners(e);
  }

  async checkWrapper() {
    if (this.checkTimer) clearTimeout(this.checkTimer);
    let result;
    try {
      result = await this.checkWorkers();
    } catch (error) {
      this.emit("error", error);
      result = { verb: "x", eventLoopDelay: this.eventLoopDelay };
    }
    this.emit("multiWorkerAction", result.verb, result.eventLoopDelay);
    // Stopped with every worker ended: no more checks (the process may exit).
    if (!this.running && this.workers.length === 0) return;
    this.checkTimer = setTimeout(() => this.checkWrapper(), this.options.checkTimeout);
  }

  start() {
    this.running = true;
    this.checkWrapper();
  }

  async stop() {
    this.running = false;
    await this.stopWait();
  }

  async end() {
    return this.stop();
  }

  async stopWait() {
    for (;;) {
      const working = this.workers.some((w) => w.working === true);
      if (this.workers.length === 0 && !working && !this.stopInProcess) {
        if (this.checkTimer) clearTimeout(this.checkTimer);
        this.checkTimer = null;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.checkTimeout));
    }
  }
}

module.exports = { MultiWorker };
