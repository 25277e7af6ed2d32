// A key's rate limits: the COUNT/WINDOW notation (as gateway/rules/limits.py reads it: 10/s,
// 600/m, 100/5m, 50000/d) and how a card states them. Pure: no DOM (tests/admin/web/limits.test.mjs,
// whose cases tests/admin/test_web_units.py also puts to the gateway's own parser).

const NOTATION = /^([1-9][0-9]{0,9})\/([1-9][0-9]{0,5})?([smhd])$/;
const UNITS = { s: 1, m: 60, h: 3600, d: 86400 };
export const LIMIT_FORMAT = "must be COUNT/WINDOW, e.g. 600/m or 100/5m (window in s, m, h or d)";

// {count, window (seconds), text} for a limit as written, or null when it is not one.
export function parseLimit(text) {
  const trimmed = typeof text === "string" ? text.trim() : "";
  const m = NOTATION.exec(trimmed);
  if (!m) return null;
  return { count: Number(m[1]), window: Number(m[2] ?? 1) * UNITS[m[3]], text: trimmed };
}

export function limitsText(limits) {
  const perKey = limits?.per_key;
  const perIp = limits?.per_ip;
  if (!perKey && !perIp) return "Configured defaults";
  if (perKey && perIp) return `${perKey} per key, ${perIp} per IP`;
  return perKey ? `${perKey} per key (per IP: default)` : `${perIp} per IP (per key: default)`;
}
