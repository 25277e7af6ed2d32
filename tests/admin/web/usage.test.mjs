// The usage chart's numbers (gateway/admin/web/usage.js): bar heights, day marks, the summary.

import assert from "node:assert/strict";
import { test } from "node:test";

import { BAR_WIDTH, PLOT_HEIGHT, bars, busiest, dayStarts, requestCount, usageSummary } from "../../../gateway/admin/web/usage.js";

const START = Date.parse("2030-06-08T13:00:00Z");
const week = (requests = () => 0) =>
  Array.from({ length: 7 * 24 }, (_, i) => ({ start: new Date(START + i * 3600_000).toISOString(), requests: requests(i) }));

test("one bar an hour, side by side, each a unit narrower than its slot", () => {
  const out = bars(week());
  assert.equal(out.length, 168);
  assert.deepEqual(out.slice(0, 2).map((b) => [b.x, b.width]), [[0, BAR_WIDTH - 1], [BAR_WIDTH, BAR_WIDTH - 1]]);
  assert.equal(out[167].x, 167 * BAR_WIDTH);
});

test("no requests: every bar flat on the axis", () => {
  for (const bar of bars(week())) assert.deepEqual([bar.y, bar.height], [PLOT_HEIGHT, 0]);
});

test("the busiest hour fills the plot, the others in proportion, any request at least 1 high", () => {
  const counts = { 3: 1000, 4: 500, 5: 1, 6: 0 };
  const out = bars(week((i) => counts[i] ?? 0));
  assert.deepEqual([out[3].y, out[3].height], [0, PLOT_HEIGHT]);
  assert.equal(out[4].height, PLOT_HEIGHT / 2);
  assert.equal(out[4].y, PLOT_HEIGHT / 2);
  assert.equal(out[5].height, 1); // 0.06 would not show
  assert.equal(out[6].height, 0);
  assert.deepEqual([out[3].start, out[3].requests], [week()[3].start, 1000]);
});

test("a custom size scales the same way", () => {
  const out = bars([{ start: "x", requests: 2 }, { start: "y", requests: 4 }], { width: 10, height: 100 });
  assert.deepEqual(out.map((b) => [b.x, b.width, b.y, b.height]), [[0, 9, 50, 50], [10, 9, 0, 100]]);
});

test("a day's line where the reader's day starts", () => {
  const utcHour = (d) => d.getUTCHours();
  assert.deepEqual(dayStarts(week(), utcHour), [11, 35, 59, 83, 107, 131, 155]); // 13:00 UTC + 11 h
  const local = dayStarts(week());
  assert.ok(local.length >= 6 && local.length <= 8);
  for (const i of local) assert.equal(new Date(week()[i].start).getHours(), 0);
});

test("the busiest hour, the first of equals", () => {
  const hours = week((i) => (i === 10 || i === 20 ? 7 : 1));
  assert.equal(busiest(hours), hours[10]);
});

test("counts in words", () => {
  assert.equal(requestCount(0), "0 requests");
  assert.equal(requestCount(1), "1 request");
  assert.equal(requestCount(2), "2 requests");
  assert.match(requestCount(12345), /^12.345 requests$/); // grouped in the reader's locale
});

test("the summary line", () => {
  assert.equal(usageSummary({ total: 0, hours: week() }, () => "never"), "No requests in the last 7 days.");
  const hours = week((i) => (i === 100 ? 3 : i === 50 ? 1 : 0));
  assert.equal(usageSummary({ total: 4, hours }, (d) => d.toISOString()),
               `4 requests in the last 7 days; busiest hour ${hours[100].start} with 3.`);
});
