"use strict";
// Starts a redis-server with the tq module on a free loopback port for a
// test file, and stops it (by PID) when the file ends.

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const Redis = require("ioredis");

const ROOT = path.resolve(__dirname, "..", "..", "..");

function modulePath() {
  const p = process.env.TQ_MODULE || path.join(ROOT, "target", "debug", "libtq.so");
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: run \`cargo build --workspace\` (or set TQ_MODULE)`);
  return p;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const started = new Set();
function killStarted() {
  for (const child of started) {
    try {
      process.kill(child.pid, "SIGKILL");
    } catch (_) {
      // already gone
    }
  }
}
process.on("exit", killStarted);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(sig, () => {
    killStarted();
    process.exit(128 + 2);
  });
}

/**
 * A redis-server with the module. `moduleArgs` go after the module path
 * (module settings such as `lease-ms 500`).
 */
async function startServer(moduleArgs = [], { module = true } = {}) {
  const load = module ? ["--loadmodule", modulePath(), ...moduleArgs] : [];
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tq-node-"));
    const bin = process.env.TQ_REDIS_SERVER || "redis-server";
    const child = spawn(
      bin,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...load],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    // The server must not outlive this process, however it ends.
    started.add(child);
    child.once("exit", () => started.delete(child));
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    const deadline = Date.now() + 10000;
    let up = false;
    while (Date.now() < deadline && child.exitCode === null) {
      const r = new Redis(port, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on("error", () => {});
      try {
        await r.connect();
        if ((await r.ping()) === "PONG") up = true;
      } catch (_) {
        // not yet listening
      }
      r.disconnect();
      if (up) break;
      await sleep(30);
    }
    if (up) {
      return {
        port,
        pid: child.pid,
        connection: (namespace) => ({ host: "127.0.0.1", port, namespace }),
        redis() {
          const r = new Redis(port, "127.0.0.1");
          r.on("error", () => {});
          return r;
        },
        async stop() {
          if (child.exitCode === null) {
            process.kill(child.pid, "SIGKILL");
            await new Promise((r) => child.once("exit", r));
          }
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode === null) process.kill(child.pid, "SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
    if (attempt >= 4) throw new Error(`redis-server did not start on port ${port}:\n${log}`);
  }
}

/** Polls `fn` until it returns truthy; fails after `ms`. */
async function waitFor(what, fn, ms = 20000, every = 10) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

let seq = 0;
/** A namespace of its own for one test. */
function ns(name) {
  seq++;
  return `t${process.pid}-${seq}-${name}`;
}

module.exports = { startServer, waitFor, sleep, ns, ROOT };
