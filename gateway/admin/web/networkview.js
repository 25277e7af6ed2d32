// What the Network section says and sends, from the admin API's network-restrictions answer
// ({config: {dbAllowedCidrs, dbAllowedCidrsV6}}) and network-bans answer ({bans: [{address,
// started_at, ends_at, reason, refusals}]}). Pure: no DOM (tests/admin/web/networkview.test.mjs);
// network.js draws it.

import { FieldError, lines } from "./forms.js";

export const EVERYONE = ["0.0.0.0/0", "::/0"];
export const NEED_ONE = "Give at least one CIDR: 0.0.0.0/0 and ::/0 let everyone in.";

// Every allowed CIDR, IPv4 first, as the allow list's textarea shows them.
export function allowedCidrs(restrictions) {
  const config = restrictions?.config ?? {};
  return [...(config.dbAllowedCidrs ?? []), ...(config.dbAllowedCidrsV6 ?? [])];
}

export function isEveryone(cidrs) {
  return cidrs.includes("0.0.0.0/0") && cidrs.includes("::/0");
}

// The line above the allow list.
export function allowSummary(restrictions) {
  if (!restrictions) return "";
  const cidrs = allowedCidrs(restrictions);
  if (isEveryone(cidrs)) return "Everyone may call the public API (0.0.0.0/0 and ::/0).";
  if (cidrs.length === 0) return "Nobody may call the public API: every request but /health gets 403.";
  const v4 = restrictions.config.dbAllowedCidrs?.length ?? 0;
  const families = v4 === 0 ? " IPv4 clients get 403 too." : v4 === cidrs.length ? " IPv6 clients get 403 too." : "";
  return `Only ${cidrs.length === 1 ? "one network" : `${cidrs.length} networks`} may call the public API; ` +
    `other clients get 403 FORBIDDEN_IP.${families}`;
}

// The body of network-restrictions/apply for what the textarea holds (one CIDR a line; commas and
// spaces separate too). The gateway sorts the families out, so everything goes in dbAllowedCidrs
// and an error names that field. Empty is refused here: it would shut every client out.
export function allowBody(text) {
  const cidrs = lines(text);
  if (cidrs.length === 0) throw new FieldError("dbAllowedCidrs", NEED_ONE);
  return { dbAllowedCidrs: cidrs, dbAllowedCidrsV6: [] };
}

export function blocksSummary(answer) {
  const n = answer?.bans?.length ?? 0;
  if (!answer) return "";
  if (n === 0) return "No client is blocked.";
  return `${n === 1 ? "One client is" : `${n} clients are`} blocked: every request from ${n === 1 ? "it" : "them"} ` +
    "gets 429 until the block ends or is lifted.";
}

// The blocks, the one ending last first (the most recent trouble on top).
export function blockRows(answer) {
  return [...(answer?.bans ?? [])].sort((a, b) => Date.parse(b.ends_at) - Date.parse(a.ends_at)).map((ban) => ({
    address: ban.address,
    family: ban.family === "ipv6" ? "IPv6 /64" : "IPv4",
    startedAt: ban.started_at,
    endsAt: ban.ends_at,
    reason: ban.reason,
  }));
}
