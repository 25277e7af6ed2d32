// The API Keys page: the admin API of this listener, driven from the browser. The admin token
// lives in this tab's sessionStorage only (never a URL, a cookie or localStorage) and is sent
// as `Authorization: Bearer`. Every string from the API goes into the page as text (dom.js).

import { ago, copyButton, copyFrom, el, exactTime, refreshTimes, svg, timeEl, usedWithinADay } from "./dom.js";
import * as restrictions from "./restrictions.js";

const TOKEN = "gateway.admin_token";
const REF = document.querySelector('meta[name="gateway-project-ref"]').content;
const BASE = `v1/projects/${encodeURIComponent(REF)}/api-keys`;
const $ = (id) => document.getElementById(id);

const state = { keys: [], legacyEnabled: true, legacyConfigured: [], supported: new Set() };

// --- the admin API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The admin API answered ${status}`);
    this.status = status;
    this.field = typeof body?.field === "string" ? body.field : "";
  }
}

async function api(method, path = "", { body, query, token = sessionStorage.getItem(TOKEN) } = {}) {
  const url = new URL(BASE + path, document.baseURI);
  for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  cache: "no-store", credentials: "omit", redirect: "error" });
  } catch {
    throw new ApiError(0, { message: "Cannot reach the admin API." });
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A call made while signed in; a refused token signs out.
async function call(method, path, options) {
  try {
    return await api(method, path, options);
  } catch (e) {
    if (e.status === 401) signOut("The admin token was refused (it may have changed). Sign in again.");
    throw e;
  }
}

// --- signing in and out ------------------------------------------------------------------------

function showSignIn(message = "") {
  $("keys").hidden = true;
  $("refresh").hidden = $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.textContent = message;
  error.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN);
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  for (const id of ["publishable-list", "secret-list", "legacy-list"]) $(id).replaceChildren();
  $("created-key").value = "";
  state.keys = [];
  showSignIn(message);
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  const error = $("sign-in-error");
  if (!token) {
    error.textContent = "Enter the admin token.";
    error.hidden = false;
    return;
  }
  try {
    await api("GET", "/legacy", { token });
  } catch (e) {
    error.textContent = e.status === 401 ? "Wrong admin token: the admin API refused it." : e.message;
    error.hidden = false;
    $("token").select();
    return;
  }
  sessionStorage.setItem(TOKEN, token);
  $("token").value = "";
  await showKeys();
  $("main").focus();
});

$("sign-out").addEventListener("click", () => signOut("Signed out."));
$("refresh").addEventListener("click", () => load());

async function showKeys() {
  $("sign-in").hidden = true;
  $("keys").hidden = false;
  $("refresh").hidden = $("sign-out").hidden = false;
  await load();
}

// --- the listing ------------------------------------------------------------------------------

function problem(message) {
  $("problem").textContent = message;
  $("problem").hidden = !message;
}

async function load(message = "") {
  let keys, legacy;
  try {
    [keys, legacy] = await Promise.all([call("GET"), call("GET", "/legacy")]);
  } catch (e) {
    if (e.status !== 401) problem(e.message);
    return;
  }
  problem("");
  state.keys = keys;
  state.legacyEnabled = legacy.enabled;
  state.legacyConfigured = legacy.configured; // the legacy keys set in legacy.*, enabled or not
  state.supported = restrictions.supported(keys);
  render();
  $("status").textContent = message || `Updated ${new Date().toLocaleTimeString()}.`;
  if (!legacy.enabled && legacy.configured.length) await showLegacyLastUse();
}

function render() {
  const ofType = (type) => state.keys.filter((k) => k.type === type);
  fill($("publishable-list"), ofType("publishable"), "No publishable keys.");
  fill($("secret-list"), ofType("secret"), "No secret keys.");
  const names = state.legacyConfigured;
  const toggle = $("legacy-toggle");
  toggle.hidden = names.length === 0;
  if (names.length === 0) { // nothing to enable, disable or count, whatever the switch says
    $("legacy-list").replaceChildren();
    $("legacy-state").className = "";
    $("legacy-state").replaceChildren("No legacy keys are configured. ", el("span", { class: "muted", text:
      "To accept the anon and service_role JWTs of a Supabase stack, set legacy.anon_key and legacy.service_role_key " +
      "(or ANON_KEY and SERVICE_ROLE_KEY) and restart the gateway." }));
    return;
  }
  fill($("legacy-list"), ofType("legacy"), "");
  $("legacy-state").textContent = state.legacyEnabled
    ? "Enabled: requests with these JWTs are accepted."
    : `Disabled: requests with the ${names.join(" and ")} JWT${names.length === 1 ? "" : "s"} are refused.`;
  $("legacy-state").className = state.legacyEnabled ? "" : "badge-line";
  toggle.textContent = state.legacyEnabled ? "Disable legacy API keys" : "Re-enable legacy API keys";
  toggle.className = state.legacyEnabled ? "danger" : "primary";
}

function fill(list, keys, empty) {
  list.replaceChildren(...(keys.length ? keys.map(card) : empty ? [el("li", { class: "empty muted", text: empty })] : []));
}

function limitsText(limits) {
  const perKey = limits?.per_key;
  const perIp = limits?.per_ip;
  if (!perKey && !perIp) return "Configured defaults";
  if (perKey && perIp) return `${perKey} per key, ${perIp} per IP`;
  return perKey ? `${perKey} per key (per IP: default)` : `${perIp} per IP (per key: default)`;
}

function focusKey(id, label) {
  const item = [...document.querySelectorAll("li.key")].find((node) => node.dataset.keyId === id);
  const button = item && [...item.querySelectorAll("button")].find((node) => node.textContent === label);
  (button || $("main")).focus();
}

function fact(label, value) {
  return el("div", {}, el("dt", { text: label }), el("dd", {}, value));
}

function card(key) {
  const legacy = key.type === "legacy";
  const facts = legacy ? [] : [fact("Created", timeEl(key.inserted_at, "Unknown"))]; // legacy keys: made with the JWT secret
  facts.push(fact("Last used", timeEl(key.last_used_at, "Never used")));
  if (key.type === "secret") facts.push(fact("JWT role", el("code", { text: key.secret_jwt_template?.role ?? "" })));
  if (!legacy) facts.push(fact("Rate limits", el("span", { text: limitsText(key.limits) })));
  if (!legacy) for (const [label, value] of restrictions.facts(key)) facts.push(fact(label, value));

  const usage = el("div", { class: "usage", hidden: true });
  const actions = [el("button", { type: "button", class: "small", text: "Usage", "aria-expanded": "false",
                                  onclick: (e) => toggleUsage(key, usage, e.currentTarget) })];
  if (!legacy) {
    actions.push(el("button", { type: "button", class: "small", text: "Edit", onclick: (e) => openKeyDialog(key.type, key, e.currentTarget) }));
    actions.push(el("button", { type: "button", class: "small danger", text: "Delete", onclick: (e) => openDelete(key, e.currentTarget) }));
  }
  return el("li", { class: "key", dataset: { keyId: key.id, name: key.name } },
    el("div", { class: "key-head" },
      el("h3", { class: "key-name", text: key.name }),
      el("code", { class: "prefix", title: "Display prefix", text: key.prefix ?? "" }),
      ...restrictions.badges(key)),
    el("p", { class: key.description ? "description" : "description muted", text: key.description || "No description" }),
    keyValue(key),
    el("dl", { class: "facts" }, ...facts),
    el("div", { class: "actions" }, ...actions),
    usage);
}

// The key itself: publishable keys (and the anon JWT) in full with Copy, secret ones masked.
function keyValue(key) {
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
        input.value = (await call("GET", "/service_role", { query: { reveal: "true" } })).api_key;
        reveal.replaceWith(copyButton(input));
      } catch (e) {
        problem(e.message);
      }
    });
    return el("div", { class: "copyable" }, input, reveal);
  }
  const masked = key.type === "secret" ? `${key.prefix ?? "sb_secret_"}${"•".repeat(12)}` : key.api_key;
  return el("p", { class: "masked" }, el("code", { text: masked }),
    el("span", { class: "muted", text: key.type === "secret" ? " Shown once, when it was created." : "" }));
}

setInterval(() => refreshTimes(), 30_000);

// --- usage ------------------------------------------------------------------------------------

async function toggleUsage(key, panel, button) {
  const open = panel.hidden;
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
  if (!open) return;
  panel.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  try {
    panel.replaceChildren(...chart(await call("GET", `/${encodeURIComponent(key.id)}/usage`)));
  } catch (e) {
    panel.replaceChildren(el("p", { class: "error", text: e.message }));
  }
}

const hourFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const count = (n) => `${n.toLocaleString()} request${n === 1 ? "" : "s"}`;

// Requests per hour over 7 days: one bar an hour (its exact count on hover), a label a day.
function chart(usage) {
  const hours = usage.hours;
  const width = 4;
  const height = 60;
  const max = Math.max(1, ...hours.map((h) => h.requests));
  const busiest = hours.reduce((a, b) => (b.requests > a.requests ? b : a), hours[0]);
  const plot = svg("svg", { class: "chart", viewBox: `0 0 ${hours.length * width} ${height + 14}`, role: "img",
                            "aria-label": `Requests per hour over the last 7 days: ${usage.total} in all` });
  hours.forEach((hour, i) => {
    const start = new Date(hour.start);
    if (start.getHours() === 0) {
      plot.append(svg("line", { class: "day", x1: i * width, x2: i * width, y1: 0, y2: height }),
                  svg("text", { class: "day-label", x: i * width + 2, y: height + 11, text: dayFormat.format(start) }));
    }
    const h = hour.requests ? Math.max(1, (hour.requests / max) * height) : 0;
    plot.append(svg("rect", { class: "bar", x: i * width, y: height - h, width: width - 1, height: h },
                    svg("title", { text: `${hourFormat.format(start)}: ${count(hour.requests)}` })));
  });
  plot.append(svg("line", { class: "axis", x1: 0, x2: hours.length * width, y1: height, y2: height }));
  const summary = usage.total
    ? `${count(usage.total)} in the last 7 days; busiest hour ${hourFormat.format(new Date(busiest.start))} with ${busiest.requests.toLocaleString()}.`
    : "No requests in the last 7 days.";
  return [el("p", { class: "usage-summary", text: summary }), plot,
          el("p", { class: "hint", text: "Counted by every worker and written every few seconds." })];
}

// --- create and edit --------------------------------------------------------------------------

let returnFocus = null;
let readRestrictions = () => ({});

for (const dialog of document.querySelectorAll("dialog")) {
  dialog.addEventListener("close", () => {
    if (returnFocus?.isConnected) returnFocus.focus();
    returnFocus = null;
  });
  for (const cancel of dialog.querySelectorAll("button.cancel")) cancel.addEventListener("click", () => dialog.close());
}

function clearErrors(form) {
  for (const node of form.querySelectorAll("p.error[data-field], .field-error")) {
    if (node.classList.contains("field-error")) node.remove();
    else node.hidden = true;
  }
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

// An API error next to the field it names ("limits.per_ip", "allowed_ips", ...): the wrapper
// whose data-field is the field, or the nearest one up its dotted path; else atop the form.
function showError(form, error) {
  const wrappers = [...form.querySelectorAll("[data-field]")].filter((node) => node.dataset.field);
  let wrapper = null;
  for (let field = error.field; field && !wrapper; field = field.includes(".") ? field.slice(0, field.lastIndexOf(".")) : "") {
    wrapper = wrappers.find((node) => node.dataset.field === field) || null;
  }
  const prefix = `${error.field}: `;
  const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  if (!wrapper || wrapper.closest("[hidden]")) {
    const top = form.querySelector("p.error[data-field='']");
    top.textContent = error.field && wrapper === null ? `${error.field}: ${message}` : message;
    top.hidden = false;
    return;
  }
  const id = `error-${error.field.replace(/[^a-z0-9_]/gi, "-")}`;
  const note = el("p", { class: "error field-error", id, role: "alert", text: message });
  const control = wrapper.querySelector("input, textarea, select");
  wrapper.append(note);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", [control.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
    control.focus();
  }
}

let editing = null; // the key being edited, or null when creating

function openKeyDialog(type, key, trigger) {
  const form = $("key-form");
  form.reset();
  clearErrors(form);
  editing = key;
  $("key-dialog-title").textContent = key ? `Edit ${key.name}` : `New ${type} key`;
  $("key-submit").textContent = key ? "Save" : "Create key";
  $("type-field").hidden = Boolean(key);
  form.querySelector(`input[name="type"][value="${type === "secret" ? "secret" : "publishable"}"]`).checked = true;
  $("key-name").value = key?.name ?? "";
  $("key-description").value = key?.description ?? "";
  const template = key?.secret_jwt_template ?? { role: "service_role" };
  const { role, ...claims } = template;
  $("key-role").value = role ?? "";
  $("key-claims").value = Object.keys(claims).length ? JSON.stringify(claims, null, 2) : "";
  $("limit-per-key").value = key?.limits?.per_key ?? "";
  $("limit-per-ip").value = key?.limits?.per_ip ?? "";
  readRestrictions = restrictions.render($("restriction-fields"), state.supported, key);
  showType();
  returnFocus = trigger;
  $("key-dialog").showModal();
  $("key-name").focus();
}

function chosenType() {
  return editing ? editing.type : $("key-form").querySelector('input[name="type"]:checked').value;
}

function showType() {
  $("key-form").querySelector(".secret-only").hidden = chosenType() !== "secret";
}

for (const radio of document.querySelectorAll('#key-form input[name="type"]')) radio.addEventListener("change", showType);
for (const button of document.querySelectorAll("button.new-key")) {
  button.addEventListener("click", () => openKeyDialog(button.dataset.type, null, button));
}

// The body from the form: on create the fields given, on edit the fields that changed.
function keyBody(form) {
  const type = chosenType();
  const body = {};
  const name = $("key-name").value.trim();
  const description = $("key-description").value;
  if (!editing) {
    body.type = type;
    body.name = name;
    if (description.trim()) body.description = description;
  } else {
    if (name !== editing.name) body.name = name;
    if (description !== (editing.description ?? "")) body.description = description === "" ? null : description;
  }
  if (type === "secret") {
    let claims = {};
    const text = $("key-claims").value.trim();
    if (text) {
      try {
        claims = JSON.parse(text);
      } catch {
        throw new ApiError(400, { field: "secret_jwt_template", message: "The other claims are not valid JSON." });
      }
      if (!claims || typeof claims !== "object" || Array.isArray(claims)) {
        throw new ApiError(400, { field: "secret_jwt_template", message: "The other claims must be a JSON object." });
      }
    }
    const template = { ...claims, role: $("key-role").value.trim() };
    if (!editing || JSON.stringify(template) !== JSON.stringify(editing.secret_jwt_template)) body.secret_jwt_template = template;
  }
  const limits = {};
  for (const [member, id] of [["per_key", "limit-per-key"], ["per_ip", "limit-per-ip"]]) {
    const value = $(id).value.trim();
    if (editing ? value !== (editing.limits?.[member] ?? "") : value) limits[member] = value || null;
  }
  if (Object.keys(limits).length) body.limits = limits;
  Object.assign(body, readRestrictions());
  return body;
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const submit = $("key-submit");
  try {
    const body = keyBody(form);
    if (editing && Object.keys(body).length === 0) {
      $("key-dialog").close();
      return;
    }
    submit.disabled = true;
    if (editing) {
      const id = editing.id;
      await call("PATCH", `/${encodeURIComponent(id)}`, { body });
      $("key-dialog").close();
      await load(`Saved ${body.name ?? editing.name}.`);
      focusKey(id, "Edit"); // the card was drawn anew
    } else {
      const made = await call("POST", "", { body });
      const focusAfter = returnFocus;
      returnFocus = null;
      $("key-dialog").close();
      showCreated(made, focusAfter);
      await load(`Created ${made.name}.`);
    }
  } catch (e) {
    if (e.status !== 401) showError(form, e);
  } finally {
    submit.disabled = false;
  }
});

function showCreated(made, trigger) {
  const secret = made.type === "secret";
  $("created-title").textContent = secret ? `Your new secret key ${made.name}` : `Your new publishable key ${made.name}`;
  $("created-warning").hidden = !secret;
  $("created-public").hidden = secret;
  $("created-key").value = made.api_key;
  returnFocus = trigger;
  $("created-dialog").showModal();
  $("created-copy").focus();
}

$("created-copy").addEventListener("click", (e) => copyFrom($("created-key"), e.currentTarget));
$("created-form").addEventListener("submit", (event) => {
  event.preventDefault();
  $("created-dialog").close();
});
$("created-dialog").addEventListener("close", () => { $("created-key").value = ""; }); // gone from the page

// --- delete -----------------------------------------------------------------------------------

let deleting = null;

function openDelete(key, trigger) {
  deleting = key;
  const form = $("delete-form");
  form.reset();
  clearErrors(form);
  $("delete-what").replaceChildren(
    "Delete ", el("strong", { text: key.name }), " (", el("code", { text: key.prefix ?? "" }), ")? ",
    "Requests with it are refused on every instance within a second. This cannot be undone.");
  const recent = $("delete-recent");
  recent.hidden = !usedWithinADay(key.last_used_at);
  recent.textContent = recent.hidden ? "" :
    `This key was used ${ago(key.last_used_at)} (${exactTime(key.last_used_at)}): whatever still uses it will stop working.`;
  returnFocus = trigger;
  $("delete-dialog").showModal();
  $("delete-compromised").focus();
}

$("delete-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const query = { was_compromised: String($("delete-compromised").checked) };
  const reason = $("delete-reason").value.trim();
  if (reason) query.reason = reason;
  try {
    await call("DELETE", `/${encodeURIComponent(deleting.id)}`, { query });
    returnFocus = $("main");
    $("delete-dialog").close();
    await load(`Deleted ${deleting.name}.`);
  } catch (e) {
    if (e.status !== 401) showError(form, e);
  }
});

// --- legacy keys --------------------------------------------------------------------------------

// The last use of the configured legacy keys (the key list leaves them out while disabled).
async function legacyLastUse() {
  const out = [];
  for (const name of state.legacyConfigured) out.push({ name, last_used_at: (await call("GET", `/${name}/usage`)).last_used_at });
  return out;
}

function lastUseItems(uses) {
  return uses.map((u) => el("li", {}, el("code", { text: u.name }), " last used ", timeEl(u.last_used_at, "never")));
}

async function showLegacyLastUse() {
  try {
    const uses = await legacyLastUse();
    $("legacy-list").replaceChildren(...uses.map((u) =>
      el("li", { class: "key disabled", dataset: { keyId: u.name, name: u.name } },
        el("div", { class: "key-head" }, el("h3", { class: "key-name", text: u.name }),
          el("span", { class: "badge", text: "Disabled" })),
        el("dl", { class: "facts" }, fact("Last used", timeEl(u.last_used_at, "Never used"))))));
  } catch (e) {
    if (e.status !== 401) problem(e.message);
  }
}

$("legacy-toggle").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!state.legacyEnabled) {
    await setLegacy(true);
    return;
  }
  const uses = state.keys.filter((k) => k.type === "legacy");
  $("legacy-last-use").replaceChildren(...lastUseItems(uses));
  const recent = uses.filter((u) => usedWithinADay(u.last_used_at));
  $("legacy-recent").hidden = recent.length === 0;
  $("legacy-recent").textContent = recent.length
    ? `${recent.map((u) => u.name).join(" and ")} ${recent.length === 1 ? "was" : "were"} used in the last 24 hours: clients still using ${recent.length === 1 ? "it" : "them"} will be refused.`
    : "";
  clearErrors($("legacy-form"));
  returnFocus = button;
  $("legacy-dialog").showModal();
});

$("legacy-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (await setLegacy(false, event.currentTarget)) $("legacy-dialog").close();
});

async function setLegacy(enabled, form = null) {
  try {
    await call("PUT", "/legacy", { query: { enabled: String(enabled) } });
  } catch (e) {
    if (e.status !== 401) (form ? showError(form, e) : problem(e.message));
    return false;
  }
  await load(enabled ? "Legacy API keys enabled." : "Legacy API keys disabled.");
  $("legacy-toggle").focus();
  return true;
}

// --- start ------------------------------------------------------------------------------------

$("project-ref").textContent = REF;
if (sessionStorage.getItem(TOKEN)) showKeys();
else showSignIn();
