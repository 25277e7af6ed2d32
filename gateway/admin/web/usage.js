// The usage chart's numbers: requests per hour over 7 days (GET .../api-keys/{id}/usage) scaled
// to bars, the day marks, the words around it. Pure: no DOM (tests/admin/web/usage.test.mjs);
// chart.js draws it.

export const BAR_WIDTH = 4; // viewBox units per hour (a bar and its gap)
export const PLOT_HEIGHT = 60;

// One bar an hour, the busiest one full height; an hour with any request is at least 1 high.
export function bars(hours, { width = BAR_WIDTH, height = PLOT_HEIGHT } = {}) {
  const max = Math.max(1, ...hours.map((h) => h.requests));
  return hours.map((hour, i) => {
    const h = hour.requests ? Math.max(1, (hour.requests / max) * height) : 0;
    return { x: i * width, y: height - h, width: width - 1, height: h, start: hour.start, requests: hour.requests };
  });
}

// The hours that start a day in the reader's time zone (`hourOf`: a Date's local hour): where a
// day's line and label go.
export function dayStarts(hours, hourOf = (date) => date.getHours()) {
  return hours.flatMap((hour, i) => (hourOf(new Date(hour.start)) === 0 ? [i] : []));
}

export function busiest(hours) {
  return hours.reduce((a, b) => (b.requests > a.requests ? b : a), hours[0]);
}

export function requestCount(n) {
  return `${n.toLocaleString()} request${n === 1 ? "" : "s"}`;
}

// The line above the chart; `hourText` formats an hour's start (a Date).
export function usageSummary(usage, hourText) {
  if (!usage.total) return "No requests in the last 7 days.";
  const top = busiest(usage.hours);
  return `${requestCount(usage.total)} in the last 7 days; busiest hour ${hourText(new Date(top.start))} with ` +
    `${top.requests.toLocaleString()}.`;
}
