"use strict";
// Reproducible random JSON values for the payload tests.

// mulberry32: reproducible random numbers (the seed is printed).
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The significant digits of a decimal numeral (no sign, point, exponent or padding zeros). */
function sigDigits(numeral) {
  return numeral.replace(/^-/, "").split("e")[0].replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
}

/**
 * True when a finite double sits exactly halfway between the two candidate
 * shortest decimal strings: its exact value has one digit more than its
 * shortest round-trip form, and that digit is 5. ECMAScript (and V8) then
 * prints the even candidate (1285521.99072265625 -> 1285521.9907226562).
 */
function isTie(x) {
  if (!Number.isFinite(x) || x === 0) return false;
  const k = sigDigits(String(x)).length;
  const exact = sigDigits(Math.abs(x).toPrecision(100));
  return exact.length === k + 1 && exact.endsWith("5");
}

/**
 * n random finite doubles. `ties`: undefined = any, false = no halfway
 * cases, true = only halfway cases.
 */
function randomDoubles(rand, n, ties) {
  const dv = new DataView(new ArrayBuffer(8));
  const u32 = () => Math.floor(rand() * 4294967296) >>> 0;
  const out = [];
  while (out.length < n) {
    const kind = Math.floor(rand() * 7);
    let x;
    if (kind === 0) {
      // Any bit pattern: every exponent, subnormals, both signs.
      dv.setUint32(0, u32());
      dv.setUint32(4, u32());
      x = dv.getFloat64(0);
      if (!Number.isFinite(x)) continue;
    } else if (kind === 1) {
      // Subnormals and the smallest normals.
      dv.setUint32(0, (u32() & 0x801fffff) >>> 0);
      dv.setUint32(4, u32());
      x = dv.getFloat64(0);
    } else if (kind === 2) {
      x = (rand() - 0.5) * 10 ** Math.floor(rand() * 630 - 320);
    } else if (kind === 3) {
      x = Math.floor(rand() * 2 ** 64) * (rand() < 0.5 ? -1 : 1);
    } else if (kind === 4) {
      x = Number((rand() * 10 ** Math.floor(rand() * 12)).toFixed(Math.floor(rand() * 8)));
    } else if (kind === 5) {
      // Around the notation switches of Number.prototype.toString.
      x = (1 + Math.floor(rand() * 9)) * 10 ** Math.floor(rand() * 8 + (rand() < 0.5 ? 17 : -11));
    } else {
      x = Math.floor(rand() * 2 ** 53) / 2 ** Math.floor(rand() * 60);
    }
    if (ties === false && isTie(x)) continue;
    if (ties === true && !isTie(x)) continue;
    out.push(x);
  }
  return out;
}

function randomString(rand) {
  const len = Math.floor(rand() * 12);
  let s = "";
  for (let i = 0; i < len; i++) {
    const k = rand();
    if (k < 0.3) s += String.fromCharCode(32 + Math.floor(rand() * 95));
    else if (k < 0.4) s += String.fromCharCode(Math.floor(rand() * 32));
    else if (k < 0.6) s += String.fromCharCode(0x80 + Math.floor(rand() * 0xd780));
    else if (k < 0.7) s += String.fromCharCode(0xd800 + Math.floor(rand() * 0x800)); // lone or paired by chance
    else if (k < 0.8) s += String.fromCodePoint(0x10000 + Math.floor(rand() * 0x100000));
    else if (k < 0.9) s += String.fromCharCode(0xe000 + Math.floor(rand() * 0x2000));
    else s += ['"', "\\", "/", "\u2028", "\u2029", "\u007f"][Math.floor(rand() * 6)];
  }
  return s;
}

function randomKey(rand) {
  const k = rand();
  if (k < 0.3) return String(Math.floor(rand() * 20));
  if (k < 0.4) return String(Math.floor(rand() * 2 ** 33)); // some above 2^32 - 2
  if (k < 0.5) return ["-1", "01", "1.0", "4294967294", "4294967295", "", "__proto__"][Math.floor(rand() * 7)];
  return randomString(rand);
}

function randomValue(rand, depth, ties) {
  const k = rand();
  if (depth > 4 || k < 0.35) {
    const s = rand();
    if (s < 0.3) return randomDoubles(rand, 1, ties)[0];
    if (s < 0.6) return randomString(rand);
    return [null, true, false, 0, -0][Math.floor(rand() * 5)];
  }
  if (k < 0.65) return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth + 1, ties));
  const o = {};
  const n = Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) {
    // defineProperty so that "__proto__" is an own data property, as JSON.parse makes it.
    Object.defineProperty(o, randomKey(rand), { value: randomValue(rand, depth + 1, ties), enumerable: true, configurable: true, writable: true });
  }
  return o;
}


module.exports = { prng, randomDoubles, randomString, randomKey, randomValue, isTie, sigDigits };
