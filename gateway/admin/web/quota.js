// A key's quota (docs/protection.md "Quotas"): the COUNT/day or COUNT/month notation, as
// gateway/rules/quota.py reads it, and how a card states what is used and left. Pure: no DOM
// (tests/admin/web/quota.test.mjs, whose cases tests/admin/test_web_units.py also puts to the
// gateway's own parser).

const NOTATION = /^([1-9][0-9]{0,11})\/(day|month)$/;
export const QUOTA_FORMAT = "must be COUNT/day or COUNT/month, e.g. 100000/month (calendar periods in UTC)";

// {count, period, text} for a quota as written, or null when it is not one.
export function parseQuota(text) {
  const trimmed = typeof text === "string" ? text.trim() : "";
  const m = NOTATION.exec(trimmed);
  if (!m) return null;
  return { count: Number(m[1]), period: m[2], text: `${Number(m[1])}/${m[2]}` };
}

const number = new Intl.NumberFormat("en-US");

// The card's words for a key's quota answer ({limit, used, left, resets_at}, or null).
export function quotaText(quota) {
  if (!quota) return "None";
  const parsed = parseQuota(quota.limit);
  const period = parsed?.period === "day" ? "today" : "this month";
  const count = parsed ? number.format(parsed.count) : quota.limit;
  return `${number.format(quota.used)} of ${count} ${period} (${number.format(quota.left)} left)`;
}

// Whether a quota answer is spent (the card marks the key).
export const spent = (quota) => Boolean(quota) && quota.left <= 0;
