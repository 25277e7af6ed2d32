// Expiry and restrictions of a key (docs/protection.md), which every key answer of the admin API
// carries (expires_at, expired, allowed_origins, allowed_ips, allowed_services): `facts` and
// `badges` for a key's card, `render` for the dialog's inputs (each in a [data-field] wrapper that
// API errors naming it land next to). What to send is forms.js's restrictionsBody.

import { el, timeEl } from "./dom.js";
import { restrictionsBody } from "./forms.js";
import { toLocalInput } from "./time.js";

// The services a key may be restricted to, as the gateway names them (the page's meta tag).
export const SERVICES = document.querySelector('meta[name="gateway-services"]').content.split(",");

function list(values, none) {
  return el("span", { text: values.length ? values.join(", ") : none, class: values.length ? "" : "muted" });
}

// [label, node] pairs for a key's card.
export function facts(key) {
  return [
    [key.expired ? "Expired" : "Expires", timeEl(key.expires_at, "Never")],
    ["Allowed origins", list(key.allowed_origins, "Any")],
    ["Allowed IPs", list(key.allowed_ips, "Any")],
    ["Allowed services", list(key.allowed_services, "All")],
  ];
}

export function badges(key) {
  return key.expired ? [el("span", { class: "badge danger", text: "Expired" })] : [];
}

const TEXTS = [
  ["allowed_origins", "key-origins", "Allowed origins",
   "One per line, e.g. https://app.example.com, https://*.example.com, http://localhost:*. Empty: any. " +
   "Requests without Origin or Referer (servers, mobile apps) pass."],
  ["allowed_ips", "key-ips", "Allowed IPs", "CIDRs, one per line, e.g. 203.0.113.0/24. Empty: any."],
];

// Fills `container` with the inputs, set from `key` (null: a new key), and returns a function
// giving what to send: on create the fields given a value, on edit the fields that changed.
export function render(container, key) {
  const expires = el("input", { id: "key-expires", type: "datetime-local", value: toLocalInput(key?.expires_at),
                                "aria-describedby": "key-expires-hint" });
  const clear = el("button", { type: "button", class: "small", text: "No expiry", onclick: () => { expires.value = ""; } });
  const texts = {};
  for (const [field, id] of TEXTS) {
    texts[field] = el("textarea", { id, rows: 2, spellcheck: "false", "aria-describedby": `${id}-hint` });
    texts[field].value = (key?.[field] ?? []).join("\n");
  }
  const boxes = SERVICES.map((service) => el("input", { type: "checkbox", value: service,
                                                         checked: Boolean(key?.allowed_services.includes(service)) }));
  container.replaceChildren(
    el("h3", { class: "subhead", text: "Expiry and restrictions" }),
    el("div", { class: "field", dataset: { field: "expires_at" } },
      el("label", { for: "key-expires", text: "Expires" }),
      el("div", { class: "row" }, expires, clear),
      el("p", { class: "hint", id: "key-expires-hint",
                text: "Empty: never. In your browser's time zone; afterwards requests with the key get 401." })),
    ...TEXTS.map(([field, id, label, hint]) => el("div", { class: "field", dataset: { field } },
      el("label", { for: id, text: label }), texts[field], el("p", { class: "hint", id: `${id}-hint`, text: hint }))),
    el("fieldset", { class: "field", dataset: { field: "allowed_services" } },
      el("legend", { text: "Allowed services" }),
      el("div", { class: "checks" }, ...boxes.map((box) => el("label", { class: "inline" }, box, ` ${box.value}`))),
      el("p", { class: "hint", text: "None ticked: all. Other routes get 403." })));
  return () => restrictionsBody({
    expires: expires.value,
    origins: texts.allowed_origins.value,
    ips: texts.allowed_ips.value,
    services: boxes.filter((box) => box.checked).map((box) => box.value),
  }, key);
}
