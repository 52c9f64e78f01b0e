"use strict";
// node-resque 9's Queue, method for method, each backed by the TQ command
// that does it in one atomic step, or by one plain read.

const { EventEmitter } = require("node:events");
const { Connection, isReplyError } = require("./connection");
const { runPlugins, serverPlugins } = require("./plugins");

const PAGE = 10000; // the largest page TQ.* inspection commands give
const KILLED = "Worker Timeout (killed manually)";

function arrayify(o) {
  return Array.isArray(o) ? o : [o];
}

/** A flat [name, value, ...] reply as an object. */
function flat(list) {
  const o = {};
  for (let i = 0; i + 1 < list.length; i += 2) o[list[i]] = list[i + 1];
  return o;
}

/**
 * TQ.STATS' [name, value, ...] as node-resque's stats() object. TQ.STATS
 * always lists the global counters; node-resque lists only the keys that
 * exist, so a global counter at 0 is left out.
 */
function statsObject(list) {
  const data = {};
  for (let i = 0; i + 1 < list.length; i += 2) {
    const [name, value] = [String(list[i]), String(list[i + 1])];
    if ((name === "processed" || name === "failed") && value === "0") continue;
    data[name] = value;
  }
  return data;
}

/** FNV-1a 64 of a record's bytes, 16 hex digits: tq's failed-record id. */
function failedId(record) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(record, "utf8")) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

/** A time in ms as an integer the commands take (the floor keeps node-resque's bucket). */
function ms(t) {
  const n = Math.floor(Number(t));
  if (!Number.isFinite(n)) throw new Error(`not a time in ms: ${t}`);
  return n;
}

/**
 * ActionHero's periodic tasks (those with a `frequency`) run on TQ.RECUR.
 * ActionHero 29 drives them through this Queue only: at boot
 * `enqueue(queue, task, [{}])` on each scheduler process; after each run
 * `del(queue, task, [null])`, `delDelayed(...)`, `enqueueIn(frequency, queue,
 * task, [{}])`; and `stopRecurrentTask` as `del(queue, task, [null], 1)` plus
 * `delDelayed(queue, task, [null])`. ActionHero's api object is read from the
 * module cache (this package never loads ActionHero itself).
 */
let actionheroApi = null;
function periodicTask(job, func, args) {
  // ActionHero's job wrapper gives every periodic task these plugins: only
  // then is its api looked for.
  const plugins = (job && job.plugins) || [];
  if (!plugins.includes("DelayQueueLock") || !plugins.includes("JobLock")) return null;
  if (!actionheroApi) {
    for (const [id, m] of Object.entries(require.cache)) {
      if (/[\\/]actionhero[\\/]dist[\\/]index\.js$/.test(id) && m && m.exports && m.exports.api) {
        actionheroApi = m.exports.api;
        break;
      }
    }
    if (!actionheroApi) return null;
  }
  const tasks = actionheroApi.tasks && actionheroApi.tasks.tasks;
  const t = tasks && Object.prototype.hasOwnProperty.call(tasks, func) ? tasks[func] : null;
  if (!t || !(Number(t.frequency) > 0)) return null;
  return args === undefined || JSON.stringify(args) === RECUR_ARGS ? t : null;
}
// The class of the relay job behind delayed and periodic broadcasts.
const RELAY_CLASS = "tq-resque:broadcast";

// The args of ActionHero's periodic instances: the task's inputs `{}`.
const RECUR_ARGS = "[{}]";

class Queue extends EventEmitter {
  constructor(options, jobs = {}) {
    super();
    this.options = options;
    this.jobs = jobs;
    this.connection = new Connection(options.connection);
    this.connection.on("error", (error) => this.emit("error", error));
  }

  async connect() {
    return this.connection.connect();
  }

  async end() {
    return this.connection.end();
  }

  encode(q, func, args = []) {
    return JSON.stringify({ class: func, queue: q, args });
  }

  /** TQ.ENQUEUE (with UNIQUE for QueueLock, NOTDELAYED for DelayQueueLock). */
  async enqueue(q, func, args = []) {
    args = arrayify(args);
    // An ActionHero periodic task: registered once (TQ.RECUR), whichever
    // process boots; the module's timer enqueues each instance. False when
    // it was already registered (its period updated).
    const periodic = periodicTask(this.jobs[func], func, args);
    if (periodic) return (await this.recur(q, func, periodic.frequency, args)) === 1;
    const job = this.jobs[func];
    const server = serverPlugins(job);
    const toRun = await runPlugins(this, "beforeEnqueue", func, q, job, args, server.handled);
    if (toRun === false) return toRun;
    const extra = [];
    if (server.queueLock) extra.push("UNIQUE", server.queueLock.ttlMs);
    if (server.delayQueueLock) extra.push("NOTDELAYED");
    const reply = await this.connection.tq("ENQUEUE", q, func, JSON.stringify(args), ...extra);
    if (reply === null) return false; // the lock refused it
    await runPlugins(this, "afterEnqueue", func, q, job, args, server.handled);
    return toRun;
  }

  /** TQ.ENQUEUEAT: the duplicate check and the three writes in one step. */
  async enqueueAt(timestamp, q, func, args = [], suppressDuplicateTaskError = false) {
    args = arrayify(args);
    // ActionHero's re-enqueue of a periodic task after its run: the timer
    // does it, so nothing is written (and a stop is not undone by a run
    // that was under way).
    if (periodicTask(this.jobs[func], func, args)) return true;
    try {
      await this.connection.tq("ENQUEUEAT", ms(timestamp), q, func, JSON.stringify(args));
    } catch (error) {
      if (isReplyError(error) && /^DUPLICATE/.test(error.message)) {
        if (suppressDuplicateTaskError) return;
        throw new Error("Job already enqueued at this time with same arguments");
      }
      throw error;
    }
    return true;
  }

  /** TQ.ENQUEUEIN: the delay counts from the server's clock. */
  async enqueueIn(time, q, func, args = [], suppressDuplicateTaskError = false) {
    const delay = parseInt(time.toString(), 10);
    if (!(delay >= 0)) return this.enqueueAt(Date.now() + delay, q, func, args, suppressDuplicateTaskError);
    args = arrayify(args);
    if (periodicTask(this.jobs[func], func, args)) return true; // as in enqueueAt
    try {
      await this.connection.tq("ENQUEUEIN", delay, q, func, JSON.stringify(args));
    } catch (error) {
      if (isReplyError(error) && /^DUPLICATE/.test(error.message)) {
        if (suppressDuplicateTaskError) return;
        throw new Error("Job already enqueued at this time with same arguments");
      }
      throw error;
    }
    return true;
  }

  async queues() {
    return this.connection.redis.smembers(this.connection.key("queues"));
  }

  /** TQ.DELQUEUE: the list and its registration in one step. */
  async delQueue(q) {
    await this.connection.tq("DELQUEUE", q);
  }

  async length(q) {
    return this.connection.redis.llen(this.connection.key("queue", q));
  }

  /** TQ.DEL (count 0: every copy, as LREM; a negative count counts from the tail as LREM does). */
  async del(q, func, args = [], count = 0) {
    args = arrayify(args);
    // ActionHero's stopRecurrentTask (args [null], count 1).
    if (count === 1 && args.length === 1 && args[0] == null && periodicTask(this.jobs[func], func)) return this.stopRecurrent(q, func);
    if (count < 0) return this.connection.redis.lrem(this.connection.key("queue", q), count, this.encode(q, func, args));
    const extra = count > 0 ? ["COUNT", count] : [];
    return this.connection.tq("DEL", q, func, JSON.stringify(args), ...extra);
  }

  /**
   * TQ.DELBYCLASS: every job of class `func` found between start and stop
   * (and every copy of it elsewhere in the queue, as node-resque's LREM
   * removes), in one step. Answers how many were removed.
   */
  async delByFunction(q, func, start = 0, stop = -1) {
    return this.connection.tq("DELBYCLASS", q, func, start, stop);
  }

  /** TQ.DELDELAYED; the buckets in seconds, as node-resque answers. */
  async delDelayed(q, func, args = []) {
    args = arrayify(args);
    const times = await this.connection.tq("DELDELAYED", q, func, JSON.stringify(args));
    return times.map((t) => Math.round(t / 1000));
  }

  /** TQ.SCHEDULEDAT; the buckets in seconds, as node-resque answers. */
  async scheduledAt(q, func, args = []) {
    args = arrayify(args);
    const times = await this.connection.tq("SCHEDULEDAT", q, func, JSON.stringify(args));
    return times.map((t) => Math.round(t / 1000));
  }

  /** TQ.TIMESTAMPS, every page: the times (ms) with delayed jobs, oldest first. */
  async timestamps() {
    const out = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.connection.tq("TIMESTAMPS", offset, PAGE);
      out.push(...page);
      if (page.length < PAGE) return out;
    }
  }

  /** TQ.DELAYEDAT: `{ tasks, rTimestamp }` (rTimestamp in seconds, as node-resque). */
  async delayedAt(timestamp) {
    const at = ms(timestamp);
    const rTimestamp = Math.round(at / 1000);
    const items = await this.connection.tq("DELAYEDAT", at);
    return { tasks: items.map((i) => JSON.parse(i)), rTimestamp };
  }

  async queued(q, start, stop) {
    const items = await this.connection.redis.lrange(this.connection.key("queue", q), start, stop);
    return items.map((i) => JSON.parse(i));
  }

  /** TQ.ALLDELAYED, every page: `{ "<ms>": [job, ...] }`. */
  async allDelayed() {
    const results = {};
    const BUCKETS = 1000; // TQ.ALLDELAYED lists at most 1000 buckets of 1000 jobs
    for (let offset = 0; ; offset += BUCKETS) {
      const page = await this.connection.tq("ALLDELAYED", offset, BUCKETS);
      for (const [at, list] of page) {
        // A bucket longer than one page of jobs: read it whole.
        const jobs = list.length >= 1000 ? (await this.delayedAt(at)).tasks : list.map((i) => JSON.parse(i));
        results[String(at)] = jobs;
      }
      if (page.length < BUCKETS) return results;
    }
  }

  /** TQ.LOCKS to the end of its scan: node-resque's lock:* and workerslock:* keys. */
  async locks() {
    const data = {};
    let cursor = "0";
    do {
      const [next, rows] = await this.connection.tq("LOCKS", cursor, 1000);
      for (const [name, value] of rows) {
        if (name.startsWith("lock:") || name.startsWith("workerslock:")) data[name] = value;
      }
      cursor = String(next);
    } while (cursor !== "0");
    return data;
  }

  async delLock(key) {
    return this.connection.redis.del(this.connection.key(key));
  }

  /** TQ.WORKERS, every page, as `[[name, queues, record], ...]`. */
  async workerRows() {
    const out = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.connection.tq("WORKERS", offset, PAGE);
      out.push(...page);
      if (page.length < PAGE) return out;
    }
  }

  /** `{ 'host:pid': 'queue1,queue2' }` */
  async workers() {
    const workers = {};
    for (const [name, queues] of await this.workerRows()) workers[name] = queues;
    return workers;
  }

  async workingOn(workerName, queues) {
    return this.connection.redis.get(this.connection.key("worker", workerName + ":" + queues));
  }

  /** `{ name: record | "started" }`, from one TQ.WORKERS read. */
  async allWorkingOn() {
    const results = {};
    for (const [name, , record] of await this.workerRows()) {
      results[name] = "started";
      if (record) {
        const parsed = JSON.parse(record);
        results[parsed.worker] = parsed;
      }
    }
    return results;
  }

  /** TQ.FORCECLEAN: the failure record of the job it held (parsed), or undefined. */
  async forceCleanWorker(workerName) {
    const record = await this.connection.tq("FORCECLEAN", workerName);
    if (record === null) {
      const workers = await this.workers();
      if (!(workerName in workers)) this.emit("error", `force-cleaning worker ${workerName}, but cannot find queues`);
      return undefined;
    }
    return JSON.parse(record);
  }

  /** TQ.CLEANWORKERS: `{ worker: failure record }` of the workers cleaned that held a job. */
  async cleanOldWorkers(age) {
    const results = {};
    for (const [worker, record] of await this.connection.tq("CLEANWORKERS", Math.max(0, Math.floor(age)))) {
      if (record) {
        const parsed = JSON.parse(record);
        results[parsed.worker || worker] = parsed;
      }
    }
    return results;
  }

  async failedCount() {
    return this.connection.redis.llen(this.connection.key("failed"));
  }

  async failed(start, stop) {
    const data = await this.connection.redis.lrange(this.connection.key("failed"), start, stop);
    return data.map((i) => JSON.parse(i));
  }

  async removeFailed(failedJob) {
    return this.connection.redis.lrem(this.connection.key("failed"), 1, JSON.stringify(failedJob));
  }

  /**
   * TQ.FAILRETRY ID <id>: the record removed and its job enqueued again in
   * one step (node-resque does the two in separate round trips).
   */
  async retryAndRemoveFailed(failedJob) {
    const id = failedId(JSON.stringify(failedJob));
    let from = 0;
    for (;;) {
      const [retried, next] = await this.connection.tq("FAILRETRY", "ID", id, "FROM", from);
      if (retried > 0) return true;
      if (next === null) throw new Error("This job is not in failed queue");
      from = next;
    }
  }

  /** TQ.FAILRETRY EXCEPTION "Worker Timeout (killed manually)", every step. */
  async retryStuckJobs(upperLimit = Infinity) {
    let from = 0;
    let seen = 0;
    for (;;) {
      const limit = Math.min(100000, Math.max(1, upperLimit - seen));
      const [, next] = await this.connection.tq("FAILRETRY", "EXCEPTION", KILLED, "FROM", from, "LIMIT", limit);
      seen += limit;
      if (next === null || seen >= upperLimit) return;
      from = next;
    }
  }

  async leader() {
    return this.connection.redis.get(this.leaderKey());
  }

  /** TQ.STATS: `{ processed, failed, "processed:<worker>", ... }` (values as strings). */
  async stats() {
    return statsObject(await this.connection.tq("STATS"));
  }

  /**
   * TQ.DETAILS, in the shape of ActionHero's api.tasks.details():
   * `{ queues: { q: { length } }, workers, stats, leader }`, read in one step.
   */
  async details() {
    const d = flat(await this.connection.tq("DETAILS"));
    const stats = statsObject(d.stats || []);
    return {
      queues: Object.fromEntries((d.queues || []).map(([q, n]) => [q, { length: n }])),
      workers: Object.fromEntries((d.workers || []).map(([name, , rec]) => [name, rec === null ? "started" : JSON.parse(rec)])),
      stats,
      leader: d.leader ?? null,
    };
  }

  /**
   * TQ.RECUR: a periodic task, enqueued by the module's timer every
   * `everyMs` (the first at once), never with two instances waiting or
   * running. Resolves 1 when registered, 0 when an existing one was re-timed.
   */
  async recur(q, func, everyMs, args = []) {
    return this.connection.tq("RECUR", func, q, Math.max(1, Math.floor(everyMs)), JSON.stringify(arrayify(args)));
  }

  /** TQ.UNRECUR: 1 when the periodic task was removed, 0 when unknown. */
  async unrecur(q, func, args = []) {
    return this.connection.tq("UNRECUR", func, q, JSON.stringify(arrayify(args)));
  }

  /**
   * Stops a periodic task in one MULTI: TQ.UNRECUR, the instance waiting
   * removed (TQ.DEL) with its QueueLock key; an instance running finishes.
   * Resolves how many it removed: the instances waiting, or 1 for the
   * registration when none was waiting (the pending next run, as a delayed
   * instance counts in node-resque).
   */
  async stopRecurrent(q, func, args = [{}]) {
    const c = this.connection;
    const a = JSON.stringify(arrayify(args));
    const replies = await c.redis
      .multi()
      .call("TQ.UNRECUR", c.ns, func, q, a)
      .call("TQ.DEL", c.ns, q, func, a)
      .del(c.key("lock", func, q, a))
      .exec();
    for (const [error] of replies) if (error) throw error;
    const [unrecurred, waiting] = [Number(replies[0][1]), Number(replies[1][1])];
    return waiting > 0 ? waiting : unrecurred;
  }

  /** Whether `func` with `args` is an instance of an ActionHero periodic task (on TQ.RECUR). */
  isPeriodic(func, args) {
    return periodicTask(this.jobs[func], func, arrayify(args)) !== null;
  }

  /**
   * TQ.BROADCAST: `func` with `args` for every live worker process (a
   * MultiWorker's first slot takes them for its process), once each;
   * resolves how many it reached.
   */
  async broadcast(func, args = []) {
    return this.connection.tq("BROADCAST", func, JSON.stringify(arrayify(args)));
  }

  /**
   * A broadcast at `timestamp` (ms): a relay job in queue `q` that the
   * worker taking it turns into TQ.BROADCAST, so it reaches the processes
   * alive then.
   */
  async broadcastAt(timestamp, q, func, args = []) {
    return this.enqueueAt(timestamp, q, RELAY_CLASS, [func, arrayify(args)]);
  }

  /** A broadcast in `time` ms (see broadcastAt). */
  async broadcastIn(time, q, func, args = []) {
    return this.enqueueIn(time, q, RELAY_CLASS, [func, arrayify(args)]);
  }

  /** A periodic broadcast: the relay job registered with TQ.RECUR (every `everyMs`, never two at once). */
  async recurBroadcast(q, func, everyMs, args = []) {
    return this.recur(q, RELAY_CLASS, everyMs, [func, arrayify(args)]);
  }

  /** Stops a periodic broadcast (TQ.UNRECUR): 1 when removed, 0 when unknown. */
  async unrecurBroadcast(q, func, args = []) {
    return this.unrecur(q, RELAY_CLASS, [func, arrayify(args)]);
  }

  /** TQ.RECURS: `[{ job, everyMs, nextDueMs }]`. */
  async recurs() {
    return (await this.connection.tq("RECURS")).map(([payload, every, next]) => ({ job: JSON.parse(payload), everyMs: Number(every), nextDueMs: Number(next) }));
  }

  leaderKey() {
    return this.connection.key("resque_scheduler_leader_lock");
  }
}

module.exports = { Queue, arrayify, failedId, RELAY_CLASS };
