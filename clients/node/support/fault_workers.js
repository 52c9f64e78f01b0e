"use strict";
// tq-resque workers for the fault-injecting proxy test (tests/resque_faults.rs):
// two Workers and a MultiWorker in one process, all connected through the
// proxy, which loses replies of applied TQ commands and drops requests. Each
// run of a `Job` appends its args to the ledger (one write per line); the
// test checks every job ran and was counted exactly once. SIGTERM ends them
// (node-resque's end()) and the process exits 0 when all have ended.
//
// node fault_workers.js <proxy port> <namespace> <ledger file>
const fs = require("node:fs");
const TQ = require("..");

const [, , port, namespace, ledger] = process.argv;
const connection = { host: "127.0.0.1", port: Number(port), namespace };
const jobs = {
  Job: {
    perform: async function () {
      fs.appendFileSync(ledger, JSON.stringify(this.job.args) + "\n");
    },
  },
};

let errors = 0;
// Each cut connection is reported as an 'error' event; the workers go on.
const onError = () => errors++;
const workers = [1, 2].map((id) => new TQ.Worker({ connection, queues: ["q"], name: `fault:${process.pid}:${id}`, timeout: 500 }, jobs));
const multi = new TQ.MultiWorker({ connection, queues: ["q"], name: `fault-multi`, timeout: 500, minTaskProcessors: 1, maxTaskProcessors: 3 }, jobs);
for (const w of workers) w.on("error", onError);
multi.on("error", onError);
const failures = [];
for (const w of [...workers, multi]) w.on("failure", (...a) => failures.push(String(a[2] && a[2].stack)));

(async () => {
  for (const w of workers) {
    await w.connect();
    await w.start();
  }
  await multi.start();
  process.stdout.write("started\n");
})().catch((e) => {
  console.error("fault_workers.js:", e);
  process.exit(1);
});

process.on("SIGTERM", async () => {
  const giveUp = setTimeout(() => {
    console.error("fault_workers.js: end() still running after 30 s");
    process.exit(2);
  }, 30000);
  try {
    await Promise.all([...workers.map((w) => w.end()), multi.end()]);
  } catch (e) {
    console.error("fault_workers.js: end():", e);
    process.exit(1);
  }
  clearTimeout(giveUp);
  console.log(JSON.stringify({ errors, failures }));
  process.exit(failures.length ? 1 : 0);
});
