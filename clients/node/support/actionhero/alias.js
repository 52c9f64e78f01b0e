"use strict";
// Preloaded (node -r) into the ActionHero test app: ActionHero 29 builds
// its Queue, MultiWorker and Scheduler from require("node-resque") (its
// `resque_overrides` config is never read), so the app swaps the package
// itself. An app does the same with npm's `overrides`
// ({"overrides": {"node-resque": "npm:tq-resque@..."}}); this is that, for a test.
const Module = require("node:module");
const path = require("node:path");

const target = path.resolve(__dirname, "..", "..");
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  return resolve.call(this, request === "node-resque" ? target : request, parent, ...rest);
};
