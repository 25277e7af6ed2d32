// The API Keys page: the admin API of this listener, driven from the browser. This module wires
// the parts together, one concern each: api.js (the admin API: fetch with the token, errors),
// session.js (signing in and out), store.js (the page's state, in one place), cards.js (the key
// cards), chart.js (the usage chart), keydialog.js (create and edit), deletedialog.js, legacy.js
// (the legacy section), modal.js (what the dialogs share), dom.js (building elements, as text).
// network.js (who the public API answers: the allow list and blocked clients).
// What needs no page is in modules without DOM access, unit-tested with node --test (tests/admin/web):
// time.js, limits.js, usage.js, forms.js, legacyview.js, networkview.js and store.js.

import { createApi } from "./api.js";
import { keyLists } from "./cards.js";
import { deleteDialog } from "./deletedialog.js";
import { parts, refreshTimes } from "./dom.js";
import { keyDialog } from "./keydialog.js";
import { legacyLastUses, legacySection } from "./legacy.js";
import { networkSection } from "./network.js";
import { session, storedToken } from "./session.js";
import { INITIAL, createStore } from "./store.js";

const REF = document.querySelector('meta[name="gateway-project-ref"]').content;
const page = parts(document, {
  ref: "#project-ref", main: "#main", keys: "#keys", status: "#status", problem: "#problem", legacy: "#legacy",
  network: "#network",
});
const store = createStore(INITIAL);

const refused = () => signIn.signOut("The admin token was refused (it may have changed). Sign in again.");
const api = createApi({ base: `v1/projects/${encodeURIComponent(REF)}/api-keys`, token: storedToken, refused });

// The key list and the legacy switch (with the last use of disabled legacy keys), into the store at once.
async function load(message = "") {
  let keys, legacy;
  try {
    [keys, legacy] = await Promise.all([api.keys(), api.legacy()]);
  } catch (e) {
    if (e.status !== 401) store.set({ problem: e.message });
    return;
  }
  let legacyUses = [];
  let failed = ""; // the keys are shown all the same
  try {
    legacyUses = await legacyLastUses(api, legacy);
  } catch (e) {
    if (e.status === 401) return;
    failed = e.message;
  }
  store.set({ keys, legacy, legacyUses, problem: failed, status: message || `Updated ${new Date().toLocaleTimeString()}.` });
  await network.load();
}

const problem = (message) => store.set({ problem: message });
const lists = keyLists(page.keys, store, {
  api, problem,
  edit: (key, trigger) => editor.open(key.type, key, trigger),
  remove: (key, trigger) => deleter.open(key, trigger),
});
const editor = keyDialog(document, { api, load, focusKey: (id, label) => lists.focus(id, label, page.main) });
const deleter = deleteDialog(document, { api, load, main: page.main });
legacySection(page.legacy, document, store, { api, load, problem });
const network = networkSection(page.network, store, {
  api: createApi({ base: `v1/projects/${encodeURIComponent(REF)}`, token: storedToken, refused }),
  problem, status: (message) => store.set({ status: message, problem: "" }),
});
const signIn = session(document, {
  api, load,
  signedOut: () => {
    editor.forget();
    store.set(INITIAL);
  },
});

for (const button of page.keys.querySelectorAll("button.new-key")) {
  button.addEventListener("click", () => editor.open(button.dataset.type, null, button));
}
store.watch(["status"], ({ status }) => { page.status.textContent = status; });
store.watch(["problem"], ({ problem: message }) => {
  page.problem.textContent = message;
  page.problem.hidden = !message;
});
setInterval(() => refreshTimes(), 30_000);

page.ref.textContent = REF;
signIn.start();
