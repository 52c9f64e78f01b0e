"use strict";
// The test app's tasks (ActionHero 29 Task classes). Each run is recorded
// as a line on stdout: RAN <name> <json params>.
const { Task } = require("actionhero");

// Runs counted per task for the app script (the tasks run in its process).
global.tqRuns = global.tqRuns || {};
function ran(name, params) {
  global.tqRuns[name] = (global.tqRuns[name] || 0) + 1;
  process.stdout.write(`RAN ${name} ${JSON.stringify(params)}\n`);
}

class Hello extends Task {
  constructor() {
    super();
    this.name = "hello";
    this.description = "a normal task";
    this.frequency = 0;
    this.queue = "default";
  }
  async run(params) {
    ran(this.name, params);
    return `hi ${params.who}`;
  }
}

class Tick extends Task {
  constructor() {
    super();
    this.name = "tick";
    this.description = "a periodic task";
    this.frequency = 200;
    this.queue = "default";
  }
  async run(params) {
    // How many instances run at once (never more than one).
    Tick.active = (Tick.active || 0) + 1;
    global.tqTickMaxActive = Math.max(global.tqTickMaxActive || 0, Tick.active);
    ran(this.name, params);
    await new Promise((resolve) => setTimeout(resolve, 30));
    Tick.active--;
  }
}

class Locked extends Task {
  constructor() {
    super();
    this.name = "locked";
    this.description = "QueueLock: one waiting at a time";
    this.frequency = 0;
    this.queue = "locks";
    this.plugins = ["QueueLock"];
    this.pluginOptions = {};
  }
  async run(params) {
    ran(this.name, params);
  }
}

class Flaky extends Task {
  constructor() {
    super();
    this.name = "flaky";
    this.description = "Retry: fails twice, then succeeds";
    this.frequency = 0;
    this.queue = "default";
    this.plugins = ["Retry"];
    this.pluginOptions = { Retry: { retryLimit: 3, retryDelay: 50 } };
  }
  async run(params) {
    ran(this.name, params);
    Flaky.runs = (Flaky.runs || 0) + 1;
    if (Flaky.runs < 3) throw new Error(`flaky run ${Flaky.runs}`);
    return "finally";
  }
}

class Slow extends Task {
  constructor() {
    super();
    this.name = "slow";
    this.description = "a task that outlives a SIGKILL of its process";
    this.frequency = 0;
    this.queue = "slow";
  }
  async run(params) {
    ran(this.name, params);
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.SLOW_MS || 100)));
    process.stdout.write(`DONE slow ${JSON.stringify(params)}\n`);
  }
}

module.exports = { Hello, Tick, Locked, Flaky, Slow };
