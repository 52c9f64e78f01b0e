"use strict";
// node-resque 9's Worker, driven by the tq module: it waits in TQ.BPOP (no
// polling), every take carries a lease that TQ.HEARTBEAT renews while the job
// runs, a success is completed by the TQ.POP ... ACK that takes the next job
// (one round trip per job), a failure by TQ.FAIL (with RETRY for the Retry
// plugin), and a command whose reply was lost is sent again as it was: the
// module answers a repeat as it answered the first.

const os = require("node:os");
const crypto = require("node:crypto");
const { EventEmitter } = require("node:events");
const { Queue, RELAY_CLASS } = require("./queue");
const { isReplyError } = require("./connection");
const { runPlugins, serverPlugins, pluginName } = require("./plugins");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** node-resque's prepareJobs: a bare function is a job's perform. */
function prepareJobs(jobs) {
  const out = {};
  for (const [name, job] of Object.entries(jobs || {})) out[name] = typeof job === "function" ? { perform: job } : job;
  return out;
}

/** Whether every job class uses JobLock with node-resque's key: then every take can lock (TQ.POP ... JOBLOCK). */
function jobLockForAll(jobs) {
  const defs = Object.values(jobs);
  if (defs.length === 0) return null;
  let ttl = 0;
  for (const def of defs) {
    const s = serverPlugins(def);
    if (!s.jobLock) return null;
    ttl = Math.max(ttl, s.jobLock.ttlMs);
  }
  return ttl;
}

class Worker extends EventEmitter {
  constructor(options, jobs = {}) {
    super();
    options.name = options.name ?? os.hostname() + ":" + process.pid;
    options.id = options.id ?? 1;
    options.queues = options.queues ?? "*";
    options.timeout = options.timeout ?? 5000;
    options.looping = options.looping ?? true;
    // The lease may also come with the connection options, the one set of
    // options ActionHero passes through (config.tasks.connectionOptions.tasks).
    options.leaseMs = options.leaseMs ?? (options.connection && options.connection.leaseMs) ?? 60000;
    // Whether broadcasts (TQ.BROADCAST) reach this worker: a MultiWorker
    // leaves them to its first slot, so a process gets each one once.
    options.broadcasts = options.broadcasts ?? true;
    this.options = options;
    this.jobs = prepareJobs(jobs);
    this.name = options.name;
    this.id = options.id;
    this.queues = Array.isArray(options.queues) ? options.queues.slice() : String(options.queues).split(",");
    if (this.queues.length === 0) this.queues = ["*"];
    this.queue = null;
    this.originalQueue = null;
    this.error = null;
    this.result = null;
    this.ready = true;
    this.running = false;
    this.working = false;
    this.job = null;
    this.started = false;
    this.pingTimer = null;
    this.loopDone = null;
    this.blocking = null;
    this.blockingName = `tq-resque-${crypto.randomBytes(6).toString("hex")}`;
    // JobLock on the take itself when every job class asks for it (JOBLOCK
    // locks whatever job the take finds); otherwise node-resque's plugin code.
    this.joblockMs = jobLockForAll(this.jobs);
    this.queueObject = new Queue({ connection: options.connection }, this.jobs);
    this.queueObject.on("error", (error) => this.emit("error", error));
  }

  async connect() {
    await this.queueObject.connect();
    this.connection = this.queueObject.connection;
    // TQ.BPOP holds its connection while it waits: a second one for it.
    this.blocking = this.connection.redis.duplicate({ connectionName: this.blockingName });
    this.blocking.on("error", (error) => this.emit("error", error));
  }

  stringQueues() {
    return this.queues.join(",");
  }

  async start() {
    if (!this.ready) return;
    this.started = true;
    this.emit("start", new Date());
    await this.init();
    if (!this.running) return; // end() came first
    this.loopDone = this.loop().catch((e) => this.emit("error", e));
  }

  async init() {
    if (this.ending) return;
    this.running = true;
    const c = this.connection;
    // node-resque's track and "started" key, so its workers() lists an idle worker.
    await c.redis.sadd(c.key("workers"), this.name + ":" + this.stringQueues());
    await c.redis.set(c.key("worker", this.name, this.stringQueues(), "started"), Math.round(Date.now() / 1000));
    await this.ping();
    this.pingTimer = setInterval(() => this.ping().catch((e) => this.emit("error", e)), this.options.timeout);
  }

  /** TQ.HEARTBEAT without a delivery: node-resque's ping record, and alive for broadcasts. */
  async ping() {
    if (!this.running) return;
    const nowSeconds = Math.round(Date.now() / 1000);
    this.emit("ping", nowSeconds);
    await this.connection.tq("HEARTBEAT", this.name, Math.max(3 * this.options.timeout, 1000), ...this.noBroadcast());
  }

  noBroadcast() {
    return this.options.broadcasts ? [] : ["NOBROADCAST"];
  }

  /**
   * Sends `args` until an answer comes: a refusal is thrown, a lost
   * connection retried with backoff (100 ms to 2 s), the same command each time.
   */
  async send(client, args) {
    let wait = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.call(...args.map(String));
      } catch (error) {
        // Stopping with Redis away: give up after a while (a job held comes
        // back when its lease runs out) rather than hold end() for ever.
        if (isReplyError(error) || this.stopped || (this.ending && attempt >= 10)) throw error;
        this.emit("error", error, this.queue, this.job);
        await sleep(wait);
        wait = Math.min(wait * 2, 2000);
      }
    }
  }

  takeArgs() {
    const a = [this.name, ...this.queues];
    if (this.joblockMs) a.push("JOBLOCK", this.joblockMs);
    a.push("LEASE", this.options.leaseMs);
    return a;
  }

  async loop() {
    let done = null; // a job that succeeded: completed by the next take
    while (this.running || done) {
      try {
        done = await this.step(done);
      } catch (error) {
        // A refusal (LEASELOST: the job's lease ran out and it went back;
        // WRONGTYPE; ...): reported, and the worker goes on after a pause.
        done = null;
        this.emit("error", error, this.queue, this.job);
        if (this.running) {
          this.emit("pause");
          await sleep(this.options.timeout);
        }
      }
    }
  }

  /** One take (completing `done` with it), and the job it took run. */
  async step(done) {
    const ns = this.connection.ns;
    if (!this.running) {
      if (done) await this.ack(done);
      return null;
    }
    let reply;
    if (done) {
      try {
        reply = await this.send(this.blocking, ["TQ.POP", ns, ...this.takeArgs(), "ACK", done.delivery]);
      } catch (error) {
        if (isReplyError(error)) this.emit("error", error, done.queue, done.job);
        else throw error;
        return null;
      }
      this.succeeded(done);
    } else {
      this.emit("poll", this.stringQueues());
      this.waiting = true;
      try {
        reply = await this.send(this.blocking, ["TQ.BPOP", ns, ...this.takeArgs(), this.options.timeout]);
      } finally {
        this.waiting = false;
      }
      if (reply === null && this.running) this.emit("pause");
    }
    if (reply === null) return null;
    const [queue, payload, delivery, deliveries] = reply;
    if (!this.running) {
      // Taken while stopping: give it back, at the head of its queue.
      await this.send(this.connection.redis, ["TQ.NACK", ns, this.name, delivery]);
      return null;
    }
    return this.perform(queue, payload, Number(delivery), Number(deliveries));
  }

  /** TQ.ACK alone (stopping: nothing more to take). */
  async ack(done) {
    try {
      await this.send(this.connection.redis, ["TQ.ACK", this.connection.ns, this.name, done.delivery]);
      this.succeeded(done);
    } catch (error) {
      this.emit("error", error, done.queue, done.job);
    }
  }

  succeeded(done) {
    if (done.emit) this.emit("success", done.queue, done.job, done.result, done.duration);
  }

  /**
   * Runs one job as node-resque's perform does (plugins, events). Returns the
   * success to complete with the next take, or null when it was reported.
   */
  async perform(queue, payload, delivery, deliveries) {
    const startedAt = Date.now();
    let job;
    try {
      job = JSON.parse(payload);
    } catch (error) {
      job = { class: undefined, queue, args: [] };
    }
    this.queue = queue;
    this.job = job;
    this.error = null;
    this.result = null;
    this.working = true;
    this.delivery = delivery;
    const heartbeat = this.startHeartbeat(delivery);
    try {
      if (job.class === RELAY_CLASS) return await this.relay(queue, job, startedAt, delivery, deliveries);
      const def = this.jobs[job.class];
      if (!def) {
        this.error = new Error(`No job defined for class "${job.class}"`);
        return await this.complete(false, startedAt, delivery, deliveries, null);
      }
      if (typeof def.perform !== "function") {
        this.error = new Error(`Missing Job: "${job.class}"`);
        return await this.complete(false, startedAt, delivery, deliveries, null);
      }
      const server = serverPlugins(def);
      // QueueLock: the take dropped the lock. JobLock: the take holds it when JOBLOCK was sent.
      const skip = new Set(["QueueLock", "Retry"].filter((n) => server.handled.has(n)));
      // A periodic task's instance: the take itself took its JobLock key.
      if (this.joblockMs || this.queueObject.isPeriodic(job.class, job.args)) skip.add("JobLock");
      this.emit("job", queue, job);
      let triedAfterPerform = false;
      try {
        const toRun = await runPlugins(this, "beforePerform", job.class, queue, def, job.args, skip);
        if (toRun === false) return await this.complete(false, startedAt, delivery, deliveries, server);
        let callableArgs = [job.args];
        if (job.args === undefined || Array.isArray(job.args)) callableArgs = job.args;
        for (const a of callableArgs || []) if (typeof a === "object" && a !== null) Object.freeze(a);
        this.result = await def.perform.apply(this, callableArgs || []);
        triedAfterPerform = true;
        await runPlugins(this, "afterPerform", job.class, queue, def, job.args, skip);
        return await this.complete(true, startedAt, delivery, deliveries, server);
      } catch (error) {
        this.error = error;
        if (!triedAfterPerform) {
          try {
            await runPlugins(this, "afterPerform", job.class, queue, def, job.args, skip);
          } catch (e) {
            if (e && !this.error) this.error = e;
          }
        }
        return await this.complete(!this.error, startedAt, delivery, deliveries, server);
      }
    } finally {
      clearInterval(heartbeat);
      this.working = false;
      this.job = null;
    }
  }

  /**
   * A delayed or periodic broadcast (Queue#broadcastAt/In, recurBroadcast):
   * the job it carries broadcast now (TQ.BROADCAST), then completed as a success.
   */
  async relay(queue, job, startedAt, delivery, deliveries) {
    const [func, args] = Array.isArray(job.args) ? job.args : [];
    try {
      if (typeof func !== "string" || func === "") throw new Error(`${RELAY_CLASS}: args must be [class, args]`);
      this.result = await this.send(this.connection.redis, ["TQ.BROADCAST", this.connection.ns, func, JSON.stringify(args === undefined ? [] : args)]);
    } catch (error) {
      this.error = error;
    }
    return this.complete(!this.error, startedAt, delivery, deliveries, null);
  }

  /** TQ.HEARTBEAT <delivery> every third of the lease while the job runs. */
  startHeartbeat(delivery) {
    const every = Math.max(1, Math.floor(this.options.leaseMs / 3));
    return setInterval(() => {
      this.connection.tq("HEARTBEAT", this.name, this.options.leaseMs, delivery, ...this.noBroadcast()).catch((error) => {
        // LEASELOST / NOJOB: the lease ran out and the job went back; its
        // report will be refused the same way. (A heartbeat that crossed the
        // job's own completion is no news.)
        if (this.working && this.delivery === delivery) this.emit("error", error, this.queue, this.job);
      });
    }, every);
  }

  async complete(toRespond, startedAt, delivery, deliveries, server) {
    const duration = Date.now() - startedAt;
    const queue = this.queue;
    const job = this.job;
    const ns = this.connection.ns;
    if (this.error) {
      const err = this.error;
      const exception = err && err.name !== undefined ? String(err.name) : "Error";
      const message = err && err.message !== undefined ? String(err.message) : String(err);
      const backtrace = err && err.stack ? String(err.stack).split("\n").slice(1) : [];
      const args = ["TQ.FAIL", ns, this.name, delivery, exception, message, JSON.stringify(backtrace)];
      if (server && server.retry) args.push("RETRY", server.retry.attempts, "BACKOFF", server.retry.backoff.join(","));
      try {
        const reply = await this.send(this.connection.redis, args);
        if (Array.isArray(reply) && reply[0] === "retry") {
          // node-resque's Retry plugin: reEnqueue, and the job counts as a success.
          // node-resque's Retry passes the job's definition (the jobs-map
          // entry) with the args set, not the payload.
          const def = { ...this.jobs[job.class], args: job.args };
          this.emit("reEnqueue", queue, def, { delay: Number(reply[1]), remainingAttempts: server.retry.attempts - deliveries, err });
          this.emit("success", queue, job, this.result, duration);
        } else {
          this.emit("failure", queue, job, err, duration);
        }
      } catch (error) {
        this.emit("error", error, queue, job);
      }
      return null;
    }
    // A job a plugin stopped (beforePerform false) ends too, without a success event.
    return { delivery, queue, job, result: this.result, duration, emit: toRespond };
  }

  /**
   * node-resque's end(): no new jobs; a running job finishes and is
   * reported; a wait in TQ.BPOP is cut short (CLIENT UNBLOCK), and a job it
   * took meanwhile goes back with TQ.NACK. Then the worker unregisters.
   */
  async end() {
    this.ending = true;
    this.running = false;
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.loopDone) {
      if (this.waiting) await this.unblock();
      await this.loopDone;
      this.loopDone = null;
    }
    if (this.connection && this.connection.connected) {
      try {
        await this.untrack();
      } catch (error) {
        this.emit("error", error);
      }
    }
    this.stopped = true;
    if (this.blocking) this.blocking.disconnect();
    await this.queueObject.end();
    this.emit("end", new Date());
  }

  /**
   * CLIENT UNBLOCK of our TQ.BPOP, found by its connection name, until the
   * wait ends: the TQ.BPOP may not have reached the server yet when end()
   * comes (an unblock then finds nothing blocked). If CLIENT is refused
   * (ACL), the wait ends by its timeout.
   */
  async unblock() {
    while (this.waiting) {
      try {
        const list = await this.connection.redis.client("LIST");
        for (const line of String(list).split("\n")) {
          if (line.includes(` name=${this.blockingName} `)) {
            const id = /(?:^|\s)id=(\d+)/.exec(line);
            if (id) await this.connection.redis.client("UNBLOCK", id[1]);
          }
        }
      } catch (_) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** TQ.UNTRACK, and node-resque's per-worker counters as its untrack() deletes them. */
  async untrack() {
    const c = this.connection;
    await c.tq("UNTRACK", this.name, this.stringQueues());
    await c.redis.del(c.key("stat", "failed", this.name), c.key("stat", "processed", this.name));
  }

  /** node-resque's performInline: runs a job here, writing nothing to Redis. */
  async performInline(func, args = []) {
    const q = "_direct-queue-" + this.name;
    if (!Array.isArray(args)) args = [args];
    if (this.started) throw new Error("Worker#performInline can not be used on a started worker");
    if (!this.jobs[func]) throw new Error(`No job defined for class "${func}"`);
    if (!this.jobs[func].perform) throw new Error(`Missing Job: "${func}"`);
    let triedAfterPerform = false;
    try {
      const toRun = await runPlugins(this, "beforePerform", func, q, this.jobs[func], args);
      if (toRun === false) return;
      this.result = await this.jobs[func].perform.apply(this, args);
      triedAfterPerform = true;
      await runPlugins(this, "afterPerform", func, q, this.jobs[func], args);
      return this.result;
    } catch (error) {
      this.error = error;
      if (!triedAfterPerform) {
        try {
          await runPlugins(this, "afterPerform", func, this.queue, this.jobs[func], args);
        } catch (e) {
          if (e && !this.error) this.error = e;
        }
      }
      if (this.error) throw this.error;
    }
  }
}

module.exports = { Worker, prepareJobs, pluginName };
