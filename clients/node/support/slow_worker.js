"use strict";
// A worker process for the SIGKILL test: takes `slow` jobs with a short
// lease and never finishes them. Usage: node slow_worker.js <port> <namespace>
const TQ = require("..");

const [, , port, namespace] = process.argv;
const jobs = {
  slow: {
    perform: async (x) => {
      process.stdout.write(`started ${x}\n`);
      await new Promise(() => {});
    },
  },
};
const worker = new TQ.Worker({ connection: { host: "127.0.0.1", port: Number(port), namespace }, queues: ["q"], timeout: 100, leaseMs: 500 }, jobs);
worker.on("error", (e) => console.error("worker error:", e && e.message));
(async () => {
  await worker.connect();
  await worker.start();
})();
