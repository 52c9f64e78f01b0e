"use strict";
// Data made by node-resque for the `tq web` tests (tests/web.rs): a waiting
// job, a delayed job, and a failure written by a node-resque Worker whose
// name and error text are hostile markup.

const L = require("./lib");
const { assert } = L;

L.main(async () => {
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();
  await queue.enqueue("nq", "NodeJob", ["from node", 1]);
  await queue.enqueueAt(Date.now() + 3600000, "nq", "NodeLater", [2]);
  await queue.enqueue("nfail", "NodeBoom", ["x"]);
  const jobs = {
    NodeBoom: {
      perform: async () => {
        throw new Error('<script>alert("node")</script>\u2028');
      },
    },
  };
  const worker = new L.NR.Worker(
    { connection: L.connection(), queues: ["nfail"], name: 'node"><img src=x onerror=alert(1)>:7', timeout: 20 },
    jobs,
  );
  await worker.connect();
  await worker.start();
  await L.waitFor("the node-resque failure", async () => (await queue.failedCount()) >= 1);
  await worker.end();
  assert.equal(await queue.length("nq"), 1);
});
