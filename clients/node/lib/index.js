"use strict";
// tq-resque: node-resque 9's API on the tq Redis module.

const { Connection } = require("./connection");
const { Queue } = require("./queue");
const { Plugin } = require("./plugins");
const Plugins = require("./builtinPlugins");

module.exports = { Connection, Queue, Plugin, Plugins };
