// What the dialogs send and where their errors go. Pure: no DOM (tests/admin/web/forms.test.mjs);
// the dialogs read their inputs into plain values and hand them here.

import { LIMIT_FORMAT, parseLimit } from "./limits.js";
import { QUOTA_FORMAT, parseQuota } from "./quota.js";
import { ago, exactTime, fromLocalInput, toLocalInput, usedWithinADay } from "./time.js";

// A problem with one field, found before asking the API; shown as the API's own errors are.
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// The body of a create (`editing` null: the fields given) or an edit (the fields that changed).
// `values`: {type, name, description, role, claims (JSON text), perKey, perIp}, as typed.
export function keyBody(values, editing) {
  const type = editing ? editing.type : values.type;
  const body = {};
  const name = values.name.trim();
  const description = values.description;
  if (!editing) {
    body.type = type;
    body.name = name;
    if (description.trim()) body.description = description;
  } else {
    if (name !== editing.name) body.name = name;
    if (description !== (editing.description ?? "")) body.description = description === "" ? null : description;
  }
  if (type === "secret") {
    const template = { ...claimsOf(values.claims), role: values.role.trim() };
    if (!editing || JSON.stringify(template) !== JSON.stringify(editing.secret_jwt_template)) {
      body.secret_jwt_template = template;
    }
  }
  const limits = {};
  for (const [member, typed] of [["per_key", values.perKey], ["per_ip", values.perIp]]) {
    const value = typed.trim();
    if (editing ? value === (editing.limits?.[member] ?? "") : !value) continue;
    if (value && !parseLimit(value)) throw new FieldError(`limits.${member}`, LIMIT_FORMAT);
    limits[member] = value || null;
  }
  if (Object.keys(limits).length) body.limits = limits;
  return body;
}

function claimsOf(text) {
  if (!text.trim()) return {};
  let claims;
  try {
    claims = JSON.parse(text);
  } catch {
    throw new FieldError("secret_jwt_template", "The other claims are not valid JSON.");
  }
  if (!claims || typeof claims !== "object" || Array.isArray(claims)) {
    throw new FieldError("secret_jwt_template", "The other claims must be a JSON object.");
  }
  return claims;
}

// One entry a line (commas and spaces separate too).
export function lines(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

const same = (a, b) => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);

// Expiry and restrictions, as keyBody: `values` {expires (a datetime-local value), origins,
// ips (text, one a line), services (the ticked ones)}.
export function restrictionsBody(values, key) {
  const body = {};
  const expires = toLocalInput(key?.expires_at);
  if (key ? values.expires !== expires : values.expires) body.expires_at = fromLocalInput(values.expires);
  for (const [field, value] of [["allowed_origins", lines(values.origins)], ["allowed_ips", lines(values.ips)],
                                ["allowed_services", values.services]]) {
    if (key ? !same(value, key[field]) : value.length) body[field] = value;
  }
  return body;
}

// One entry a line, as typed (a table may hold spaces or commas in its name).
export function entries(text) {
  return text.split("\n").map((s) => s.trim()).filter(Boolean);
}

// What a key may reach and do, and how much, as keyBody: `values` {resources (text, one a line),
// methods (the ticked ones), quota (COUNT/day or COUNT/month, or empty)}.
export function rulesBody(values, key) {
  const body = {};
  for (const [field, value] of [["allowed_resources", entries(values.resources)], ["allowed_methods", values.methods]]) {
    if (key ? !same(value, key[field]) : value.length) body[field] = value;
  }
  const quota = values.quota.trim();
  if (key ? quota !== (key.quota?.limit ?? "") : quota) {
    if (quota && !parseQuota(quota)) throw new FieldError("quota", QUOTA_FORMAT);
    body.quota = quota ? parseQuota(quota).text : null;
  }
  return body;
}

// Where an error naming `field` ("limits.per_ip") goes: the field, then each one up its dotted path.
export function fieldPath(field) {
  const out = [];
  for (let f = field || ""; f; f = f.includes(".") ? f.slice(0, f.lastIndexOf(".")) : "") out.push(f);
  return out;
}

// The message without the field name the API puts first ("limits.per_ip: must be ..."), as it
// is shown next to that field.
export function fieldMessage(error) {
  const prefix = `${error.field}: `;
  return error.field && error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

// The delete dialog's warning for a key used in the last 24 hours ("" otherwise).
export function recentUseWarning(lastUsed, now = Date.now()) {
  if (!usedWithinADay(lastUsed, now)) return "";
  return `This key was used ${ago(lastUsed, now)} (${exactTime(lastUsed)}): whatever still uses it will stop working.`;
}
