"use strict";
// A Redis connection with node-resque's options and key naming, plus the
// helpers every tq-resque class uses to send TQ commands.

const { EventEmitter } = require("node:events");
const Redis = require("ioredis");

/** True for an error the server sent (a refusal), false for a lost connection. */
function isReplyError(error) {
  return error instanceof Redis.ReplyError;
}

class Connection extends EventEmitter {
  /**
   * @param {object} options node-resque's connection options: host, port,
   *   database, namespace (a string or an array joined with ":"), options
   *   (passed to ioredis), redis (an existing ioredis client to use).
   */
  constructor(options = {}) {
    super();
    options.pkg = options.pkg ?? "ioredis";
    options.host = options.host ?? "127.0.0.1";
    options.port = options.port ?? 6379;
    options.database = options.database ?? 0;
    options.namespace = options.namespace ?? "resque";
    options.scanCount = options.scanCount ?? 10;
    options.options = options.options ?? {};
    this.options = options;
    this.connected = false;
    this.redis = null;
    this.eventListeners = {};
    // The namespace as one string: the first argument of every TQ command.
    this.ns = this.key();
  }

  async connect() {
    if (this.options.redis) {
      this.redis = this.options.redis;
    } else {
      this.redis = new Redis(this.options.port, this.options.host, { ...this.options.options, db: this.options.database });
    }
    this.eventListeners.error = (error) => this.emit("error", error);
    this.eventListeners.end = () => {
      this.connected = false;
    };
    for (const [name, handler] of Object.entries(this.eventListeners)) this.redis.on(name, handler);
    try {
      if (!this.options.redis && this.options.database) await this.redis.select(this.options.database);
      // node-resque checks the connection by writing a key; tq's commands
      // must also exist, or nothing would work.
      const [info] = await this.redis.call("COMMAND", "INFO", "tq.enqueue");
      if (!info) throw new Error("the tq module is not loaded in this Redis server (COMMAND INFO tq.enqueue is empty)");
      this.connected = true;
    } catch (error) {
      this.connected = false;
      this.emit("error", error);
    }
  }

  /**
   * A second client to the same server for blocking commands (TQ.BPOP),
   * which would hold up everything else sent on a shared one.
   */
  duplicate() {
    const r = this.redis.duplicate();
    r.on("error", (error) => this.emit("error", error));
    return r;
  }

  end() {
    if (!this.redis) return;
    for (const [name, handler] of Object.entries(this.eventListeners)) this.redis.off(name, handler);
    if (!this.options.redis) this.redis.disconnect();
    this.connected = false;
  }

  /** node-resque's key(): the namespace and the parts, joined with ":". */
  key(...parts) {
    const ns = Array.isArray(this.options.namespace) ? this.options.namespace : [this.options.namespace];
    return [...ns, ...parts].filter((p) => String(p).trim()).join(":");
  }

  /** A TQ command on this namespace: `TQ.<name> <ns> args...`. */
  tq(name, ...args) {
    return this.redis.call(`TQ.${name}`, this.ns, ...args.map(String));
  }
}

module.exports = { Connection, isReplyError };
