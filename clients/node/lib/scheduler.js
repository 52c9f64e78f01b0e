"use strict";
// node-resque 9's Scheduler on the tq module. The module's timer promotes
// delayed jobs (at their exact time, never early) and takes back jobs whose
// lease ran out, so what is left here is leader election (TQ.LEADER, the
// owner compared inside Redis), node-resque's stuck-worker check, and a
// TQ.PROMOTE per poll for servers whose automatic promotion is off.

const os = require("node:os");
const { EventEmitter } = require("node:events");
const { Queue } = require("./queue");

function globEscape(s) {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

class Scheduler extends EventEmitter {
  constructor(options, jobs = {}) {
    super();
    options.timeout = options.timeout ?? 5000;
    options.stuckWorkerTimeout = options.stuckWorkerTimeout ?? 60 * 60 * 1000;
    options.leaderLockTimeout = options.leaderLockTimeout ?? 60 * 3; // seconds, as node-resque
    options.name = options.name ?? os.hostname() + ":" + process.pid;
    options.retryStuckJobs = options.retryStuckJobs ?? false;
    this.options = options;
    this.name = options.name;
    this.leader = false;
    this.running = false;
    this.processing = false;
    this.timer = null;
    this.queue = new Queue({ connection: options.connection }, jobs);
    this.queue.on("error", (error) => this.emit("error", error));
  }

  async connect() {
    await this.queue.connect();
    this.connection = this.queue.connection;
  }

  async start() {
    this.processing = false;
    if (!this.running) {
      this.emit("start");
      this.running = true;
      this.pollAgainLater();
    }
  }

  async end() {
    this.running = false;
    clearTimeout(this.timer);
    while (this.processing) await new Promise((resolve) => setTimeout(resolve, Math.min(50, this.options.timeout / 2)));
    if (this.connection && this.connection.connected) {
      try {
        await this.releaseLeaderLock();
      } catch (error) {
        this.emit("error", error);
      }
    }
    try {
      await this.queue.end();
      this.emit("end");
    } catch (error) {
      this.emit("error", error);
    }
  }

  async poll() {
    this.processing = true;
    clearTimeout(this.timer);
    try {
      const isLeader = await this.tryForLeader();
      if (!isLeader) {
        this.leader = false;
        return;
      }
      if (!this.leader) {
        this.leader = true;
        this.emit("leader");
      }
      this.emit("poll");
      // Due jobs only, whole buckets at their time or tq's exact times: never early.
      const promoted = await this.connection.tq("PROMOTE");
      if (promoted > 0) this.emit("promoted", promoted);
      await this.checkStuckWorkers();
    } finally {
      this.processing = false;
      this.pollAgainLater();
    }
  }

  pollAgainLater() {
    if (this.running === true) {
      this.timer = setTimeout(() => {
        this.poll().catch((e) => this.emit("error", e));
      }, this.options.timeout);
    }
  }

  /** TQ.LEADER: takes or renews the leader lock in one step. */
  async tryForLeader() {
    if (!this.connection || !this.connection.redis) return false;
    try {
      const ttlMs = Math.max(1, Math.round(this.options.leaderLockTimeout * 1000));
      return (await this.connection.tq("LEADER", this.name, ttlMs)) === 1;
    } catch (error) {
      this.emit("error", error);
      return false;
    }
  }

  /** TQ.RESIGN: releases the leader lock if this scheduler holds it. */
  async releaseLeaderLock() {
    if (!this.connection || !this.connection.redis) return false;
    const released = await this.connection.tq("RESIGN", this.name);
    this.leader = false;
    return released === 1;
  }

  /**
   * node-resque's checkStuckWorkers: a worker whose ping is older than
   * stuckWorkerTimeout is force-cleaned (TQ.FORCECLEAN: its job to failed).
   * tq-resque workers renew their ping while they live, and a job of a dead
   * one comes back by itself when its lease runs out.
   */
  async checkStuckWorkers() {
    if (!this.options.stuckWorkerTimeout) return;
    const redis = this.connection.redis;
    const keys = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", globEscape(this.connection.key("worker", "ping", "")) + "*", "COUNT", 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== "0");
    const nowInSeconds = Math.round(Date.now() / 1000);
    const timeoutInSeconds = Math.round(this.options.stuckWorkerTimeout / 1000);
    for (const k of keys) {
      const raw = await redis.get(k);
      if (!raw) continue;
      let payload;
      try {
        payload = JSON.parse(raw);
      } catch (_) {
        continue;
      }
      const delta = nowInSeconds - payload.time;
      if (delta > timeoutInSeconds) {
        const errorPayload = await this.queue.forceCleanWorker(payload.name);
        this.emit("cleanStuckWorker", payload.name, errorPayload, delta);
      }
    }
    if (this.options.retryStuckJobs === true) await this.queue.retryStuckJobs();
  }
}

module.exports = { Scheduler };
