"use strict";
// Stats: global and per-server counters.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const TQ = require("..");
const { startServer, ns } = require("../support/helpers");

let server;
before(async () => {
  server = await startServer();
});
after(() => server.stop());

test("increment counts globally and per server; getAll gives both", async (t) => {
  const n = ns("stats");
  const a = new TQ.Stats({ connection: server.connection(n), server: "web:1" });
  const b = new TQ.Stats({ connection: server.connection(n), server: "web:2" });
  t.after(() => Promise.all([a.end(), b.end()]));
  await a.connect();
  await b.connect();
  assert.deepEqual(await a.increment("tasks:tasksRun"), { global: 1, local: 1 });
  assert.deepEqual(await a.increment("tasks:tasksRun", 4), { global: 5, local: 5 });
  assert.deepEqual(await b.increment("tasks:tasksRun"), { global: 6, local: 1 });
  await b.increment("actions:processedActions", 2);
  assert.equal(await a.get("tasks:tasksRun"), 6);
  assert.equal(await a.get("tasks:tasksRun", "local"), 5);
  assert.equal(await a.get("never"), 0);
  assert.deepEqual(await b.getAll(), {
    global: { "tasks:tasksRun": 6, "actions:processedActions": 2 },
    local: { "tasks:tasksRun": 1, "actions:processedActions": 2 },
  });
  await assert.rejects(a.increment("x", 1.5), /integer/);
  // node-resque's stats() (the stat:* keys) does not see them.
  const queue = new TQ.Queue({ connection: server.connection(n) });
  t.after(() => queue.end());
  await queue.connect();
  assert.deepEqual(await queue.stats(), {});
});
