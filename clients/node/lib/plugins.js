"use strict";
// node-resque's plugin interface and runner, and which built-in plugins the
// tq module does itself, atomically, in the command that takes or stores a job.

class Plugin {
  constructor(worker, func, queue, job, args, options) {
    this.name = this?.constructor?.name || "Node Resque Plugin";
    this.worker = worker;
    this.queue = queue;
    this.func = func;
    this.job = job;
    this.args = args;
    this.options = options;
    this.queueObject = worker && worker.queueObject ? worker.queueObject : worker;
  }
}

function pluginName(ref) {
  if (typeof ref === "string") return ref;
  if (typeof ref === "function") return ref.name;
  throw new Error("Plugin must be the constructor name or an object");
}

function pluginOptions(job, name) {
  return (job && job.pluginOptions && job.pluginOptions[name]) || {};
}

/**
 * The parts of a job's plugins the module does in the same step as the
 * enqueue, take or failure: QueueLock (TQ.ENQUEUE ... UNIQUE; TQ.POP drops
 * the lock), JobLock (TQ.POP ... JOBLOCK; ACK/FAIL release it), Retry
 * (TQ.FAIL ... RETRY/BACKOFF), DelayQueueLock (TQ.ENQUEUE ... NOTDELAYED).
 * A lock plugin with a custom `key` option stays in JavaScript: the module
 * only knows node-resque's default key.
 */
function serverPlugins(job) {
  const out = { handled: new Set(), queueLock: null, jobLock: null, retry: null, delayQueueLock: false };
  if (!job || !Array.isArray(job.plugins)) return out;
  for (const ref of job.plugins) {
    const name = pluginName(ref);
    const opts = pluginOptions(job, name);
    if (name === "QueueLock" && !opts.key) {
      out.queueLock = { ttlMs: Math.round((opts.lockTimeout || 3600) * 1000) };
      out.handled.add(name);
    } else if (name === "JobLock" && !opts.key) {
      out.jobLock = { ttlMs: Math.round((opts.lockTimeout || 3600) * 1000) };
      out.handled.add(name);
    } else if (name === "DelayQueueLock") {
      out.delayQueueLock = true;
      out.handled.add(name);
    } else if (name === "Retry") {
      const limit = opts.retryLimit || 1;
      const delay = opts.retryDelay || 5000;
      const backoff = Array.isArray(opts.backoffStrategy) && opts.backoffStrategy.length ? opts.backoffStrategy : [delay];
      out.retry = { attempts: limit, backoff: backoff.map((d) => Math.max(0, Math.round(Number(d) || 0))) };
      out.handled.add(name);
    }
  }
  return out;
}

/** The plugin class a reference names: ours for the built-in names. */
function pluginClass(ref) {
  if (typeof ref === "function") return ref;
  // eslint-disable-next-line global-require
  const builtIn = require("./builtinPlugins");
  const cls = builtIn[ref];
  if (!cls) throw new Error(`unknown plugin "${ref}"`);
  return cls;
}

/**
 * node-resque's RunPlugins: each plugin's `type` hook in order; false from
 * one stops the rest and is returned. Plugins named in `skip` are done by
 * the module and not run here.
 */
async function runPlugins(self, type, func, queue, job, args, skip = new Set()) {
  if (!job || !Array.isArray(job.plugins) || job.plugins.length === 0) return true;
  for (const ref of job.plugins) {
    const Cls = pluginClass(ref);
    // node-resque names a plugin class by an instance's `name` (which a
    // constructor may set), and looks its options up by that name.
    const name = typeof ref === "string" ? ref : new Cls(self, func, queue, job, args, {}).name;
    if (skip.has(name)) continue;
    const plugin = new Cls(self, func, queue, job, args, pluginOptions(self.jobs && self.jobs[func], name));
    if (typeof plugin[type] !== "function") continue;
    const toRun = await plugin[type]();
    if (toRun === false) return false;
  }
  return true;
}

module.exports = { Plugin, runPlugins, serverPlugins, pluginName };
