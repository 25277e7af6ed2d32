// What the supabase-management-js scripts share: the client, made from the JSON argument
// ({baseUrl, token, ref}), and `call`, which records under a label what a call returned
// ({status, contentType, data}) or threw ({error: {name, status, message}}) in `out`.
import { SupabaseManagementAPI } from "supabase-management-js";

const { baseUrl, token, ref } = JSON.parse(process.argv[2]);
export { ref };
export const api = client(token);

/** A client of the same admin listener with another token. */
export function client(accessToken) {
  return new SupabaseManagementAPI({ accessToken, baseUrl });
}
export const out = {};

export async function call(label, fn) {
  try {
    const r = await fn();
    out[label] = { status: r.status, contentType: r.headers.get("content-type"), data: r.data };
  } catch (e) {
    out[label] = { error: { name: e.name, status: e.status, message: e.message } };
  }
  return out[label];
}
