// Every network-bans and network-restrictions call of supabase-management-js, against the
// gateway's admin listener. Prints one JSON object: what each call returned ({status,
// contentType, data}) or threw ({error: {name, status, message}}).
import { SupabaseManagementAPI } from "supabase-management-js";

const { baseUrl, token, ref } = JSON.parse(process.argv[2]);
const api = new SupabaseManagementAPI({ accessToken: token, baseUrl });
const out = {};

async function call(label, fn) {
  try {
    const r = await fn();
    out[label] = { status: r.status, contentType: r.headers.get("content-type"), data: r.data };
  } catch (e) {
    out[label] = { error: { name: e.name, status: e.status, message: e.message } };
  }
  return out[label];
}

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
