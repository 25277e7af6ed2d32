// What the Network section says and sends (gateway/admin/web/networkview.js), from the admin API's
// network-restrictions and network-bans answers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { FieldError } from "../../../gateway/admin/web/forms.js";
import {
  NEED_ONE, allowBody, allowSummary, allowedCidrs, blockRows, blocksSummary, isEveryone,
} from "../../../gateway/admin/web/networkview.js";

const answer = (v4, v6) => ({ entitlement: "allowed", status: "applied", config: { dbAllowedCidrs: v4, dbAllowedCidrsV6: v6 } });

test("before the first answer (or signed out): nothing", () => {
  assert.equal(allowSummary(null), "");
  assert.deepEqual(allowedCidrs(null), []);
  assert.equal(blocksSummary(null), "");
  assert.deepEqual(blockRows(null), []);
});

test("the allow list in a line", () => {
  assert.equal(allowSummary(answer(["0.0.0.0/0"], ["::/0"])), "Everyone may call the public API (0.0.0.0/0 and ::/0).");
  assert.equal(allowSummary(answer([], [])), "Nobody may call the public API: every request but /health gets 403.");
  assert.equal(allowSummary(answer(["203.0.113.0/24"], [])),
    "Only one network may call the public API; other clients get 403 FORBIDDEN_IP. IPv6 clients get 403 too.");
  assert.equal(allowSummary(answer([], ["2001:db8::/32", "2001:db8:1::/48"])),
    "Only 2 networks may call the public API; other clients get 403 FORBIDDEN_IP. IPv4 clients get 403 too.");
  assert.equal(allowSummary(answer(["203.0.113.0/24"], ["2001:db8::/32"])),
    "Only 2 networks may call the public API; other clients get 403 FORBIDDEN_IP.");
  assert.equal(allowSummary({ config: {} }), "Nobody may call the public API: every request but /health gets 403.");
});

test("the textarea shows IPv4 then IPv6, one a line", () => {
  assert.deepEqual(allowedCidrs(answer(["203.0.113.0/24"], ["2001:db8::/32"])), ["203.0.113.0/24", "2001:db8::/32"]);
  assert.ok(isEveryone(["::/0", "10.0.0.0/8", "0.0.0.0/0"]));
  assert.ok(!isEveryone(["0.0.0.0/0"]));
});

test("what is sent: every entry as written, the gateway sorts the families out", () => {
  assert.deepEqual(allowBody("203.0.113.0/24\n2001:db8::/32, 198.51.100.7 \n\n"),
    { dbAllowedCidrs: ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"], dbAllowedCidrsV6: [] });
  assert.deepEqual(allowBody("not-a-cidr"), { dbAllowedCidrs: ["not-a-cidr"], dbAllowedCidrsV6: [] }); // the API names it
});

test("an empty list is refused beside the field: it would shut everyone out", () => {
  for (const text of ["", "  \n , "]) {
    assert.throws(() => allowBody(text), (e) => e instanceof FieldError && e.field === "dbAllowedCidrs" && e.message === NEED_ONE);
  }
});

test("blocks: a line, and the rows with the latest trouble first", () => {
  const bans = [
    { address: "203.0.113.9", family: "ipv4", started_at: "2026-01-01T10:00:00Z", ends_at: "2026-01-01T10:10:00Z",
      reason: "30 refused requests (block_after 30/m); the last: UNAUTHORIZED_INVALID_API_KEY", refusals: 30 },
    { address: "2001:db8:1:2::/64", family: "ipv6", started_at: "2026-01-01T10:05:00Z",
      ends_at: "2026-01-01T10:15:00Z", reason: "31 refused requests", refusals: 31 },
  ];
  assert.equal(blocksSummary({ banned_ipv4_addresses: [], bans: [] }), "No client is blocked.");
  assert.equal(blocksSummary({ bans: bans.slice(0, 1) }),
    "One client is blocked: every request from it gets 429 until the block ends or is lifted.");
  assert.equal(blocksSummary({ bans }), "2 clients are blocked: every request from them gets 429 until the block ends or is lifted.");
  assert.deepEqual(blockRows({ bans }).map((r) => [r.address, r.family]), [["2001:db8:1:2::/64", "IPv6 /64"], ["203.0.113.9", "IPv4"]]);
  assert.equal(blockRows({ bans })[1].reason, bans[0].reason);
  assert.equal(blockRows({ bans })[1].startedAt, "2026-01-01T10:00:00Z");
});
