// The ESM entry exports what the CommonJS one does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as esm from "tq-resque";

const cjs = createRequire(import.meta.url)("tq-resque");

test("the ESM entry exports the CommonJS classes", () => {
  assert.deepEqual(Object.keys(esm).filter((k) => k !== "default").sort(), Object.keys(cjs).sort());
  for (const k of Object.keys(cjs)) assert.equal(esm[k], cjs[k], k);
  assert.equal(typeof esm.Queue, "function");
});
