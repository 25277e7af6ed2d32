// What the legacy section says, from the admin API's legacy answer ({enabled, configured}: the
// legacy keys set in legacy.*). Pure: no DOM (tests/admin/web/legacyview.test.mjs); legacy.js
// draws it.

import { usedWithinADay } from "./time.js";

export const NONE = "No legacy keys are configured.";
export const NONE_HINT = "To accept the anon and service_role JWTs of a Supabase stack, set legacy.anon_key and " +
  "legacy.service_role_key (or ANON_KEY and SERVICE_ROLE_KEY) and restart the gateway.";

const both = (names) => names.join(" and ");

// {kind, state, stateClass, hint, toggle: {text, class} | null}, or null before the first answer.
// Without configured keys there is nothing to enable, disable or count, whatever the switch says.
export function legacyView(legacy) {
  if (!legacy) return null;
  const names = legacy.configured;
  if (names.length === 0) return { kind: "none", state: NONE, stateClass: "", hint: NONE_HINT, toggle: null };
  if (legacy.enabled) {
    return { kind: "enabled", state: "Enabled: requests with these JWTs are accepted.", stateClass: "", hint: "",
             toggle: { text: "Disable legacy API keys", class: "danger" } };
  }
  return { kind: "disabled", state: `Disabled: requests with the ${both(names)} JWT${names.length === 1 ? "" : "s"} are refused.`,
           stateClass: "badge-line", hint: "", toggle: { text: "Re-enable legacy API keys", class: "primary" } };
}

// The legacy keys whose last use the page asks for: while disabled the key list leaves them out,
// so the configured ones are asked one by one; never one that is not configured (it would 404).
export function lastUseWanted(legacy) {
  return legacy && !legacy.enabled ? [...legacy.configured] : [];
}

// The disable dialog's warning: the legacy keys ({name, last_used_at}) used in the last 24 hours.
export function recentLegacyWarning(uses, now = Date.now()) {
  const recent = uses.filter((u) => usedWithinADay(u.last_used_at, now)).map((u) => u.name);
  if (recent.length === 0) return "";
  const one = recent.length === 1;
  return `${both(recent)} ${one ? "was" : "were"} used in the last 24 hours: clients still using ${one ? "it" : "them"} ` +
    "will be refused.";
}
