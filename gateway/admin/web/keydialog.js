// Creating and editing a key: the key dialog (type, name, description, JWT template, limits,
// expiry and restrictions, resources, methods and quota; errors next to their inputs) and the dialog that shows a new key
// once, with Copy.

import { copyFrom, parts } from "./dom.js";
import { keyBody } from "./forms.js";
import { clearErrors, modal, showError } from "./modal.js";
import * as restrictions from "./restrictions.js";
import * as rules from "./rules.js";

// `root`: the document (the dialogs are children of its body); `actions`: {api, load(message),
// focusKey(id, label)}. Returns {open(type, key, trigger)}: key null creates one of `type`.
export function keyDialog(root, actions) {
  const p = parts(root, {
    dialog: "#key-dialog", form: "#key-form", title: "#key-dialog-title", submit: "#key-submit", typeField: "#type-field",
    secretOnly: "#key-form .secret-only", name: "#key-name", description: "#key-description", role: "#key-role",
    claims: "#key-claims", perKey: "#limit-per-key", perIp: "#limit-per-ip", restrictions: "#restriction-fields",
    rules: "#rule-fields",
  });
  const box = modal(p.dialog);
  const created = createdDialog(root);
  const types = p.form.elements.namedItem("type"); // the two radio buttons
  let opened = { key: null, restrictions: () => ({}), rules: () => ({}) }; // the key being edited (null: a new one), its inputs

  const chosenType = () => (opened.key ? opened.key.type : types.value);
  const showType = () => { p.secretOnly.hidden = chosenType() !== "secret"; };
  for (const radio of types) radio.addEventListener("change", showType);

  function open(type, key, trigger) {
    p.form.reset();
    clearErrors(p.form);
    p.title.textContent = key ? `Edit ${key.name}` : `New ${type} key`;
    p.submit.textContent = key ? "Save" : "Create key";
    p.typeField.hidden = Boolean(key);
    types.value = type === "secret" ? "secret" : "publishable";
    p.name.value = key?.name ?? "";
    p.description.value = key?.description ?? "";
    const { role, ...claims } = key?.secret_jwt_template ?? { role: "service_role" };
    p.role.value = role ?? "";
    p.claims.value = Object.keys(claims).length ? JSON.stringify(claims, null, 2) : "";
    p.perKey.value = key?.limits?.per_key ?? "";
    p.perIp.value = key?.limits?.per_ip ?? "";
    opened = { key, restrictions: restrictions.render(p.restrictions, key), rules: rules.render(p.rules, key) };
    showType();
    box.open(trigger, p.name);
  }

  const values = () => ({ type: chosenType(), name: p.name.value, description: p.description.value, role: p.role.value,
                          claims: p.claims.value, perKey: p.perKey.value, perIp: p.perIp.value });

  p.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(p.form);
    const editing = opened.key;
    try {
      const body = { ...keyBody(values(), editing), ...opened.restrictions(), ...opened.rules() };
      if (editing && Object.keys(body).length === 0) {
        box.close();
        return;
      }
      p.submit.disabled = true;
      if (editing) {
        await actions.api.update(editing.id, body);
        box.close();
        await actions.load(`Saved ${body.name ?? editing.name}.`);
        actions.focusKey(editing.id, "Edit"); // the card was drawn anew
      } else {
        const made = await actions.api.create(body);
        const trigger = box.handOff(); // focus goes back there once the new key's dialog closes
        box.close();
        created.show(made, trigger);
        await actions.load(`Created ${made.name}.`);
      }
    } catch (e) {
      if (e.status !== 401) showError(p.form, e);
    } finally {
      p.submit.disabled = false;
    }
  });

  return { open, forget: created.forget };
}

// The new key, shown once: secret keys with "you will not see it again"; gone from the page when
// the dialog closes.
function createdDialog(root) {
  const p = parts(root, {
    dialog: "#created-dialog", form: "#created-form", title: "#created-title", warning: "#created-warning",
    public: "#created-public", key: "#created-key", copy: "#created-copy",
  });
  const box = modal(p.dialog);
  const forget = () => { p.key.value = ""; };
  p.copy.addEventListener("click", (e) => copyFrom(p.key, e.currentTarget));
  p.form.addEventListener("submit", (event) => {
    event.preventDefault();
    box.close();
  });
  p.dialog.addEventListener("close", forget);
  return {
    show(made, trigger) {
      const secret = made.type === "secret";
      p.title.textContent = secret ? `Your new secret key ${made.name}` : `Your new publishable key ${made.name}`;
      p.warning.hidden = !secret;
      p.public.hidden = secret;
      p.key.value = made.api_key;
      box.open(trigger, p.copy);
    },
    forget,
  };
}
