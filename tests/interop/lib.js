"use strict";
// Shared helpers for the node-resque interop scripts. Each script is run as
//   node tests/interop/<name>.js <port> <namespace>
// by tests/interop.rs against a redis-server with the tq module loaded.

const assert = require("node:assert/strict");
const Redis = require("ioredis");
const NR = require("node-resque");

function usage() {
  const [, script, port, namespace] = process.argv;
  if (!port || !namespace || !/^\d+$/.test(port)) {
    console.error(`usage: node ${script} <port> <namespace>`);
    process.exit(2);
  }
  return { port: Number(port), namespace };
}

const { port, namespace } = usage();

/** node-resque connection options for this server and namespace. */
function connection() {
  return { host: "127.0.0.1", port, namespace };
}

/** A fresh ioredis client (the caller must `quit()` it; `closeAll` does). */
const clients = [];
function redis() {
  const r = new Redis(port, "127.0.0.1", { lazyConnect: false, maxRetriesPerRequest: 2 });
  r.on("error", (e) => console.error("ioredis error:", e.message));
  clients.push(r);
  return r;
}

/** A namespaced key, as node-resque's Connection.key() builds it. */
function key(...parts) {
  return [namespace, ...parts].join(":");
}

/** node-resque's arrayify (not exported). */
function arrayify(o) {
  return Array.isArray(o) ? o : [o];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (sync or async) until it returns truthy; fails after `ms`. */
async function waitFor(what, fn, ms = 30000, every = 20) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) {
      const errs = emittedErrors.length ? `; node-resque emitted errors:\n${emittedErrors.join("\n")}` : "";
      throw new Error(`timed out after ${ms} ms waiting for ${what}${errs}`);
    }
    await sleep(every);
  }
}

/** Every key of the namespace matching `pattern` (after `<ns>:`), sorted. */
async function keys(r, pattern) {
  const out = [];
  let cursor = "0";
  do {
    const [next, batch] = await r.scan(cursor, "MATCH", key(pattern), "COUNT", 1000);
    out.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return out.sort();
}

/** Server clock in ms (TIME). */
async function serverNowMs(r) {
  const [s, us] = await r.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Shows a buffer for a failure message: the text and, when short, hex. */
function show(buf) {
  if (buf === null || buf === undefined) return String(buf);
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf), "utf8");
  const text = JSON.stringify(b.toString("utf8"));
  return b.length <= 200 ? `${text} (hex ${b.toString("hex")})` : `${text.slice(0, 400)}... (${b.length} bytes)`;
}

/** Asserts two byte strings are equal, naming the first differing offset. */
function assertBytes(actual, expected, what) {
  const a = Buffer.isBuffer(actual) ? actual : Buffer.from(actual, "utf8");
  const e = Buffer.isBuffer(expected) ? expected : Buffer.from(expected, "utf8");
  if (a.equals(e)) return;
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  const ctx = (b) => show(b.subarray(Math.max(0, i - 40), i + 40));
  assert.fail(
    `${what}: bytes differ at offset ${i} (actual ${a.length} bytes, expected ${e.length})\n` +
      `  actual   near: ${ctx(a)}\n  expected near: ${ctx(e)}`,
  );
}

/** Ends node-resque objects and ioredis clients, ignoring errors. */
const toEnd = [];
function track(obj) {
  toEnd.push(obj);
  return obj;
}
async function closeAll() {
  while (toEnd.length) {
    const o = toEnd.pop();
    try {
      await o.end();
    } catch (e) {
      console.error("error while ending:", e && e.message);
    }
  }
  while (clients.length) {
    const c = clients.pop();
    try {
      await c.quit();
    } catch (_) {
      c.disconnect();
    }
  }
}

/**
 * Runs the scenario. Exit code 0 on success; on failure prints the error and
 * exits 1. Everything registered with `track`/`redis` is ended either way; if
 * the process still has not exited 10 s later (a leaked handle), it fails.
 */
function main(fn) {
  const started = Date.now();
  const watchdog = setTimeout(() => {
    console.error("FAIL: scenario did not finish within 100 s");
    process.exit(3);
  }, 100000);
  (async () => {
    let failed = null;
    try {
      await fn();
    } catch (e) {
      failed = e;
    }
    await closeAll();
    clearTimeout(watchdog);
    if (failed) {
      console.error(`FAIL (${process.argv[1]}, namespace ${namespace}):`);
      console.error(failed && failed.stack ? failed.stack : failed);
      process.exit(1);
    }
    console.log(`ok (${Date.now() - started} ms)`);
    process.exitCode = 0;
    setTimeout(() => {
      console.error("FAIL: the scenario passed but the process did not exit (a handle was left open)");
      process.exit(4);
    }, 10000).unref();
  })();
}

/** Errors emitted by node-resque objects; checked at the end of scenarios. */
const emittedErrors = [];
function collectErrors(obj, name) {
  obj.on("error", (err, ...rest) => {
    emittedErrors.push(`${name}: ${err && err.stack ? err.stack : err} ${rest.length ? JSON.stringify(rest) : ""}`);
  });
  return obj;
}
function assertNoEmittedErrors() {
  assert.deepEqual(emittedErrors, [], "node-resque objects emitted errors");
}

module.exports = {
  assert,
  NR,
  Redis,
  port,
  namespace,
  connection,
  redis,
  key,
  arrayify,
  sleep,
  waitFor,
  keys,
  serverNowMs,
  show,
  assertBytes,
  track,
  closeAll,
  main,
  collectErrors,
  assertNoEmittedErrors,
};
