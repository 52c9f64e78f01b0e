"use strict";
// TQ.ENQUEUE writes exactly the bytes node-resque writes for the same job:
// queue.encode(q, cls, arrayify(args)) = JSON.stringify({class, queue, args}).
// For every case the job is written twice to the same queue, once by
// TQ.ENQUEUE (args as JSON text) and once by node-resque's queue.enqueue, and
// both list elements are compared as raw bytes. For the fixed corpus,
// TQ.ENQUEUEAT is checked too: same bytes in delayed:<ts>, and node-resque's
// scheduledAt/delDelayed/enqueueAt (which look the job up by re-encoding the
// args) see it, duplicates included.

const L = require("./lib");
const { assert, assertBytes } = L;
const { prng, randomDoubles, randomString, randomValue, isTie } = require("./random");

// ---------------------------------------------------------------- corpus ---

function nested(depth, leaf) {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v, i] : { ["k" + i]: v, [String(i)]: i };
  return v;
}

const C0 = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("");

// JS values, sent to TQ.ENQUEUE as JSON.stringify(value).
const VALUES = [
  ["empty array", []],
  ["empty object", {}],
  ["bare number", 5],
  ["bare string", "s"],
  ["bare true", true],
  ["bare false", false],
  ["bare null", null],
  ["simple array", [1, 2, 3]],
  ["array of mixed", [1, "two", null, true, false, 3.5, [], {}]],
  ["nested objects", { user: { id: 7, tags: ["a", "b"], meta: { deep: { deeper: [1, { x: null }] } } } }],
  [
    "integer-like keys mixed with normal keys",
    { b: 1, 10: "ten", a: 2, 2: "two", "01": "zero-one", "-1": "minus", 4294967294: "max index", 4294967295: "not an index", 0: "zero", z: 0 },
  ],
  ["more integer-like keys", { "9007199254740991": 1, "1.5": 2, "00": 3, " 1": 4, "1 ": 5, "+1": 6, "1e3": 7, 100: 8, 3: 9 }],
  ["nested integer-like keys", [{ 10: { 2: [{ 1: 1, a: 0, 0: 0 }] }, x: { 5: 5, 4: 4 } }]],
  ["unicode text", ["héllo wörld", "日本語テキスト", "Ελληνικά", "עברית", "العربية", "\u00e9\u0301"]],
  ["U+2028 U+2029", ["line\u2028sep", "para\u2029sep", { "\u2028key": "\u2029" }]],
  ["emoji", ["😀", "👨‍👩‍👧‍👦", "🏳️‍🌈", "a😀b", { "🔑": "🗝️" }]],
  ["lone surrogates", ["\ud800", "\udc00", "\udfff", "x\ud83dy", "\ude00\ud83d", "\ud800\ud800", "😀\ude00", "\ud83d😀"]],
  ["lone surrogate in a key", { "\ud800": 1, "k\udc00": 2 }],
  ["all C0 control characters", [C0, ...C0.split("")]],
  ["DEL and C1", ["\u007f", "\u0080", "\u009f", "\u00a0", "\u00ad"]],
  ["noncharacters and BOM", ["\ufeff", "\ufffe", "\uffff", "\u{10ffff}", "\u{1fffe}"]],
  ["quotes and backslashes", ['"', "\\", '\\"', '"\\"', 'say "hi"\\n', "\\u0041", { '"k"': "\\", "\\": '"' }]],
  ["slashes", ["/", "a/b", "</script>", "\\/"]],
  ["floats", [0.1, 1.5e300, 5e-324, 1e21, 1e-7, 123456789.123, 0.30000000000000004, 1e20, 1e-6, 2.5e-8]],
  ["more floats", [Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, -1.7976931348623157e308, 2.2250738585072014e-308, 2.225073858507201e-308, 1 / 3, -2 / 3, Math.PI, Math.E]],
  ["large integers", [2 ** 53 + 1, 2 ** 53, 2 ** 53 - 1, 12345678901234567890, 2 ** 64, 2 ** 63, -(2 ** 63), 1e15, 1e16, 1e17, 123e18]],
  ["exponents", [1e100, 1e-100, 1.234e-50, 9.87654321e250, 1e308, 1e-308, 1e-323, 4e-320, 1e22, 1e23]],
  ["negative zero", [-0, { z: -0 }, [-0.0]]],
  ["integers", [0, 1, -1, 42, -42, 2147483647, -2147483648, 4294967295, 4294967296]],
  ["non-finite numbers", [NaN, Infinity, -Infinity]],
  ["deep nesting (50 levels)", nested(50, "bottom")],
  ["deep arrays (100 levels)", JSON.parse("[".repeat(100) + "1" + "]".repeat(100))],
  ["long string", ["x".repeat(100000)]],
  ["many keys", Object.fromEntries(Array.from({ length: 300 }, (_, i) => [i % 3 ? `k${i}` : String(i * 7919 % 1000), i]))],
  ["objects in arrays", [{ a: 1 }, { b: [{ c: { d: "e" } }] }, [{ 1: 1, 0: 0 }]]],
  ["special key names", { __proto__: null, constructor: 1, toString: 2, hasOwnProperty: 3, "": 4 }],
];

// JSON texts sent verbatim; the expected args are arrayify(JSON.parse(text)).
// They cover what JSON.stringify never produces: duplicate keys, whitespace,
// escapes and number spellings.
const TEXTS = [
  ["duplicate keys", '{"a":1,"b":2,"a":3}'],
  ["duplicate key keeps first position", '{"b":1,"a":2,"b":3}'],
  ["duplicate keys with object values", '{"a":1,"a":{"x":1,"x":2},"a":[2]}'],
  ["duplicate integer-like keys", '{"1":"x","b":1,"1":"y","0":0,"b":2}'],
  ["duplicate keys nested", '[{"k":1,"k":2},{"k":{"k":1,"k":[1,{"k":2,"k":3}]}}]'],
  ["__proto__ key", '{"__proto__":1,"a":2}'],
  ["__proto__ object", '{"__proto__":{"x":1},"__proto__":{"y":2}}'],
  ["whitespace everywhere", ' \t\n\r[ 1 ,\n\t2 , { "a" : [ ] , "b" :\r\n{ } } ]\n '],
  ["escapes", '"\\/\\b\\f\\n\\r\\t\\"\\\\"'],
  ["unicode escapes", '"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\\ud83d\\ude00"'],
  ["lone surrogate escapes", '["\\ud800","\\uDC00","\\udc00\\ud800","\\ud800\\ud800","\\ud83d\\u0041","\\uDBFF\\uDFFF"]'],
  ["lone surrogate escape next to raw emoji", '["\\ud83d😀","😀\\ude00","\\ud83d\\ud83d\\ude00"]'],
  ["escaped controls", '"\\u0000\\u0001\\u001f\\u007f\\u0080\\u2028\\u2029\\ufeff\\uffff"'],
  ["raw U+2028 and U+2029", '["\u2028","\u2029"]'],
  ["escaped key", '{"\\u0061":1,"a":2,"\\ud800":3}'],
  ["number spellings", "[1E5,1e+5,1e-5,1E-5,-0,-0.0,0.0,1.0,100e-2,0.1e1,-0e5,0e-5,10.50,5E+0]"],
  ["long integer", "123456789012345678901234567890"],
  ["out of range exponents", "[1e400,-1e400,1e-400,-1e-400,1e999999999999,0.0e99999]"],
  ["integers beyond 2^53", "[9007199254740993,9007199254740995,18446744073709551615,-9223372036854775809]"],
  ["round-trip floats", "[0.30000000000000004,2.2250738585072014e-308,4.9406564584124654e-324,2.4703282292062328e-324,2.4703282292062327e-324]"],
  ["near the largest double", "[1.7976931348623157e308,1.7976931348623158e308,1.7976931348623159e308]"],
  ["long mantissas", "[0.1000000000000000055511151231257827021181583404541015625,1." + "0".repeat(800) + "1,0." + "9".repeat(400) + "]"],
  ["hard rounding cases", "[9007199254740992.5,9007199254740993.0000000001,1.00000000000000011102230246251565404236316680908203125,5e-324,8.98846567431158e307]"],
  ["empty containers", '[[],{},[[]],[{}],{"a":{}},""]'],
  ["bare -0", "-0"],
  ["bare string with escapes", '"\\u00e9\\n"'],
  ["bare object", '{"z":1,"10":2,"9":3}'],
  ["deep nesting text (500 levels)", '{"a":'.repeat(250) + "[".repeat(250) + "0" + "]".repeat(250) + "}".repeat(250)],
];

// queue and class names are JSON-escaped in the payload too.
const NAMES = [
  ["payload", "Job"],
  ['quo"te\\queue', "cls\u2028\u2029"],
  ["ünïcødé-😀-队列", 'Klass"\\/\t\u0001\u007f'],
  ["q:with:colons,and,commas", "a b\u00a0c"],
];

// ------------------------------------------------------------------ check ---

const failures = [];
async function check(r, queue, q, cls, label, argsText, expectedArgs) {
  try {
    await check1(r, queue, q, cls, label, argsText, expectedArgs);
  } catch (e) {
    if (!(e instanceof assert.AssertionError)) throw e;
    failures.push(e.message);
  }
}

async function check1(r, queue, q, cls, label, argsText, expectedArgs) {
  const k = L.key("queue", q);
  const where = `${label} [queue ${JSON.stringify(q)}, class ${JSON.stringify(cls)}]`;
  await r.del(k);
  let len;
  try {
    len = argsText === undefined ? await r.call("TQ.ENQUEUE", L.namespace, q, cls) : await r.call("TQ.ENQUEUE", L.namespace, q, cls, argsText);
  } catch (e) {
    assert.fail(`${where}: TQ.ENQUEUE refused args ${L.show(argsText)}: ${e.message}`);
  }
  assert.equal(len, 1, `${where}: TQ.ENQUEUE reply`);
  await queue.enqueue(q, cls, expectedArgs);
  const items = await r.lrangeBuffer(k, 0, -1);
  assert.equal(items.length, 2, `${where}: queue length`);
  const expected = Buffer.from(queue.encode(q, cls, L.arrayify(expectedArgs)), "utf8");
  assertBytes(items[1], expected, `${where}: node-resque's own element vs queue.encode (sanity)`);
  assertBytes(items[0], items[1], `${where}: TQ.ENQUEUE payload vs node-resque queue.enqueue payload (args text ${L.show(argsText)})`);
  assert.ok((await r.sismember(L.key("queues"), q)) === 1, `${where}: queue registered in <ns>:queues`);
  await r.del(k);
  if (delayedChecks) await checkDelayed(r, queue, q, cls, where, argsText, expectedArgs, expected);
}

// TQ.ENQUEUEAT files the same bytes, and names the timestamps:<payload> set
// with them: node-resque finds the job by re-encoding the args.
let delayedChecks = true;
let nextAt = Date.UTC(2100, 0, 1);
async function checkDelayed(r, queue, q, cls, where, argsText, expectedArgs, expected) {
  const at = (nextAt += 7000);
  const bucket = Math.round(at / 1000);
  const cmd = ["TQ.ENQUEUEAT", L.namespace, String(at), q, cls, ...(argsText === undefined ? [] : [argsText])];
  assert.equal(await r.call(...cmd), bucket, `${where}: TQ.ENQUEUEAT reply`);
  const items = await r.lrangeBuffer(L.key("delayed:" + bucket), 0, -1);
  assert.equal(items.length, 1, `${where}: delayed list length`);
  assertBytes(items[0], expected, `${where}: TQ.ENQUEUEAT payload vs queue.encode`);
  assert.deepEqual(await queue.scheduledAt(q, cls, expectedArgs), [bucket], `${where}: node-resque scheduledAt finds the TQ.ENQUEUEAT job`);
  // The same job at the same time is a duplicate for both implementations.
  await assert.rejects(queue.enqueueAt(at, q, cls, expectedArgs), /Job already enqueued at this time with same arguments/, `${where}: node-resque enqueueAt duplicate of a TQ.ENQUEUEAT job`);
  await assert.rejects(r.call(...cmd), /^ReplyError: DUPLICATE Job already enqueued at this time with same arguments/, `${where}: TQ.ENQUEUEAT duplicate`);
  assert.deepEqual(await queue.delDelayed(q, cls, expectedArgs), [bucket], `${where}: node-resque delDelayed removes the TQ.ENQUEUEAT job`);
  assert.equal(await r.exists(L.key("delayed:" + bucket), L.key("timestamps:" + expected.toString("utf8"))), 0, `${where}: delDelayed left keys`);
  // And the other way round: node-resque's enqueueAt, then TQ.ENQUEUEAT is a duplicate.
  await queue.enqueueAt(at, q, cls, expectedArgs);
  await assert.rejects(r.call(...cmd), /DUPLICATE/, `${where}: TQ.ENQUEUEAT after node-resque enqueueAt of the same job`);
  assert.deepEqual(await queue.delDelayed(q, cls, expectedArgs), [bucket], `${where}: cleanup`);
  await r.zrem(L.key("delayed_queue_schedule"), String(bucket));
}

L.main(async () => {
  const r = L.redis();
  const queue = L.track(new L.NR.Queue({ connection: L.connection() }));
  L.collectErrors(queue, "queue");
  await queue.connect();

  let n = 0;
  // Args omitted: node-resque's default args = [].
  for (const [q, cls] of NAMES) {
    await check(r, queue, q, cls, "args omitted", undefined, []);
    n++;
  }
  for (const [label, value] of VALUES) {
    const text = JSON.stringify(value);
    assert.ok(typeof text === "string", `${label}: JSON.stringify gave ${text}`);
    // JSON.parse(JSON.stringify(v)) is what node-resque stores for v (NaN -> null, -0 -> 0, ...).
    await check(r, queue, NAMES[0][0], NAMES[0][1], `value "${label}"`, text, JSON.parse(text));
    n++;
  }
  for (const [label, text] of TEXTS) {
    await check(r, queue, NAMES[0][0], NAMES[0][1], `text "${label}"`, text, JSON.parse(text));
    n++;
  }
  // Every name pair with a slice of the corpus.
  for (const [q, cls] of NAMES.slice(1)) {
    for (const [label, value] of VALUES.filter((_, i) => i % 4 === 0)) {
      const text = JSON.stringify(value);
      await check(r, queue, q, cls, `value "${label}"`, text, JSON.parse(text));
      n++;
    }
    for (const [label, text] of TEXTS.filter((_, i) => i % 5 === 0)) {
      await check(r, queue, q, cls, `text "${label}"`, text, JSON.parse(text));
      n++;
    }
  }

  delayedChecks = false; // the random part checks TQ.ENQUEUE only
  const seed = Number(process.env.TQ_INTEROP_SEED || Date.now() % 2147483647);
  console.log(`random seed ${seed} (set TQ_INTEROP_SEED to replay)`);
  const rand = prng(seed);
  // Halfway cases get their own test (payload_number_ties.js).
  const doubles = randomDoubles(rand, 2000, false);
  const before = failures.length;
  await check(r, queue, "random", "Doubles", `2000 random doubles (seed ${seed})`, JSON.stringify(doubles), JSON.parse(JSON.stringify(doubles)));
  // On a mismatch, the same doubles one per job, so that the failure names the numbers.
  for (let i = 0; failures.length > before && i < doubles.length; i += 1) {
    const text = JSON.stringify(doubles[i]);
    await check(r, queue, "random", "Double", `random double #${i} ${text} (seed ${seed})`, text, JSON.parse(text));
  }
  for (let i = 0; i < 300; i++) {
    const v = randomValue(rand, 0, false);
    const text = JSON.stringify(v);
    await check(r, queue, "random", "Value", `random value #${i} (seed ${seed})`, text, JSON.parse(text));
  }
  const strings = Array.from({ length: 500 }, () => randomString(rand));
  await check(r, queue, "random", "Strings", `500 random strings (seed ${seed})`, JSON.stringify(strings), strings);
  if (failures.length) {
    assert.fail(`${failures.length} payload(s) differ from node-resque's:\n` + failures.slice(0, 15).join("\n") + (failures.length > 15 ? `\n... and ${failures.length - 15} more` : ""));
  }
  console.log(`${n} corpus cases, 2000 random doubles, 300 random values, 500 random strings: bytes identical`);
  L.assertNoEmittedErrors();
});
