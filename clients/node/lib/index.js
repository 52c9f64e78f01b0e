"use strict";
// tq-resque: node-resque 9's API on the tq Redis module.

const { Connection } = require("./connection");
const { Queue } = require("./queue");
const { Worker } = require("./worker");
const { MultiWorker } = require("./multiWorker");
const { Scheduler } = require("./scheduler");
const { Stats } = require("./stats");
const { Plugin } = require("./plugins");
const Plugins = require("./builtinPlugins");

module.exports = { Connection, Queue, Worker, MultiWorker, Scheduler, Stats, Plugin, Plugins };
