// The COUNT/WINDOW notation as the page reads it (gateway/admin/web/limits.js), on the cases
// tests/admin/test_web_units.py also puts to the gateway's own parser.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { LIMIT_FORMAT, limitsText, parseLimit } from "../../../gateway/admin/web/limits.js";

const CASES = JSON.parse(readFileSync(new URL("./limits.json", import.meta.url), "utf8"));

test("every valid limit reads as the gateway reads it", () => {
  for (const [text, count, window, stored] of CASES.valid) {
    assert.deepEqual(parseLimit(text), { count, window, text: stored }, JSON.stringify(text));
  }
});

test("every invalid one is refused", () => {
  for (const text of CASES.invalid) assert.equal(parseLimit(text), null, JSON.stringify(text));
  assert.equal(parseLimit(undefined), null);
  assert.equal(parseLimit(600), null);
});

test("the words for a malformed one are the gateway's", () => {
  assert.equal(LIMIT_FORMAT, "must be COUNT/WINDOW, e.g. 600/m or 100/5m (window in s, m, h or d)");
});

test("a card states the limits, naming the defaults", () => {
  assert.equal(limitsText({ per_key: null, per_ip: null }), "Configured defaults");
  assert.equal(limitsText(undefined), "Configured defaults");
  assert.equal(limitsText({ per_key: "1000/m", per_ip: "60/m" }), "1000/m per key, 60/m per IP");
  assert.equal(limitsText({ per_key: "1000/m", per_ip: null }), "1000/m per key (per IP: default)");
  assert.equal(limitsText({ per_key: null, per_ip: "60/m" }), "60/m per IP (per key: default)");
});
