// The legacy section: the anon and service_role JWTs, when configured. Enabled, their cards as the
// key list gives them and "Disable legacy API keys" (a dialog with their last use first);
// disabled, their last use and "Re-enable legacy API keys"; none configured, a plain line saying
// so and nothing to switch. legacyview.js decides what it says.

import { el, parts, timeEl } from "./dom.js";
import { card, fact } from "./cards.js";
import { lastUseWanted, legacyView, recentLegacyWarning } from "./legacyview.js";
import { clearErrors, modal, showError } from "./modal.js";

// The last use of the legacy keys the key list leaves out while they are disabled:
// [{name, last_used_at}], asked of the configured ones only.
export async function legacyLastUses(api, legacy) {
  const lastUse = async (name) => ({ name, last_used_at: (await api.usage(name)).last_used_at });
  return Promise.all(lastUseWanted(legacy).map(lastUse));
}

function disabledCard(use) {
  return el("li", { class: "key disabled", dataset: { keyId: use.name, name: use.name } },
    el("div", { class: "key-head" }, el("h3", { class: "key-name", text: use.name }),
      el("span", { class: "badge", text: "Disabled" })),
    el("dl", { class: "facts" }, fact("Last used", timeEl(use.last_used_at, "Never used"))));
}

// `section`: the legacy <section>; `root`: the document (for its dialog); `actions`: {api,
// load(message), problem(message)} and what card() needs.
export function legacySection(section, root, store, actions) {
  const p = parts(section, { toggle: "#legacy-toggle", state: "#legacy-state", list: "#legacy-list" });
  const d = parts(root, { dialog: "#legacy-dialog", form: "#legacy-form", lastUse: "#legacy-last-use",
                          recent: "#legacy-recent" });
  const box = modal(d.dialog);

  store.watch(["keys", "legacy", "legacyUses"], ({ keys, legacy, legacyUses }) => {
    const view = legacyView(legacy);
    p.toggle.hidden = !view?.toggle;
    if (view?.toggle) {
      p.toggle.textContent = view.toggle.text;
      p.toggle.className = view.toggle.class;
    }
    p.state.className = view?.stateClass ?? "";
    p.state.replaceChildren(...(view ? [view.state] : []),
                            ...(view?.hint ? [" ", el("span", { class: "muted", text: view.hint })] : []));
    let cards = []; // none configured (or signed out): nothing to list
    if (view?.kind === "enabled") cards = keys.filter((k) => k.type === "legacy").map((k) => card(k, actions));
    if (view?.kind === "disabled") cards = legacyUses.map(disabledCard);
    p.list.replaceChildren(...cards);
  });

  async function setLegacy(enabled, form = null) {
    try {
      await actions.api.setLegacy(enabled);
    } catch (e) {
      if (e.status !== 401) (form ? showError(form, e) : actions.problem(e.message));
      return false;
    }
    await actions.load(enabled ? "Legacy API keys enabled." : "Legacy API keys disabled.");
    p.toggle.focus();
    return true;
  }

  p.toggle.addEventListener("click", async (event) => {
    const { keys, legacy } = store.get();
    if (!legacy.enabled) {
      await setLegacy(true);
      return;
    }
    const uses = keys.filter((k) => k.type === "legacy");
    d.lastUse.replaceChildren(...uses.map((u) =>
      el("li", {}, el("code", { text: u.name }), " last used ", timeEl(u.last_used_at, "never"))));
    d.recent.textContent = recentLegacyWarning(uses);
    d.recent.hidden = !d.recent.textContent;
    clearErrors(d.form);
    box.open(event.currentTarget);
  });

  d.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await setLegacy(false, d.form)) box.close();
  });
}
