// The key cards: the publishable and secret lists drawn from the store's key list, and the card
// of one key (legacy.js draws the legacy list with it): name, prefix, description, the key
// itself, its facts, and Usage / Edit / Delete.

import { usageToggle } from "./chart.js";
import { copyButton, el, parts, timeEl } from "./dom.js";
import { limitsText } from "./limits.js";
import * as restrictions from "./restrictions.js";
import * as rules from "./rules.js";

export function fact(label, value) {
  return el("div", {}, el("dt", { text: label }), el("dd", {}, value));
}

// `actions`: {api, edit(key, button), remove(key, button), problem(message)}.
export function card(key, actions) {
  const legacy = key.type === "legacy";
  const facts = legacy ? [] : [fact("Created", timeEl(key.inserted_at, "Unknown"))]; // legacy keys: made with the JWT secret
  facts.push(fact("Last used", timeEl(key.last_used_at, "Never used")));
  if (key.type === "secret") facts.push(fact("JWT role", el("code", { text: key.secret_jwt_template?.role ?? "" })));
  if (!legacy) {
    facts.push(fact("Rate limits", el("span", { text: limitsText(key.limits) })));
    for (const [label, value] of [...restrictions.facts(key), ...rules.facts(key)]) facts.push(fact(label, value));
  }
  const usage = usageToggle(() => actions.api.usage(key.id));
  const buttons = [usage.button];
  if (!legacy) {
    buttons.push(
      el("button", { type: "button", class: "small", text: "Edit", onclick: (e) => actions.edit(key, e.currentTarget) }),
      el("button", { type: "button", class: "small danger", text: "Delete", onclick: (e) => actions.remove(key, e.currentTarget) }));
  }
  return el("li", { class: "key", dataset: { keyId: key.id, name: key.name } },
    el("div", { class: "key-head" },
      el("h3", { class: "key-name", text: key.name }),
      el("code", { class: "prefix", title: "Display prefix", text: key.prefix ?? "" }),
      ...restrictions.badges(key), ...rules.badges(key)),
    el("p", { class: key.description ? "description" : "description muted", text: key.description || "No description" }),
    keyValue(key, actions),
    el("dl", { class: "facts" }, ...facts),
    el("div", { class: "actions" }, ...buttons),
    usage.panel);
}

// The key itself: publishable keys (and the anon JWT) in full with Copy, secret ones masked, the
// service_role JWT behind Reveal.
function keyValue(key, actions) {
  const shown = key.type === "publishable" || key.id === "anon";
  if (shown && !/[•·]/.test(key.api_key)) {
    const input = el("input", { readonly: true, value: key.api_key, spellcheck: "false", "aria-label": `API key ${key.name}` });
    return el("div", { class: "copyable" }, input, copyButton(input));
  }
  if (key.id === "service_role") {
    const input = el("input", { readonly: true, value: key.api_key, spellcheck: "false", "aria-label": "API key service_role" });
    const reveal = el("button", { type: "button", text: "Reveal" });
    reveal.addEventListener("click", async () => {
      try {
        input.value = (await actions.api.revealed("service_role")).api_key;
        reveal.replaceWith(copyButton(input));
      } catch (e) {
        if (e.status !== 401) actions.problem(e.message);
      }
    });
    return el("div", { class: "copyable" }, input, reveal);
  }
  const masked = key.type === "secret" ? `${key.prefix ?? "sb_secret_"}${"•".repeat(12)}` : key.api_key;
  return el("p", { class: "masked" }, el("code", { text: masked }),
    el("span", { class: "muted", text: key.type === "secret" ? " Shown once, when it was created." : "" }));
}

// A list of cards, or one muted line when there are none (nothing at all while signed out).
function fill(list, keys, empty, actions) {
  if (keys === null) list.replaceChildren();
  else if (keys.length === 0) list.replaceChildren(el("li", { class: "empty muted", text: empty }));
  else list.replaceChildren(...keys.map((key) => card(key, actions)));
}

// The publishable and secret sections inside `root`, redrawn when the key list changes.
export function keyLists(root, store, actions) {
  const { publishable, secret } = parts(root, { publishable: "#publishable-list", secret: "#secret-list" });
  store.watch(["keys"], ({ keys }) => {
    const ofType = (type) => keys && keys.filter((k) => k.type === type);
    fill(publishable, ofType("publishable"), "No publishable keys.", actions);
    fill(secret, ofType("secret"), "No secret keys.", actions);
  });
  return {
    // After a redraw: focus the button `label` of the card of key `id` (else the page's main).
    focus(id, label, fallback) {
      const item = [...root.querySelectorAll("li.key")].find((node) => node.dataset.keyId === id);
      const button = item && [...item.querySelectorAll("button")].find((node) => node.textContent === label);
      (button || fallback).focus();
    },
  };
}
