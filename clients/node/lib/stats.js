"use strict";
// Counters kept at two levels, as ActionHero's api.stats: global (every
// server of the namespace) and local (this server, i.e. process). One
// increment updates both in one MULTI. Hashes `<ns>:stats:global` and
// `<ns>:stats:local:<server>` (outside node-resque's `stat:*`, which its
// stats() and TQ.STATS report).

const os = require("node:os");
const { EventEmitter } = require("node:events");
const { Connection } = require("./connection");

function numbers(hash) {
  const out = {};
  for (const [k, v] of Object.entries(hash || {})) out[k] = Number(v);
  return out;
}

class Stats extends EventEmitter {
  /** @param {{ connection?: object, server?: string }} options */
  constructor(options = {}) {
    super();
    this.options = options;
    this.server = options.server ?? os.hostname() + ":" + process.pid;
    this.connection = new Connection(options.connection);
    this.connection.on("error", (error) => this.emit("error", error));
  }

  async connect() {
    return this.connection.connect();
  }

  async end() {
    return this.connection.end();
  }

  globalKey() {
    return this.connection.key("stats", "global");
  }

  localKey(server = this.server) {
    return this.connection.key("stats", "local", server);
  }

  /** Adds `count` (an integer) to `key` globally and for this server: `{ global, local }` after. */
  async increment(key, count = 1) {
    if (!Number.isInteger(count)) throw new Error(`count must be an integer, not ${count}`);
    const res = await this.connection.redis.multi().hincrby(this.globalKey(), key, count).hincrby(this.localKey(), key, count).exec();
    for (const [err] of res) if (err) throw err;
    return { global: Number(res[0][1]), local: Number(res[1][1]) };
  }

  /** One counter, global or this server's ("local"); 0 when never incremented. */
  async get(key, scope = "global") {
    const hash = scope === "local" ? this.localKey() : this.globalKey();
    return Number((await this.connection.redis.hget(hash, key)) ?? 0);
  }

  /** `{ global: {...}, local: {...} }`, read in one MULTI. */
  async getAll() {
    const res = await this.connection.redis.multi().hgetall(this.globalKey()).hgetall(this.localKey()).exec();
    for (const [err] of res) if (err) throw err;
    return { global: numbers(res[0][1]), local: numbers(res[1][1]) };
  }
}

module.exports = { Stats };
