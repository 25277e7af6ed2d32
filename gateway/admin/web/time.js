// Times as the page shows them: "3 minutes ago", "Never used", the exact time on hover, the
// dialog's datetime-local value. Pure: no DOM (tests/admin/web/time.test.mjs).

const relative = new Intl.RelativeTimeFormat("en", { numeric: "always" });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const UNITS = [["year", 365 * 86400], ["month", 30 * 86400], ["day", 86400], ["hour", 3600], ["minute", 60]];
const DAY = 86400 * 1000;

// "3 minutes ago", "in 2 hours", "just now".
export function ago(iso, now = Date.now()) {
  const seconds = (Date.parse(iso) - now) / 1000;
  const size = Math.abs(seconds);
  if (size < 60) return seconds <= 0 ? "just now" : "in less than a minute";
  for (const [unit, length] of UNITS) { // rounded half away from now, past and future alike
    if (size >= length) return relative.format(Math.sign(seconds) * Math.round(size / length), unit);
  }
  return "just now";
}

// The exact time in the reader's time zone, then as the API gave it.
export function exactTime(iso, format = exact) {
  return `${format.format(new Date(iso))} (${iso})`;
}

// What a time fact says: the relative time with the exact one on hover, or `empty` without a time.
export function when(iso, empty = "Never", now = Date.now()) {
  return iso ? { text: ago(iso, now), title: exactTime(iso) } : { text: empty, title: null };
}

export function usedWithinADay(iso, now = Date.now()) {
  return Boolean(iso) && now - Date.parse(iso) < DAY;
}

// A datetime-local value (the browser's time zone, to the minute) for an RFC 3339 time, and back.
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}
