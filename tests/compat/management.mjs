// Every api-keys and legacy-keys call of supabase-management-js, as a script would make them,
// against the gateway's admin listener. Prints one JSON object: what each call returned or threw
// (tests/compat/management_calls.mjs).
import { api, call, client, out, ref } from "./management_calls.mjs";

await call("project", () => api.getProject(ref));
await call("list", () => api.getProjectApiKeys(ref));
await call("listRevealed", () => api.getProjectApiKeys(ref, { reveal: true }));
const pub = await call("createPublishable", () =>
  api.createProjectApiKey(ref, { type: "publishable", name: "mgmt_web", description: "from management-js" }));
// Newer clients and the dashboard send fields the API may not know (expose_as_env): ignored.
const secret = await call("createSecret", () =>
  api.createProjectApiKey(ref, { type: "secret", name: "mgmt_backend", secret_jwt_template: { role: "service_role" },
                                 expose_as_env: true }, { reveal: true }));
const secretId = secret.data?.id;
await call("get", () => api.getProjectApiKey(ref, secretId));
await call("getRevealed", () => api.getProjectApiKey(ref, secretId, { reveal: true }));
await call("getPublishable", () => api.getProjectApiKey(ref, pub.data?.id));
await call("getAnon", () => api.getProjectApiKey(ref, "anon"));
await call("update", () =>
  api.updateProjectApiKey(ref, secretId, { name: "mgmt_backend_two", description: null }, { reveal: false }));
await call("legacy", () => api.getProjectLegacyApiKeys(ref));
await call("legacyOff", () => api.updateProjectLegacyApiKeys(ref, { enabled: false }));
await call("listWithoutLegacy", () => api.getProjectApiKeys(ref));
await call("legacyOn", () => api.updateProjectLegacyApiKeys(ref, { enabled: true }));
await call("delete", () => api.deleteProjectApiKey(ref, secretId, { was_compromised: true, reason: "rotated" }));
await call("deletePublishable", () => api.deleteProjectApiKey(ref, pub.data?.id));
await call("getDeleted", () => api.getProjectApiKey(ref, secretId));
await call("badBody", () => api.createProjectApiKey(ref, { type: "secret", name: "No Such Name" }));
await call("unknownRef", () => api.getProjectApiKeys("nosuchproject"));
const stranger = client("sbp_" + "0".repeat(40));
await call("wrongToken", () => stranger.getProjectApiKeys(ref));

console.log(JSON.stringify(out));
