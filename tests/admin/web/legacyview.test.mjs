// What the legacy section says and asks for (gateway/admin/web/legacyview.js), from the admin API's
// legacy answer {enabled, configured}.

import assert from "node:assert/strict";
import { test } from "node:test";

import { NONE, lastUseWanted, legacyView, recentLegacyWarning } from "../../../gateway/admin/web/legacyview.js";

const BOTH = ["anon", "service_role"];

test("before the first answer (or signed out): nothing", () => {
  assert.equal(legacyView(null), null);
  assert.deepEqual(lastUseWanted(null), []);
});

test("none configured: said plainly, nothing to switch, whatever the switch says", () => {
  for (const enabled of [true, false]) {
    const view = legacyView({ enabled, configured: [] });
    assert.equal(view.kind, "none");
    assert.equal(view.state, NONE);
    assert.equal(view.toggle, null);
    assert.match(view.hint, /legacy\.anon_key/);
    assert.doesNotMatch(`${view.state} ${view.hint}`, /Disabled|Re-enable/);
    assert.deepEqual(lastUseWanted({ enabled, configured: [] }), []); // no usage asked of keys that do not exist
  }
});

test("enabled: listed by the key list, so no last use asked separately", () => {
  const view = legacyView({ enabled: true, configured: BOTH });
  assert.equal(view.kind, "enabled");
  assert.equal(view.state, "Enabled: requests with these JWTs are accepted.");
  assert.deepEqual(view.toggle, { text: "Disable legacy API keys", class: "danger" });
  assert.deepEqual(lastUseWanted({ enabled: true, configured: BOTH }), []);
});

test("disabled: the last use of each configured key, and Re-enable", () => {
  const view = legacyView({ enabled: false, configured: BOTH });
  assert.equal(view.kind, "disabled");
  assert.equal(view.state, "Disabled: requests with the anon and service_role JWTs are refused.");
  assert.equal(view.stateClass, "badge-line");
  assert.deepEqual(view.toggle, { text: "Re-enable legacy API keys", class: "primary" });
  assert.deepEqual(lastUseWanted({ enabled: false, configured: BOTH }), BOTH);
});

test("disabled with one configured: that one only", () => {
  assert.equal(legacyView({ enabled: false, configured: ["anon"] }).state,
               "Disabled: requests with the anon JWT are refused.");
  assert.deepEqual(lastUseWanted({ enabled: false, configured: ["anon"] }), ["anon"]);
});

test("the disable dialog warns about keys used in the last 24 hours", () => {
  const now = Date.parse("2030-06-15T12:00:00Z");
  const recent = "2030-06-15T11:00:00Z";
  const old = "2030-06-01T11:00:00Z";
  assert.equal(recentLegacyWarning([{ name: "anon", last_used_at: old }, { name: "service_role", last_used_at: null }], now), "");
  assert.equal(recentLegacyWarning([{ name: "anon", last_used_at: recent }, { name: "service_role", last_used_at: null }], now),
               "anon was used in the last 24 hours: clients still using it will be refused.");
  assert.equal(recentLegacyWarning([{ name: "anon", last_used_at: recent }, { name: "service_role", last_used_at: recent }], now),
               "anon and service_role were used in the last 24 hours: clients still using them will be refused.");
});
