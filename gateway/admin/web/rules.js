// What a key may reach and do, and how much (docs/protection.md), which every key answer of the
// admin API carries (allowed_resources, allowed_methods, quota): `facts` and `badges` for a key's
// card, `render` for the dialog's inputs (each in a [data-field] wrapper that API errors naming
// it land next to). What to send is forms.js's rulesBody.

import { el, timeEl } from "./dom.js";
import { rulesBody } from "./forms.js";
import { quotaText, spent } from "./quota.js";

export const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const READ_ONLY = ["GET", "HEAD"];

function list(values, none) {
  return el("span", { text: values.length ? values.join(", ") : none, class: values.length ? "" : "muted" });
}

function quotaFact(quota) {
  if (!quota) return el("span", { class: "muted", text: "None" });
  return el("span", {}, `${quotaText(quota)}, resets `, timeEl(quota.resets_at));
}

// [label, node] pairs for a key's card.
export function facts(key) {
  return [
    ["Allowed resources", list(key.allowed_resources ?? [], "All")],
    ["Allowed methods", list(key.allowed_methods ?? [], "All")],
    ["Quota", quotaFact(key.quota)],
  ];
}

export function badges(key) {
  return spent(key.quota) ? [el("span", { class: "badge danger", text: "Quota spent" })] : [];
}

// Fills `container` with the inputs, set from `key` (null: a new key), and returns a function
// giving what to send: on create the fields given a value, on edit the fields that changed.
export function render(container, key) {
  const resources = el("textarea", { id: "key-resources", rows: 2, spellcheck: "false",
                                     "aria-describedby": "key-resources-hint" });
  resources.value = (key?.allowed_resources ?? []).join("\n");
  const boxes = METHODS.map((method) => el("input", { type: "checkbox", value: method,
                                                       checked: Boolean(key?.allowed_methods?.includes(method)) }));
  const readOnly = el("button", { type: "button", class: "small", text: "Read-only", onclick: () => {
    for (const box of boxes) box.checked = READ_ONLY.includes(box.value);
  } });
  const quota = el("input", { id: "key-quota", autocomplete: "off", spellcheck: "false", placeholder: "e.g. 100000/month",
                              "aria-describedby": "key-quota-hint", value: key?.quota?.limit ?? "" });
  container.replaceChildren(
    el("h3", { class: "subhead", text: "Resources, methods and quota" }),
    el("div", { class: "field", dataset: { field: "allowed_resources" } },
      el("label", { for: "key-resources", text: "Allowed resources" }), resources,
      el("p", { class: "hint", id: "key-resources-hint",
                text: "PostgREST tables, views and functions, one per line: todos, rpc/search_*, storage.objects; " +
                      "graphql for /graphql/v1. Empty: all. Others get 403." })),
    el("fieldset", { class: "field", dataset: { field: "allowed_methods" } },
      el("legend", { text: "Allowed methods" }),
      el("div", { class: "checks" }, ...boxes.map((box) => el("label", { class: "inline" }, box, ` ${box.value}`)),
        readOnly),
      el("p", { class: "hint", text: "None ticked: all. GET allows HEAD; without POST the key cannot send over Realtime." })),
    el("div", { class: "field", dataset: { field: "quota" } },
      el("label", { for: "key-quota", text: "Quota" }), quota,
      el("p", { class: "hint", id: "key-quota-hint",
                text: "COUNT/day or COUNT/month, calendar periods in UTC. Empty: none. Once spent: 429 until it resets." })));
  return () => rulesBody({
    resources: resources.value,
    methods: boxes.filter((box) => box.checked).map((box) => box.value),
    quota: quota.value,
  }, key);
}
