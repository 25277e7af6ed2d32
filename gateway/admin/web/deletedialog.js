// Deleting a key: "This key was compromised" and a reason (both kept in the audit log), and a
// warning when the key was used in the last 24 hours.

import { el, parts } from "./dom.js";
import { recentUseWarning } from "./forms.js";
import { clearErrors, modal, showError } from "./modal.js";

// `actions`: {api, load(message), main (focused once the key's card is gone)}. Returns {open(key, trigger)}.
export function deleteDialog(root, actions) {
  const p = parts(root, {
    dialog: "#delete-dialog", form: "#delete-form", what: "#delete-what", recent: "#delete-recent",
    compromised: "#delete-compromised", reason: "#delete-reason",
  });
  const box = modal(p.dialog);
  let deleting = null; // the key the dialog is open for

  function open(key, trigger) {
    deleting = key;
    p.form.reset();
    clearErrors(p.form);
    p.what.replaceChildren(
      "Delete ", el("strong", { text: key.name }), " (", el("code", { text: key.prefix ?? "" }), ")? ",
      "Requests with it are refused on every instance within a second. This cannot be undone.");
    p.recent.textContent = recentUseWarning(key.last_used_at);
    p.recent.hidden = !p.recent.textContent;
    box.open(trigger, p.compromised);
  }

  p.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(p.form);
    const key = deleting;
    const query = { was_compromised: String(p.compromised.checked) };
    const reason = p.reason.value.trim();
    if (reason) query.reason = reason;
    try {
      await actions.api.remove(key.id, query);
      box.close(actions.main);
      await actions.load(`Deleted ${key.name}.`);
    } catch (e) {
      if (e.status !== 401) showError(p.form, e);
    }
  });

  return { open };
}
