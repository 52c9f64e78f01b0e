"use strict";
// Numbers exactly halfway between their two shortest decimal spellings.
//
// ECMAScript's Number::toString picks the shortest digit string that rounds
// back to the double and, when two such strings are equally close to it, the
// even one: JSON.stringify(1285521.9907226562) === "1285521.9907226562"
// although the double is exactly 1285521.99072265625. A payload with such a
// number must still be byte-identical to node-resque's.

const L = require("./lib");
const { assert, assertBytes } = L;
const { prng, randomDoubles, isTie } = require("./random");

const FIXED = [
  1285521.9907226562, 224.91397094726562, 1473628.5395507812, -19761071098037.062, 909577.2622070312,
  24123.928833007812, 1005541.2055664062, 1054974.5649414062,
];

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  const seed = Number(process.env.TQ_INTEROP_SEED || Date.now() % 2147483647);
  console.log(`random seed ${seed} (set TQ_INTEROP_SEED to replay)`);
  const numbers = [...FIXED, ...randomDoubles(prng(seed), 200, true)];
  for (const x of numbers) assert.ok(isTie(x), `${x} is a halfway case`);

  const failures = [];
  for (const x of numbers) {
    const text = JSON.stringify([x]);
    const k = L.key("queue", "ties");
    await r.del(k);
    await r.call("TQ.ENQUEUE", L.namespace, "ties", "Tie", text);
    const [got] = await r.lrangeBuffer(k, 0, -1);
    const want = Buffer.from(queue.encode("ties", "Tie", [x]));
    try {
      assertBytes(got, want, `TQ.ENQUEUE ${text}`);
    } catch (e) {
      failures.push(`${text}: tq wrote ${got.toString()}\n${" ".repeat(text.length + 2)}node-resque ${want.toString()}`);
    }
  }
  await r.del(L.key("queue", "ties"));
  assert.equal(failures.length, 0, `${failures.length} of ${numbers.length} halfway numbers differ:\n${failures.slice(0, 10).join("\n")}`);
  console.log(`${numbers.length} halfway numbers: bytes identical`);
});
