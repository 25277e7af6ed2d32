// A key's usage: the Usage button of its card, and the bar chart of its requests per hour over
// the last 7 days (one bar an hour, its exact count on hover; a line and a label a day), drawn
// as SVG from usage.js's numbers.

import { el, svg } from "./dom.js";
import { BAR_WIDTH, PLOT_HEIGHT, bars, dayStarts, requestCount, usageSummary } from "./usage.js";

const hourFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short" });

// The nodes showing `usage` (GET .../api-keys/{id}/usage): the summary, the chart, a note.
export function chart(usage) {
  const hours = usage.hours;
  const width = hours.length * BAR_WIDTH;
  const plot = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${PLOT_HEIGHT + 14}`, role: "img",
                            "aria-label": `Requests per hour over the last 7 days: ${usage.total} in all` });
  for (const i of dayStarts(hours)) {
    const x = i * BAR_WIDTH;
    plot.append(svg("line", { class: "day", x1: x, x2: x, y1: 0, y2: PLOT_HEIGHT }),
                svg("text", { class: "day-label", x: x + 2, y: PLOT_HEIGHT + 11, text: dayFormat.format(new Date(hours[i].start)) }));
  }
  for (const bar of bars(hours)) {
    plot.append(svg("rect", { class: "bar", x: bar.x, y: bar.y, width: bar.width, height: bar.height },
                    svg("title", { text: `${hourFormat.format(new Date(bar.start))}: ${requestCount(bar.requests)}` })));
  }
  plot.append(svg("line", { class: "axis", x1: 0, x2: width, y1: PLOT_HEIGHT, y2: PLOT_HEIGHT }));
  return [el("p", { class: "usage-summary", text: usageSummary(usage, (d) => hourFormat.format(d)) }), plot,
          el("p", { class: "hint", text: "Counted by every worker and written every few seconds." })];
}

// {button, panel} for a key's card: the button shows and hides the panel, asking for the usage
// each time it opens (`load()`: a promise of the usage answer).
export function usageToggle(load) {
  const panel = el("div", { class: "usage", hidden: true });
  const button = el("button", { type: "button", class: "small", text: "Usage", "aria-expanded": "false" });
  button.addEventListener("click", async () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (!open) return;
    panel.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
    try {
      panel.replaceChildren(...chart(await load()));
    } catch (e) {
      panel.replaceChildren(el("p", { class: "error", text: e.message }));
    }
  });
  return { button, panel };
}
