// What the dialogs send (gateway/admin/web/forms.js): a create gives the fields set, an edit only the
// fields changed; problems the page can see itself are named by field, as the API names them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { FieldError, fieldMessage, fieldPath, keyBody, lines, recentUseWarning, restrictionsBody, rulesBody }
  from "../../../gateway/admin/web/forms.js";
import { LIMIT_FORMAT } from "../../../gateway/admin/web/limits.js";
import { QUOTA_FORMAT } from "../../../gateway/admin/web/quota.js";
import { toLocalInput } from "../../../gateway/admin/web/time.js";

const typed = (values = {}) => ({ type: "publishable", name: "", description: "", role: "", claims: "", perKey: "",
                                  perIp: "", ...values });
const SECRET = {
  id: "k1", type: "secret", name: "ci_worker", description: "Runs the nightly jobs",
  secret_jwt_template: { role: "service_role" }, limits: { per_key: "1000/m", per_ip: null },
  expires_at: null, allowed_origins: [], allowed_ips: ["10.0.0.0/8"], allowed_services: ["rest"],
};
const asTyped = (key) => typed({ type: key.type, name: key.name, description: key.description ?? "", role: "service_role",
                                 perKey: key.limits.per_key ?? "", perIp: key.limits.per_ip ?? "" });

const fieldError = (field, message) => (e) => e instanceof FieldError && e.field === field && e.message === message;

test("create: the type, the name, and only what was given", () => {
  assert.deepEqual(keyBody(typed({ name: " web_app ", description: "  " }), null), { type: "publishable", name: "web_app" });
  assert.deepEqual(keyBody(typed({ name: "web_app", description: "Front end", perIp: " 60/m " }), null),
                   { type: "publishable", name: "web_app", description: "Front end", limits: { per_ip: "60/m" } });
});

test("create a secret key: its JWT template, the role with the other claims", () => {
  assert.deepEqual(keyBody(typed({ type: "secret", name: "ci", role: " service_role " }), null),
                   { type: "secret", name: "ci", secret_jwt_template: { role: "service_role" } });
  const claims = '{"app_metadata": {"team": "data"}, "role": "ignored"}';
  assert.deepEqual(keyBody(typed({ type: "secret", name: "ci", role: "reporting", claims }), null).secret_jwt_template,
                   { app_metadata: { team: "data" }, role: "reporting" });
});

test("a publishable key has no template, whatever the hidden inputs hold", () => {
  assert.equal("secret_jwt_template" in keyBody(typed({ name: "w", role: "x", claims: "{" }), null), false);
});

test("claims that are not a JSON object are named by field", () => {
  const secret = (claims) => () => keyBody(typed({ type: "secret", name: "ci", role: "r", claims }), null);
  assert.throws(secret("{"), fieldError("secret_jwt_template", "The other claims are not valid JSON."));
  for (const claims of ["[]", "null", "3", '"text"']) {
    assert.throws(secret(claims), fieldError("secret_jwt_template", "The other claims must be a JSON object."), claims);
  }
});

test("a malformed limit is named by its member, before any request", () => {
  assert.throws(() => keyBody(typed({ name: "w", perIp: "lots" }), null), fieldError("limits.per_ip", LIMIT_FORMAT));
  assert.throws(() => keyBody(typed({ name: "w", perKey: "10/x" }), null), fieldError("limits.per_key", LIMIT_FORMAT));
});

test("edit: nothing changed, nothing sent", () => {
  assert.deepEqual(keyBody(asTyped(SECRET), SECRET), {});
});

test("edit: the fields changed only; an emptied description or limit becomes null", () => {
  assert.deepEqual(keyBody({ ...asTyped(SECRET), description: "Runs the nightly jobs and the backups" }, SECRET),
                   { description: "Runs the nightly jobs and the backups" });
  assert.deepEqual(keyBody({ ...asTyped(SECRET), description: "", perKey: "" }, SECRET),
                   { description: null, limits: { per_key: null } });
  assert.deepEqual(keyBody({ ...asTyped(SECRET), name: "renamed", perIp: "60/m" }, SECRET),
                   { name: "renamed", limits: { per_ip: "60/m" } });
  assert.deepEqual(keyBody({ ...asTyped(SECRET), role: "authenticated" }, SECRET),
                   { secret_jwt_template: { role: "authenticated" } });
});

test("edit: the type is the key's, not the radio buttons'", () => {
  assert.deepEqual(keyBody({ ...asTyped(SECRET), type: "publishable" }, SECRET), {});
});

test("lines: one entry a line, commas and spaces separate too", () => {
  assert.deepEqual(lines(" https://a.example.com\n\nhttp://localhost:*, 10.0.0.0/8  "),
                   ["https://a.example.com", "http://localhost:*", "10.0.0.0/8"]);
  assert.deepEqual(lines(""), []);
});

const restrictionValues = (values = {}) => ({ expires: "", origins: "", ips: "", services: [], ...values });

test("restrictions on create: only the fields given", () => {
  assert.deepEqual(restrictionsBody(restrictionValues(), null), {});
  const body = restrictionsBody(restrictionValues({
    expires: "2031-01-02T03:04", origins: "https://app.example.com\nhttp://localhost:*", ips: "10.0.0.0/8",
    services: ["rest", "storage"] }), null);
  assert.deepEqual(body, { expires_at: new Date("2031-01-02T03:04").toISOString(),
                           allowed_origins: ["https://app.example.com", "http://localhost:*"],
                           allowed_ips: ["10.0.0.0/8"], allowed_services: ["rest", "storage"] });
});

test("restrictions on edit: the fields changed; emptied ones become [] or null", () => {
  const unchanged = restrictionValues({ ips: "10.0.0.0/8", services: ["rest"] });
  assert.deepEqual(restrictionsBody(unchanged, SECRET), {});
  assert.deepEqual(restrictionsBody({ ...unchanged, ips: "" }, SECRET), { allowed_ips: [] });
  assert.deepEqual(restrictionsBody({ ...unchanged, services: [] }, SECRET), { allowed_services: [] });
  const expiring = { ...SECRET, expires_at: "2031-01-02T03:04:00+00:00" };
  const shown = { ...unchanged, expires: toLocalInput(expiring.expires_at) };
  assert.deepEqual(restrictionsBody(shown, expiring), {}); // as the dialog showed it
  assert.deepEqual(restrictionsBody({ ...shown, expires: "" }, expiring), { expires_at: null }); // "No expiry"
});

test("an error lands on its field, else on the nearest one up its dotted path", () => {
  assert.deepEqual(fieldPath("limits.per_ip"), ["limits.per_ip", "limits"]);
  assert.deepEqual(fieldPath("a.b.c"), ["a.b.c", "a.b", "a"]);
  assert.deepEqual(fieldPath("allowed_ips"), ["allowed_ips"]);
  assert.deepEqual(fieldPath(""), []);
  assert.deepEqual(fieldPath(undefined), []);
});

test("next to its field, the message without the field's name", () => {
  assert.equal(fieldMessage({ field: "limits.per_ip", message: "limits.per_ip: must be COUNT/WINDOW" }), "must be COUNT/WINDOW");
  assert.equal(fieldMessage({ field: "name", message: "Too short" }), "Too short");
  assert.equal(fieldMessage({ field: "", message: "Database unavailable" }), "Database unavailable");
});

test("the delete dialog warns about a key used in the last 24 hours", () => {
  const now = Date.parse("2030-06-15T12:00:00Z");
  assert.equal(recentUseWarning(null, now), "");
  assert.equal(recentUseWarning("2030-06-14T11:00:00Z", now), "");
  const warning = recentUseWarning("2030-06-15T11:57:00Z", now);
  assert.match(warning, /^This key was used 3 minutes ago \(.*\(2030-06-15T11:57:00Z\)\): whatever still uses it will stop working\.$/);
});

const ruleValues = (values = {}) => ({ resources: "", methods: [], quota: "", ...values });
const RULED = { ...SECRET, allowed_resources: ["todos", "rpc/search_*"], allowed_methods: ["GET", "HEAD"],
                quota: { limit: "1000/month", used: 10, left: 990, resets_at: "2031-02-01T00:00:00+00:00" } };

test("rules on create: only the fields given; a resource a line, spaces kept inside", () => {
  assert.deepEqual(rulesBody(ruleValues(), null), {});
  assert.deepEqual(rulesBody(ruleValues({ resources: " todos \n\nmy table\nrpc/search_*", methods: ["GET", "HEAD"],
                                          quota: " 1000/month " }), null),
                   { allowed_resources: ["todos", "my table", "rpc/search_*"], allowed_methods: ["GET", "HEAD"],
                     quota: "1000/month" });
});

test("rules on edit: the fields changed; emptied ones become [] or null", () => {
  const shown = ruleValues({ resources: "todos\nrpc/search_*", methods: ["GET", "HEAD"], quota: "1000/month" });
  assert.deepEqual(rulesBody(shown, RULED), {});
  assert.deepEqual(rulesBody({ ...shown, methods: [] }, RULED), { allowed_methods: [] });
  assert.deepEqual(rulesBody({ ...shown, resources: "" }, RULED), { allowed_resources: [] });
  assert.deepEqual(rulesBody({ ...shown, quota: "" }, RULED), { quota: null });
  assert.deepEqual(rulesBody({ ...shown, quota: "50/day" }, RULED), { quota: "50/day" });
  assert.deepEqual(rulesBody(ruleValues(), { ...SECRET, allowed_resources: [], allowed_methods: [], quota: null }), {});
});

test("a malformed quota is named by its field, before any request", () => {
  assert.throws(() => rulesBody(ruleValues({ quota: "100/week" }), null), fieldError("quota", QUOTA_FORMAT));
  assert.throws(() => rulesBody(ruleValues({ quota: "lots" }), RULED), fieldError("quota", QUOTA_FORMAT));
});
