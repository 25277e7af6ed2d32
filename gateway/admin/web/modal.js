// The dialogs' common parts: a native modal <dialog> that gives focus back to what opened it,
// closes on its Cancel button (and Escape, natively), and shows errors next to the field they name.

import { el } from "./dom.js";
import { fieldMessage, fieldPath } from "./forms.js";

// {dialog, open(trigger, first), close(), handOff()}: `trigger` gets focus back on close (unless
// handOff() took it first, to give to the next dialog); `first` gets focus on open.
export function modal(dialog) {
  let returnTo = null;
  dialog.addEventListener("close", () => {
    if (returnTo?.isConnected) returnTo.focus();
    returnTo = null;
  });
  for (const cancel of dialog.querySelectorAll("button.cancel")) cancel.addEventListener("click", () => dialog.close());
  return {
    dialog,
    open(trigger, first) {
      returnTo = trigger;
      dialog.showModal();
      first?.focus();
    },
    close(focusAfter) {
      if (focusAfter !== undefined) returnTo = focusAfter;
      dialog.close();
    },
    handOff() {
      const trigger = returnTo;
      returnTo = null;
      return trigger;
    },
  };
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll("p.error[data-field], .field-error")) {
    if (node.classList.contains("field-error")) node.remove();
    else node.hidden = true;
  }
  for (const node of form.querySelectorAll("[aria-invalid]")) {
    node.removeAttribute("aria-invalid");
    const rest = (node.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.startsWith("error-"));
    if (rest.length) node.setAttribute("aria-describedby", rest.join(" "));
    else node.removeAttribute("aria-describedby");
  }
}

// An error ({field, message}: the API's, or a FieldError) next to the field it names ("limits.per_ip",
// "allowed_ips", ...): the [data-field] wrapper of the field, or of the nearest one up its dotted
// path; else atop the form (p.error[data-field=""]).
export function showError(form, error) {
  const wrappers = [...form.querySelectorAll("[data-field]")].filter((node) => node.dataset.field);
  let wrapper = null;
  for (const field of fieldPath(error.field)) {
    wrapper = wrappers.find((node) => node.dataset.field === field);
    if (wrapper) break;
  }
  const message = fieldMessage(error);
  if (!wrapper || wrapper.closest("[hidden]")) {
    const top = form.querySelector("p.error[data-field='']");
    top.textContent = error.field && !wrapper ? `${error.field}: ${message}` : message;
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
