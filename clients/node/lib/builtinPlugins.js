"use strict";
// node-resque's built-in plugins, as node-resque runs them. tq-resque does
// QueueLock, JobLock, Retry and DelayQueueLock in the module instead (see
// serverPlugins in plugins.js); these classes run only where that is not
// possible (a custom lock `key`), and for Noop.

const { Plugin } = require("./plugins");

class QueueLock extends Plugin {
  async beforeEnqueue() {
    const key = this.key();
    const redis = this.queueObject.connection.redis;
    const now = Math.round(Date.now() / 1000);
    const timeout = now + this.lockTimeout() + 1;
    const set = await redis.set(key, timeout, "EX", this.lockTimeout(), "NX");
    if (set === "OK") return true;
    const current = parseInt((await redis.get(key)) || "0", 10);
    if (now <= current) return false;
    await redis.set(key, timeout, "EX", this.lockTimeout());
    return true;
  }
  async beforePerform() {
    await this.queueObject.connection.redis.del(this.key());
    return true;
  }
  lockTimeout() {
    return this.options.lockTimeout || 3600;
  }
  key() {
    if (this.options.key) return typeof this.options.key === "function" ? this.options.key.apply(this) : this.options.key;
    return this.queueObject.connection.key("lock", this.func, this.queue, JSON.stringify(this.args));
  }
}

class JobLock extends Plugin {
  async beforePerform() {
    const key = this.key();
    const now = Math.round(Date.now() / 1000);
    const timeout = now + this.lockTimeout() + 1;
    const locked = await this.queueObject.connection.redis.set(key, timeout, "EX", this.lockTimeout(), "NX");
    if (locked === "OK") return true;
    const opts = this.job.pluginOptions;
    const reEnqueue = opts && opts.JobLock && opts.JobLock.reEnqueue !== undefined && opts.JobLock.reEnqueue !== null ? opts.JobLock.reEnqueue : true;
    if (reEnqueue) await this.queueObject.enqueueIn(this.options.enqueueTimeout || 1001, this.queue, this.func, this.args);
    return false;
  }
  async afterPerform() {
    await this.queueObject.connection.redis.del(this.key());
    return true;
  }
  lockTimeout() {
    return this.options.lockTimeout || 3600;
  }
  key() {
    if (this.options.key) return typeof this.options.key === "function" ? this.options.key.apply(this) : this.options.key;
    return this.queueObject.connection.key("workerslock", this.func, this.queue, JSON.stringify(this.args));
  }
}

// Retry is always done by the module (TQ.FAIL ... RETRY); the class exists
// so that `plugins: [Plugins.Retry]` names it.
class Retry extends Plugin {}

// DelayQueueLock is done by the module (TQ.ENQUEUE ... NOTDELAYED); this is
// node-resque's check (a read, then the enqueue), for plugin runners that
// call it directly.
class DelayQueueLock extends Plugin {
  async beforeEnqueue() {
    const timestamps = await this.queueObject.scheduledAt(this.queue, this.func, this.args);
    return timestamps.length === 0;
  }
}

class Noop extends Plugin {
  async afterPerform() {
    if (this.worker.error) {
      if (typeof this.options.logger === "function") this.options.logger(this.worker.error);
      else console.log(this.worker.error);
      delete this.worker.error;
    }
    return true;
  }
}

module.exports = { QueueLock, JobLock, Retry, DelayQueueLock, Noop };
