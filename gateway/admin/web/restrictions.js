// Expiry and restrictions of a key (SPEC section 11): shown, and offered in the create and edit
// dialog, only for the fields the admin API's key answers carry. Without them (an admin API
// that does not have them yet) nothing here appears. Everything the page knows of these fields
// is in this module: `supported` (which exist), `facts` and `badges` (a key's card), `render`
// (the dialog's inputs, each in a [data-field] wrapper that API errors naming it land next to).

import { el, timeEl } from "./dom.js";

export const FIELDS = ["expires_at", "allowed_origins", "allowed_ips", "allowed_services"];
export const SERVICES = ["rest", "graphql", "realtime", "functions", "auth", "storage", "meta"];

// The fields the admin API has: those any key answer carries.
export function supported(keys) {
  return new Set(FIELDS.filter((field) => keys.some((key) => Object.hasOwn(key, field))));
}

function list(values, none) {
  return el("span", { text: values && values.length ? values.join(", ") : none, class: values?.length ? "" : "muted" });
}

// [label, node] pairs for a key's card.
export function facts(key) {
  const out = [];
  if (Object.hasOwn(key, "expires_at")) {
    out.push([key.expired ? "Expired" : "Expires", timeEl(key.expires_at, "Never")]);
  }
  if (Object.hasOwn(key, "allowed_origins")) out.push(["Allowed origins", list(key.allowed_origins, "Any")]);
  if (Object.hasOwn(key, "allowed_ips")) out.push(["Allowed IPs", list(key.allowed_ips, "Any")]);
  if (Object.hasOwn(key, "allowed_services")) out.push(["Allowed services", list(key.allowed_services, "All")]);
  return out;
}

export function badges(key) {
  return key.expired ? [el("span", { class: "badge danger", text: "Expired" })] : [];
}

// A datetime-local value (the browser's time zone) for an RFC 3339 time, and back.
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}

function lines(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

const same = (a, b) => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);

// Fills `container` with inputs for the `fields` (a Set) and returns a function giving what to
// send: on create (`key` null) the fields given a value; on edit the fields that changed.
export function render(container, fields, key) {
  const readers = [];
  const parts = [];
  if (fields.has("expires_at")) {
    const start = toLocalInput(key?.expires_at);
    const input = el("input", { id: "key-expires", type: "datetime-local", value: start, "aria-describedby": "key-expires-hint" });
    const clear = el("button", { type: "button", class: "small", text: "No expiry", onclick: () => { input.value = ""; } });
    parts.push(el("div", { class: "field", dataset: { field: "expires_at" } },
      el("label", { for: "key-expires", text: "Expires" }),
      el("div", { class: "row" }, input, clear),
      el("p", { class: "hint", id: "key-expires-hint", text: "Empty: never. In your browser's time zone; afterwards requests with the key get 401." })));
    readers.push((body) => {
      if (key ? input.value !== start : input.value) body.expires_at = fromLocalInput(input.value);
    });
  }
  for (const [field, id, label, hint] of [
    ["allowed_origins", "key-origins", "Allowed origins", "One per line, e.g. https://app.example.com, https://*.example.com, http://localhost:*. Empty: any. Requests without Origin or Referer (servers, mobile apps) pass."],
    ["allowed_ips", "key-ips", "Allowed IPs", "CIDRs, one per line, e.g. 203.0.113.0/24. Empty: any."],
  ]) {
    if (!fields.has(field)) continue;
    const start = key?.[field] ?? [];
    const input = el("textarea", { id, rows: 2, spellcheck: "false", "aria-describedby": `${id}-hint` });
    input.value = start.join("\n");
    parts.push(el("div", { class: "field", dataset: { field } },
      el("label", { for: id, text: label }), input, el("p", { class: "hint", id: `${id}-hint`, text: hint })));
    readers.push((body) => {
      const value = lines(input.value);
      if (key ? !same(value, start) : value.length) body[field] = value;
    });
  }
  if (fields.has("allowed_services")) {
    const start = key?.allowed_services ?? [];
    const boxes = SERVICES.map((service) => el("input", { type: "checkbox", value: service, checked: start.includes(service) }));
    parts.push(el("fieldset", { class: "field", dataset: { field: "allowed_services" } },
      el("legend", { text: "Allowed services" }),
      el("div", { class: "checks" }, ...boxes.map((box) => el("label", { class: "inline" }, box, ` ${box.value}`))),
      el("p", { class: "hint", text: "None ticked: all. Other routes get 403." })));
    readers.push((body) => {
      const value = boxes.filter((box) => box.checked).map((box) => box.value);
      if (key ? !same(value, start) : value.length) body.allowed_services = value;
    });
  }
  container.replaceChildren(...(parts.length ? [el("h3", { class: "subhead", text: "Expiry and restrictions" }), ...parts] : []));
  return () => {
    const body = {};
    for (const read of readers) read(body);
    return body;
  };
}
