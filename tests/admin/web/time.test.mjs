// Times as the page shows them (gateway/admin/web/time.js). tests/admin/test_web_units.py runs these with
// TZ=Asia/Kolkata (UTC+05:30), so the datetime-local conversions cross a half-hour offset.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ago, exactTime, fromLocalInput, toLocalInput, usedWithinADay, when } from "../../../gateway/admin/web/time.js";

const NOW = Date.parse("2030-06-15T12:00:00Z");
const before = (seconds) => new Date(NOW - seconds * 1000).toISOString();

test("ago: just now under a minute, then the largest whole unit", () => {
  assert.equal(ago(before(0), NOW), "just now");
  assert.equal(ago(before(59), NOW), "just now");
  assert.equal(ago(before(60), NOW), "1 minute ago");
  assert.equal(ago(before(3 * 60), NOW), "3 minutes ago");
  assert.equal(ago(before(89 * 60), NOW), "1 hour ago");
  assert.equal(ago(before(90 * 60), NOW), "2 hours ago"); // rounded, a half away from now as in the future
  assert.equal(ago(before(86400), NOW), "1 day ago");
  assert.equal(ago(before(45 * 86400), NOW), "2 months ago");
  assert.equal(ago(before(400 * 86400), NOW), "1 year ago");
});

test("ago: the future (an expiry)", () => {
  assert.equal(ago(before(-30), NOW), "in less than a minute");
  assert.equal(ago(before(-2 * 3600), NOW), "in 2 hours");
  assert.equal(ago(before(-90 * 60), NOW), "in 2 hours");
  assert.equal(ago(before(-3 * 86400), NOW), "in 3 days");
});

test("when: the relative text with the exact time on hover, or the words for none", () => {
  assert.deepEqual(when(null, "Never used", NOW), { text: "Never used", title: null });
  assert.deepEqual(when(undefined, undefined, NOW), { text: "Never", title: null });
  const used = before(180);
  assert.deepEqual(when(used, "Never used", NOW), { text: "3 minutes ago", title: exactTime(used) });
});

test("exactTime: formatted, then as the API wrote it", () => {
  const iso = "2030-06-15T11:57:00+00:00";
  assert.ok(exactTime(iso).endsWith(` (${iso})`));
  assert.ok(exactTime(iso).includes("2030"));
  assert.equal(exactTime(iso, { format: (d) => d.toISOString() }), `2030-06-15T11:57:00.000Z (${iso})`);
});

test("usedWithinADay: the delete and disable dialogs' warning", () => {
  assert.equal(usedWithinADay(null, NOW), false);
  assert.equal(usedWithinADay(before(60), NOW), true);
  assert.equal(usedWithinADay(before(86399), NOW), true);
  assert.equal(usedWithinADay(before(86400), NOW), false);
});

const pad = (n) => String(n).padStart(2, "0");
const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

test("a datetime-local value is the time in this time zone, to the minute", () => {
  for (const iso of ["2031-01-02T03:04:00Z", "2030-07-01T23:45:00+02:00", "2030-12-31T22:00:00Z"]) {
    assert.equal(toLocalInput(iso), local(new Date(iso)), iso);
  }
  assert.equal(toLocalInput(null), "");
  assert.equal(toLocalInput(""), "");
});

test("and back, to RFC 3339 in UTC", () => {
  for (const iso of ["2031-01-02T03:04:00.000Z", "2030-07-01T21:45:00.000Z"]) {
    assert.equal(fromLocalInput(toLocalInput(iso)), iso);
  }
  assert.equal(fromLocalInput(""), null);
  if (process.env.TZ === "Asia/Kolkata") {
    assert.equal(toLocalInput("2031-01-02T03:04:00Z"), "2031-01-02T08:34");
    assert.equal(fromLocalInput("2031-01-02T08:34"), "2031-01-02T03:04:00.000Z");
  }
});
