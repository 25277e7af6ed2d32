// Every network-bans and network-restrictions call of supabase-management-js, against the
// gateway's admin listener. Prints one JSON object: what each call returned or threw
// (tests/compat/management_calls.mjs).
import { api, call, out, ref } from "./management_calls.mjs";

await call("bans", () => api.listAllNetworkBans(ref));
await call("bansEnriched", () => api.listAllNetworkBansEnriched(ref));
await call("lift", () => api.deleteNetworkBans(ref, { ipv4_addresses: ["203.0.113.9"], requester_ip: false }));
await call("bansAfter", () => api.listAllNetworkBans(ref));
await call("restrictions", () => api.getNetworkRestrictions(ref));
await call("apply", () =>
  api.updateNetworkRestrictions(ref, { dbAllowedCidrs: ["203.0.113.0/24"], dbAllowedCidrsV6: ["2001:db8::/32"] }));
await call("patch", () =>
  api.patchNetworkRestrictions(ref, { add: { dbAllowedCidrs: ["198.51.100.0/24"] },
                                      remove: { dbAllowedCidrsV6: ["2001:db8::/32"] } }));
await call("badApply", () => api.updateNetworkRestrictions(ref, { dbAllowedCidrs: ["not-a-cidr"] }));
await call("reset", () => api.updateNetworkRestrictions(ref, { dbAllowedCidrs: ["0.0.0.0/0"], dbAllowedCidrsV6: ["::/0"] }));

console.log(JSON.stringify(out));
