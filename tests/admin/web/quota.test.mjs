// The COUNT/day and COUNT/month notation as the page reads it (gateway/admin/web/quota.js), on the
// cases tests/admin/test_web_units.py also puts to the gateway's own parser, and a card's words.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { QUOTA_FORMAT, parseQuota, quotaText, spent } from "../../../gateway/admin/web/quota.js";

const CASES = JSON.parse(readFileSync(new URL("./quota.json", import.meta.url), "utf8"));

test("every valid quota reads as the gateway reads it", () => {
  for (const [text, count, period, stored] of CASES.valid) {
    assert.deepEqual(parseQuota(text), { count, period, text: stored }, JSON.stringify(text));
  }
});

test("every invalid one is refused", () => {
  for (const text of CASES.invalid) assert.equal(parseQuota(text), null, JSON.stringify(text));
  assert.equal(parseQuota(undefined), null);
  assert.equal(parseQuota(100), null);
});

test("the words for a malformed one are the gateway's", () => {
  assert.equal(QUOTA_FORMAT, "must be COUNT/day or COUNT/month, e.g. 100000/month (calendar periods in UTC)");
});

test("a card states what is used and left", () => {
  assert.equal(quotaText(null), "None");
  assert.equal(quotaText({ limit: "100000/month", used: 1234, left: 98766, resets_at: "2031-02-01T00:00:00+00:00" }),
               "1,234 of 100,000 this month (98,766 left)");
  assert.equal(quotaText({ limit: "5/day", used: 5, left: 0, resets_at: "2031-01-02T00:00:00+00:00" }),
               "5 of 5 today (0 left)");
  assert.equal(spent({ limit: "5/day", used: 7, left: 0 }), true);
  assert.equal(spent({ limit: "5/day", used: 4, left: 1 }), false);
  assert.equal(spent(null), false);
});
